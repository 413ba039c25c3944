// How the engine's step budgets serve on the GPU, to choose the cuda defaults
// in config/defaults.ts: one runtime (random weights of a named shape) and, per
// candidate budget, the serving workloads through the engine alone (no HTTP):
// output tok/s, TTFT, inter-token latency and the median decode-only step.
//   node dist/bench/serving-defaults.js [--shape llama-3-8b] [--dtype fp8] [--scale 0.5]
//     [--candidates 512:8192:512,1024:8192:1024]   (maxNumSeqs:maxNumBatchedTokens:maxPrefillTokensWithDecodes)
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Engine } from '../engine/engine.js';
import type { StepRuntime } from '../engine/types.js';
import { packageRoot } from '../native/binding.js';
import { Runtime, type StepBatch } from '../native/index.js';
import { loadTokenizer } from '../tokenizers/tokenizer.js';
import { driveLoad } from './serve-load.js';
import { runStats, summarize, type RequestRecord } from './serve-stats.js';
import { promptIdRange, seededRandom, tokenPrompt } from './serve-workload.js';

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'llama-3-8b' },
    dtype: { type: 'string', default: 'fp8' },
    scale: { type: 'string', default: '1' },
    candidates: { type: 'string', default: '512:8192:512,512:8192:1024,512:8192:8192,1024:8192:1024' },
    only: { type: 'string' },
  },
});

interface Workload { name: string; input: number; output: number; concurrency: number; requests: number }
const scale = Number(values.scale);
const WORKLOADS: Workload[] = [
  { name: '128/128 at 2048 concurrent', input: 128, output: 128, concurrency: 2048, requests: Math.round(4096 * scale) },
  { name: '128/128 at 32 concurrent', input: 128, output: 128, concurrency: 32, requests: Math.round(256 * scale) },
  { name: '1024/128 at 32 concurrent', input: 1024, output: 128, concurrency: 32, requests: Math.round(256 * scale) },
].filter((w) => !values.only || w.name.includes(values.only));

const candidates = values.candidates!.split(',').map((c) => c.split(':').map(Number) as [number, number, number]);
const rt = await Runtime.load({
  dummy: { config: values.shape!, seed: 1 },
  device: 'cuda',
  dtype: values.dtype as 'fp8',
  maxNumSeqs: Math.max(...candidates.map((c) => c[0])),
  maxNumTokens: Math.max(...candidates.map((c) => c[1])),
});
console.log(`${values.shape} ${values.dtype} on ${rt.info.deviceName}: KV pool ${rt.info.numBlocks} blocks of ${rt.info.blockSize} tokens`);
const tokenizer = loadTokenizer(join(packageRoot(), 'test', 'fixtures', 'tokenizers', 'cl100k'));

let decodeSteps: number[] = [];
const timed: StepRuntime = {
  info: rt.info,
  pipelined: rt.pipelined,
  async step(b: StepBatch) {
    const t0 = performance.now();
    const r = await rt.step(b);
    if (b.tokenIds.length === b.queryLens.length) decodeSteps.push(performance.now() - t0);
    return r;
  },
};

console.log('| seqs:tokens:prefill-with-decodes | workload | output tok/s | TTFT p50 / p99 ms | ITL p50 / p99 ms | median decode step ms | ITL p99 / decode step |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (const [seqs, tokens, prefill] of candidates) {
  for (const w of WORKLOADS) {
    const engine = new Engine(timed, tokenizer, { maxNumSeqs: seqs, maxNumBatchedTokens: tokens, maxPrefillTokensWithDecodes: prefill, maxWaiting: Infinity });
    const rand = seededRandom(5);
    const range = promptIdRange(100_000);
    const prompts = Array.from({ length: w.requests }, () => tokenPrompt(rand, w.input, range));
    decodeSteps = [];
    const load = await driveLoad({ concurrency: w.concurrency, offsetsMs: new Array(w.requests).fill(0) }, async (i) => {
      const start = performance.now();
      const rec: RequestRecord = { ok: true, start, end: start, tokenTimes: [], completionTokens: 0, promptTokens: w.input, streamed: true };
      for await (const d of engine.submit({ id: `q${i}`, promptTokens: prompts[i], sampling: { temperature: 0 }, stop: { maxTokens: w.output, ignoreEos: true } })) {
        if (d.tokenIds.length) {
          rec.tokenTimes.push(performance.now());
          rec.completionTokens += d.tokenIds.length;
        }
        if (d.finish && d.finish.reason !== 'length') [rec.ok, rec.error] = [false, d.finish.error ?? d.finish.reason];
      }
      rec.end = performance.now();
      return rec;
    });
    const s = runStats(load.records, load.endMs - load.startMs);
    const step = summarize(decodeSteps).p50;
    console.log(`| ${seqs}:${tokens}:${prefill} | ${w.name} | ${s.outputTokPerS.toFixed(0)} | ${s.ttft.p50.toFixed(0)} / ${s.ttft.p99.toFixed(0)} | ` +
      `${s.itl.p50.toFixed(1)} / ${s.itl.p99.toFixed(1)} | ${step.toFixed(2)} | ${(s.itl.p99 / step).toFixed(2)}${s.failed ? ` (${s.failed} failed: ${s.firstError})` : ''} |`);
  }
}
await rt.close();
tokenizer.free();
