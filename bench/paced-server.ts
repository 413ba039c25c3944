// The real HTTP app and engine over a runtime that takes a fixed time per step
// and makes no tokens of its own worth reading, so the gateway's cost (intake,
// engine host work, detokenization, SSE, JSON) can be measured and profiled on
// any machine, without a GPU. Point `npm run bench:serve -- --url` at it:
//   node [--cpu-prof] dist/bench/paced-server.js [--step-ms 27] [--port 8123] [--max-num-seqs 512]
//   node dist/bench/serve.js --url http://127.0.0.1:8123 --vocab-size 100000 --concurrency 2048 --num-prompts 4096
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { serve } from '@hono/node-server';

import { createApp } from '../app/app.js';
import { lazyGrammars, responseStoreOf, type ServerDeps } from '../app/deps.js';
import { engineConfigOf } from '../app/load-model.js';
import { jsonLog } from '../app/logger.js';
import { Metrics } from '../app/metrics.js';
import { ConfigSchema, resolveConfig } from '../config/schema.js';
import { Engine } from '../engine/engine.js';
import type { StepRuntime } from '../engine/types.js';
import { packageRoot } from '../native/binding.js';
import type { StepBatch, StepResult } from '../native/index.js';
import { TokenizerService } from '../tokenizers/tokenizer-service.js';

const { values } = parseArgs({
  options: {
    'step-ms': { type: 'string', default: '27' },
    port: { type: 'string', default: '8123' },
    'max-num-seqs': { type: 'string', default: '512' },
    // A random checkpoint's vocabulary can be larger than its tokenizer's (128,256 against cl100k's
    // 100,277): this share of sampled ids then decodes to no text, as on the GPU benchmark.
    'textless-share': { type: 'string', default: '0' },
  },
});
const textless = Number(values['textless-share']);
const stepMs = Number(values['step-ms']);
const tokenizers = await TokenizerService.create({ dir: join(packageRoot(), 'test', 'fixtures', 'tokenizers', 'cl100k') }, { workers: 1 });
const config = resolveConfig(ConfigSchema.parse({ device: 'cuda', port: Number(values.port), maxNumSeqs: Number(values['max-num-seqs']) }));
const info = { numBlocks: 60000, blockSize: 16, maxPositions: 8192, vocabSize: tokenizers.tokenizer.vocabSize, maxNumTokens: config.maxNumBatchedTokens, maxNumSeqs: config.maxNumSeqs };

/** Sleeps stepMs off the event loop, as a GPU step would, then answers each sampling row with an ordinary token. */
const runtime: StepRuntime = {
  info,
  async step(b: StepBatch): Promise<StepResult> {
    await new Promise((r) => setTimeout(r, stepMs));
    const S = b.queryLens.length;
    const tokens = new Int32Array(S).fill(-1);
    let t = 0;
    for (let s = 0; s < S; s++) {
      t += b.queryLens[s];
      if (!b.sample[s]) continue;
      const h = (b.tokenIds[t - 1] * 31 + b.positions[t - 1] * 7) % 15000;
      tokens[s] = h < textless * 15000 ? info.vocabSize + h : 1000 + h;
    }
    return { tokens, logprobs: new Float32Array(S), topN: 0, topIds: new Int32Array(0), topLogprobs: new Float32Array(0) };
  },
};
const engine = new Engine(runtime, tokenizers.tokenizer, engineConfigOf(config));
const deps: ServerDeps = {
  config, modelName: 'paced', maxModelLen: info.maxPositions, engine, tokenizers, chatTemplate: null,
  metrics: new Metrics(engine), state: { ready: true, draining: false, inFlight: 0 }, created: 0, grammars: lazyGrammars(tokenizers.tokenizer, engine), responses: responseStoreOf(config),
};
engine.onStep = (ms, seqs, n) => deps.metrics.observeStep(ms, seqs, n);
serve({ fetch: createApp(deps, jsonLog('warn')).fetch, port: config.port }, () => process.stderr.write(`paced server (${stepMs} ms steps) at http://127.0.0.1:${config.port}\n`));
process.once('SIGINT', () => process.exit(0));
