import { readFileSync, existsSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';

import { serve } from '@hono/node-server';

import type { Config } from '../config/schema.js';
import { Engine } from '../engine/engine.js';
import type { StepRuntime } from '../engine/types.js';
import { Runtime } from '../native/index.js';
import { ChatTemplate, chatTemplateSource } from '../tokenizers/chat-template.js';
import { TokenizerService } from '../tokenizers/tokenizer-service.js';
import { createApp } from './app.js';
import type { ServerDeps } from './deps.js';
import { consoleLog, type Log } from './logger.js';
import { Metrics } from './metrics.js';

export interface RunningServer {
  url: string;
  deps: ServerDeps;
  /** Stops taking requests, lets running ones finish for up to graceMs, then frees everything. */
  shutdown(graceMs?: number): Promise<void>;
}

function readChatTemplate(dir: string): ChatTemplate | null {
  const path = join(dir, 'tokenizer_config.json');
  if (!existsSync(path)) return null;
  const source = chatTemplateSource(JSON.parse(readFileSync(path, 'utf8')));
  return source === null ? null : new ChatTemplate(source);
}

/** Loads the model, starts the engine and serves the API. */
export async function startServer(config: Config, log: Log = consoleLog(config.logLevel)): Promise<RunningServer> {
  if (config.device === 'cpu' && config.dtype !== 'auto')
    throw new Error(`dtype '${config.dtype}' is not available on the CPU backend, which computes in float32 from the checkpoint's weights; use 'auto'`);
  const t0 = performance.now();
  const runtime = await Runtime.load({
    modelDir: config.model,
    device: config.device,
    dtype: config.dtype === 'auto' ? undefined : config.dtype,
    gpuMemoryFraction: config.gpuMemoryFraction,
    blockSize: config.blockSize,
    kvCacheBytes: config.kvCacheBytes,
    maxNumTokens: config.maxNumBatchedTokens,
    maxNumSeqs: config.maxNumSeqs,
    threads: config.threads,
  });
  const tokenizers = await TokenizerService.create({ dir: config.model }, { workers: config.tokenizerWorkers });
  const maxModelLen = Math.min(config.maxModelLen ?? runtime.info.maxPositions, runtime.info.maxPositions);
  const stepRuntime: StepRuntime = { info: { ...runtime.info, maxPositions: maxModelLen }, step: (b) => runtime.step(b) };
  const engine = new Engine(stepRuntime, tokenizers.tokenizer, {
    maxNumBatchedTokens: config.maxNumBatchedTokens,
    maxNumSeqs: config.maxNumSeqs,
    maxPrefillChunk: config.maxPrefillChunk,
    maxWaiting: config.maxQueue,
    enablePrefixCache: config.enablePrefixCache,
  });
  const deps: ServerDeps = {
    config,
    modelName: config.servedModelName ?? basename(config.model),
    maxModelLen,
    engine,
    tokenizers,
    chatTemplate: readChatTemplate(config.model),
    metrics: new Metrics(engine),
    state: { ready: false, draining: false },
    created: Math.floor(Date.now() / 1000),
  };
  log.info(`loaded ${deps.modelName} in ${((performance.now() - t0) / 1000).toFixed(2)} s: ${runtime.info.numLayers} layers, ` +
    `${runtime.info.numBlocks} KV blocks of ${runtime.info.blockSize} tokens, context ${maxModelLen}, ${runtime.info.numThreads} threads, tokenizer on ${tokenizers.tokenizer.engine}`);
  const app = createApp(deps, log);
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, () => resolve(s as Server));
  });
  deps.state.ready = true;
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

  let stopping: Promise<void> | null = null;
  const shutdown = (graceMs = config.shutdownGraceMs) =>
    (stopping ??= (async () => {
      deps.state.draining = true;
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([engine.idle().then(() => 'idle' as const), timeout])) === 'timeout') {
        log.warn('grace period over: cancelling the requests still running');
        engine.cancelAll();
      }
      await engine.idle();
      server.closeIdleConnections();
      await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())]);
      server.closeAllConnections();
      await tokenizers.close();
      await runtime.close();
    })());
  return { url, deps, shutdown };
}
