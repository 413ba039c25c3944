// The attention kernels of Llama-3-8B FP8 (E4M3 cache) at the benchmark's shapes, on a KV pool
// small enough that a profiler's kernel replay has little memory to save and restore: one step
// of four 2048-token prompts (the prefill kernel, as in 2048/128), then 64 sequences of 3,072
// prompt tokens decoding (the decode kernel at 2048/2048's context).
//   ncu --clock-control none -k regex:prefill_attention --launch-skip 8 --launch-count 1 node dist/bench/attention-probe.js
//   node dist/bench/attention-probe.js --profile   (layer 0's kernels per step on stderr)
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Engine } from '../engine/engine.js';
import { packageRoot } from '../native/binding.js';
import { Runtime } from '../native/index.js';
import { loadTokenizer } from '../tokenizers/tokenizer.js';

const { values } = parseArgs({ options: { profile: { type: 'boolean' }, 'no-cuda-graphs': { type: 'boolean' } } });
const rt = await Runtime.load({
  dummy: { config: 'llama-3-8b', seed: 1 },
  device: 'cuda',
  dtype: 'fp8',
  kvCacheDtype: 'fp8',
  kvCacheBytes: 14 * 2 ** 30,
  maxNumSeqs: 64,
  maxNumTokens: 8192,
  cuda: { profile: values.profile, cudaGraphs: !values['no-cuda-graphs'] },
});
const engine = new Engine(rt, loadTokenizer(join(packageRoot(), 'test', 'fixtures', 'tokenizers', 'cl100k')), {
  maxNumBatchedTokens: 8192,
});
let seed = 5;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % rt.info.vocabSize);

async function wave(name: string, n: number, input: number, output: number) {
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const prompt = Array.from({ length: input }, rand);
      for await (const _ of engine.submit({ id: `${name}${i}`, promptTokens: prompt, sampling: { temperature: 0 }, stop: { maxTokens: output, ignoreEos: true } }));
    }),
  );
  console.log(`${name}: ${n} x ${input}/${output} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
}

await wave('prefill', 4, 2048, 1);
await wave('decode', 64, 3072, 32);
await rt.close();
