import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';

import { serve } from '@hono/node-server';
import { Hono } from 'hono';

import type { Config } from '../config/schema.js';
import { createApp } from './app.js';
import { depsOf, type ServerDeps } from './deps.js';
import { ApiError } from './errors.js';
import { loadModel } from './load-model.js';
import { assignRequestId } from './middleware.js';
import { consoleLog, type Log } from './logger.js';

export interface RunningServer {
  url: string;
  deps: ServerDeps;
  /**
   * Drains: the listener stays up, /ready answers 503 and new work 503, while
   * running requests finish for up to graceMs; those still running then end
   * with an error (never as finished). Then frees everything.
   */
  shutdown(graceMs?: number): Promise<void>;
}

/** A port that cannot be listened on; main.ts prints it as one line. */
export class ListenError extends Error {}

/** Answers /health and a 503 /ready while the model loads; everything else is 503. */
function loadingApp(): Hono {
  const app = new Hono();
  app.use('*', assignRequestId());
  app.get('/health', (c) => c.json({ status: 'ok' }));
  app.all('*', (c) => {
    const status = c.req.path === '/ready' ? { status: 'loading' } : new ApiError(503, 'the model is still loading', 'server_error', null, 'model_loading').body();
    return c.json(status, 503);
  });
  return app;
}

function listen(config: Config, fetch: (req: Request, env: unknown) => Response | Promise<Response>): Promise<Server> {
  return new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch, hostname: config.host, port: config.port }, () => {
      s.off('error', onError);
      resolve(s as Server);
    }) as Server;
    const onError = (e: NodeJS.ErrnoException) => {
      const where = `${config.host}:${config.port}`;
      const why = e.code === 'EADDRINUSE' ? `${where} is already in use (choose another with --port)` : e.code === 'EACCES' ? `no permission to listen on ${where}` : `cannot listen on ${where}: ${e.message}`;
      reject(new ListenError(why));
    };
    s.once('error', onError);
  });
}

/** Listens at once (so a port in use fails before a long load), loads the model, then serves the API. */
export async function startServer(config: Config, log: Log = consoleLog(config.logLevel)): Promise<RunningServer> {
  let fetch = loadingApp().fetch;
  const server = await listen(config, (req, env) => fetch(req, env));
  let model;
  try {
    const t0 = performance.now();
    model = await loadModel(config, log);
    const info = model.runtime.info;
    log.info(`loaded ${basename(config.model)} in ${((performance.now() - t0) / 1000).toFixed(2)} s: ${info.numLayers} layers on ${info.deviceName || config.device}, ` +
      `context ${model.maxModelLen}, step budget ${model.config.maxNumBatchedTokens} tokens / ${model.config.maxNumSeqs} sequences, ` +
      `${info.numThreads} threads${config.tensorParallelSize > 1 ? ` over ${config.tensorParallelSize} tensor-parallel ranks` : ''}, tokenizer on ${model.tokenizers.tokenizer.engine} with ${model.config.tokenizerWorkers} workers`);
  } catch (e) {
    server.close();
    throw e;
  }
  const deps = depsOf(model, config.servedModelName ?? basename(config.model));
  model.engine.onStep = (ms, seqs, tokens) => deps.metrics.observeStep(ms, seqs, tokens);
  fetch = createApp(deps, log).fetch;
  deps.state.ready = true;
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  const engine = model.engine;

  let stopping: Promise<void> | null = null;
  const settled = () => deps.state.inFlight === 0 && engine.stats().running === 0 && engine.stats().waiting === 0;
  const shutdown = (graceMs = config.shutdownGraceMs) =>
    (stopping ??= (async () => {
      deps.state.draining = true;
      if (!(await until(settled, graceMs))) {
        const left = Math.max(deps.state.inFlight, engine.stats().running + engine.stats().waiting);
        log.warn(`grace period over: ending the ${left} requests still running with an error`);
        const why = `the server shut down before the request finished (grace period of ${graceMs} ms over)`;
        engine.stopAccepting(why);
        engine.cancelAll(why);
      }
      await engine.idle();
      // Responses end with their requests; give their last bytes a moment, then drop what is left.
      await until(() => deps.state.inFlight === 0, 1000);
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())]);
      server.closeAllConnections();
      await model.close();
      deps.responses.close();
    })());
  return { url, deps, shutdown };
}

/** Resolves true once cond() holds (checked every 10 ms), false after ms. */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 10).unref());
  }
  return true;
}
