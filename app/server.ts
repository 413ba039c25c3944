import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';

import { serve } from '@hono/node-server';
import { Hono } from 'hono';

import { ZodError } from 'zod';

import { readModelRepository, type RepositoryModel } from '../config/model-repository.js';
import { ConfigSchema, resolveConfig, type Config } from '../config/schema.js';
import { createApp } from './app.js';
import { depsOf, type ServerDeps } from './deps.js';
import { ApiError } from './errors.js';
import { loadModel, type LoadedModel } from './load-model.js';
import { assignRequestId } from './middleware.js';
import { consoleLog, type Log } from './logger.js';

export interface RunningServer {
  url: string;
  /** The first (or only) model's. */
  deps: ServerDeps;
  /** Every served model's, in the order they were loaded. */
  models: ServerDeps[];
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

/** The models a config asks for: its --model, or every folder of --model-repository with the settings its config.pbtxt gives. */
export function modelConfigs(config: Config, log: Log): { name: string; config: Config }[] {
  if (config.modelRepository === undefined && config.models.length === 0) return [{ name: config.servedModelName ?? basename(config.model), config }];
  if (config.modelRepository !== undefined && config.models.length > 0) throw new Error('give either --model-repository or several --model, not both');
  const found: RepositoryModel[] =
    config.modelRepository !== undefined
      ? readModelRepository(config.modelRepository)
      : [config.model, ...config.models].map((dir, k) => ({ name: k === 0 ? (config.servedModelName ?? basename(dir)) : basename(dir), dir, version: null, settings: {}, ignored: [] }));
  const names = found.map((m) => m.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new Error(`two models are named '${twice}'; give them different folder names (or a --model-repository)`);
  const resolved = resolveConfig(config);
  // Memory: a model's own gpu_memory_fraction / kv_cache_bytes (config.pbtxt), the rest of the
  // server's budget split evenly over the models that name none.
  const budget = config.device === 'cuda' ? config.gpuMemoryFraction : (resolved.kvCacheBytes ?? 0);
  const key = config.device === 'cuda' ? 'gpuMemoryFraction' : 'kvCacheBytes';
  const own = found.map((m) => (m.settings[key] === undefined ? undefined : Number(m.settings[key])));
  const named = own.reduce<number>((sum, v) => sum + (v ?? 0), 0);
  const rest = own.filter((v) => v === undefined).length;
  if (!(named <= budget) || (rest > 0 && named >= budget))
    throw new Error(`the models' own ${config.device === 'cuda' ? 'gpu_memory_fraction' : 'kv_cache_bytes'} add up to ${named}, leaving nothing of the server's ${budget} for the others`);
  const shares = own.map((v) => v ?? (budget - named) / Math.max(1, rest));
  let before = 0;
  return found.map((m, k) => {
    if (m.ignored.length > 0) log.info(`model ${m.name}: config.pbtxt fields not applied: ${m.ignored.join(', ')}`);
    // On cuda the backend sizes a pool from what the fraction leaves after the memory already in use,
    // so model k is given the sum of the shares up to its own: its pool is its share.
    const memory = config.device === 'cuda' ? { gpuMemoryFraction: Math.min(1, before + shares[k]) } : { kvCacheBytes: Math.max(1, Math.floor(shares[k])) };
    before += shares[k];
    log.info(`model ${m.name}: ${config.device === 'cuda' ? `${(shares[k] * 100).toFixed(1)}% of the GPU` : `${Math.floor(shares[k])} bytes of KV cache`}${m.version ? `, version ${m.version}` : ''}`);
    try {
      return { name: m.name, config: ConfigSchema.parse({ ...config, ...m.settings, ...memory, model: m.dir, servedModelName: m.name, modelRepository: undefined, models: [] }) };
    } catch (e) {
      throw new Error(`model ${m.name}: ${e instanceof ZodError ? e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message}`);
    }
  });
}

/** Listens at once (so a port in use fails before a long load), loads the model(s), then serves the API. */
export async function startServer(config: Config, log: Log = consoleLog(config.logLevel)): Promise<RunningServer> {
  let fetch = loadingApp().fetch;
  const server = await listen(config, (req, env) => fetch(req, env));
  const loaded: LoadedModel[] = [];
  let wanted: { name: string; config: Config }[];
  try {
    wanted = modelConfigs(config, log);
    for (const w of wanted) {
      const t0 = performance.now();
      const model = await loadModel(w.config, log);
      loaded.push(model);
      const info = model.runtime.info;
      log.info(`loaded ${w.name} in ${((performance.now() - t0) / 1000).toFixed(2)} s: ${info.numLayers} layers on ${info.deviceName || w.config.device}, ` +
        `context ${model.maxModelLen}, step budget ${model.config.maxNumBatchedTokens} tokens / ${model.config.maxNumSeqs} sequences, ` +
        `${info.numThreads} threads${w.config.tensorParallelSize > 1 ? ` over ${w.config.tensorParallelSize} tensor-parallel ranks` : ''}, tokenizer on ${model.tokenizers.tokenizer.engine} with ${model.config.tokenizerWorkers} workers`);
    }
  } catch (e) {
    await Promise.all(loaded.map((m) => m.close()));
    server.close();
    throw e;
  }
  // One state, one response store, one access log for the server; the rest per model.
  const first = depsOf(loaded[0], wanted[0].name);
  const models = loaded.map((model, k) => {
    const deps = k === 0 ? first : { ...depsOf(model, wanted[k].name, first.responses), state: first.state };
    if (loaded.length > 1) deps.metrics.registry.setDefaultLabels({ model_name: deps.modelName });
    model.engine.onStep = (ms, seqs, tokens) => deps.metrics.observeStep(ms, seqs, tokens);
    return deps;
  });
  const deps = first;
  fetch = createApp(deps, log, models).fetch;
  deps.state.ready = true;
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  const engines = loaded.map((m) => m.engine);
  const queued = () => engines.reduce((sum, e) => sum + e.stats().running + e.stats().waiting, 0);

  let stopping: Promise<void> | null = null;
  const settled = () => deps.state.inFlight === 0 && queued() === 0;
  const shutdown = (graceMs = config.shutdownGraceMs) =>
    (stopping ??= (async () => {
      deps.state.draining = true;
      if (!(await until(settled, graceMs))) {
        const left = Math.max(deps.state.inFlight, queued());
        log.warn(`grace period over: ending the ${left} requests still running with an error`);
        const why = `the server shut down before the request finished (grace period of ${graceMs} ms over)`;
        for (const engine of engines) {
          engine.stopAccepting(why);
          engine.cancelAll(why);
        }
      }
      await Promise.all(engines.map((e) => e.idle()));
      // Responses end with their requests; give their last bytes a moment, then drop what is left.
      await until(() => deps.state.inFlight === 0, 1000);
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())]);
      server.closeAllConnections();
      await Promise.all(loaded.map((m) => m.close()));
      deps.responses.close();
    })());
  return { url, deps, models, shutdown };
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
