// The attention kernels of Llama-3-8B FP8 (E4M3 cache; --shape gpt-j-6b etc. for another of
// native/dummy-shapes.ts) at the benchmark's shapes, on a KV pool
// small enough that a profiler's kernel replay has little memory to save and restore: one step
// of four 2048-token prompts (the prefill kernel, as in 2048/128), then --decode-seqs sequences
// of --decode-context prompt tokens decoding (default 256 x 832: one warp a (token, KV head), as
// at the long rows' 461-866 sequences; 14 GB of cache). It prints how many attention launches each
// phase made, so a profiler can skip to a pure decode step (bench/profile-kernels.sh does).
// --decode-output N (default 32) past the prompts' admission (about decode-seqs x decode-context / 8,192 steps) keeps
// all of them decoding together, as at 2048/2048's steady state (192 x 3000, output 160).
//   node dist/bench/attention-probe.js [--profile] [--shape NAME] [--prefill-len N] [--decode-seqs N --decode-context N --decode-output N]
//     [--no-warp-specialized-prefill]  (prompt rows on attention_prefill_sm90.cu, not the default attention_prefill_sm90_ws.cu)
//     [--decode-warps N]  (the decode kernel's warps a block forced: CudaKnobs.decodeWarps)
//     [--prefill-pairs]  (the FP8-values prefill kernel two tiles an iteration: CudaKnobs.prefillPairs)
//     [--max-num-seqs N]  (default --decode-seqs; the CUDA graphs' buckets stop there, so 512 replays
//                          a 461-sequence step as the benchmark's 2048/2048 does, where 461 runs it eager)
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Engine } from '../engine/engine.js';
import { DUMMY_SHAPES } from '../native/dummy-shapes.js';
import { packageRoot } from '../native/binding.js';
import { Runtime } from '../native/index.js';
import { loadTokenizer } from '../tokenizers/tokenizer.js';

const { values } = parseArgs({
  options: {
    profile: { type: 'boolean' },
    'no-cuda-graphs': { type: 'boolean' },
    'no-warp-specialized-prefill': { type: 'boolean' },
    'decode-warps': { type: 'string' },
    'prefill-pairs': { type: 'boolean' },
    'max-num-seqs': { type: 'string' },
    'decode-seqs': { type: 'string', default: '256' },
    'decode-context': { type: 'string', default: '832' },
    'decode-output': { type: 'string', default: '32' },
    shape: { type: 'string', default: 'llama-3-8b' },
    'prefill-len': { type: 'string', default: '2048' },
  },
});
const shape = DUMMY_SHAPES[values.shape!];
if (!shape) throw new Error(`--shape: one of ${Object.keys(DUMMY_SHAPES).join(', ')}`);
const n = (...keys: string[]) => Number(keys.map((k) => shape[k]).find((v) => v != null));
const heads = n('num_attention_heads', 'n_head'), hidden = n('hidden_size', 'n_embd');
// E4M3 cache bytes a token: K and V, one byte a dim, every layer and KV head.
const kvBytesPerToken = 2 * n('num_hidden_layers', 'n_layer') * n('num_key_value_heads', 'num_attention_heads', 'n_head') * (hidden / heads);
const decodeSeqs = Number(values['decode-seqs']);
const decodeContext = Number(values['decode-context']);
const decodeOutput = Number(values['decode-output']);
const rt = await Runtime.load({
  dummy: { config: values.shape!, seed: 1 },
  device: 'cuda',
  dtype: 'fp8',
  kvCacheDtype: 'fp8',
  // Llama-3-8B: 64 KB a token (32 layers x 8 KV heads x 128 dims x K and V, one byte each); and 1 GB spare.
  kvCacheBytes: decodeSeqs * (decodeContext + decodeOutput + 16) * kvBytesPerToken + 2 ** 30,
  maxNumSeqs: values['max-num-seqs'] ? Number(values['max-num-seqs']) : decodeSeqs,
  maxNumTokens: 8192,
  cuda: {
    profile: values.profile,
    cudaGraphs: !values['no-cuda-graphs'],
    warpSpecializedPrefill: values['no-warp-specialized-prefill'] ? false : undefined,
    decodeWarps: values['decode-warps'] ? Number(values['decode-warps']) : undefined,
    prefillPairs: values['prefill-pairs'],
  },
});
let seed = 5;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % rt.info.vocabSize);

// Steps by kind, as the runtime saw them. The decode kernel runs (once a layer) in every step with
// a one-token sequence; for each decode-only step, how many such steps came before it.
let steps = 0;
let decodeSteps = 0;
let oneTokenSteps = 0;
const decodeOnlyAt: number[] = [];
const counted = {
  info: rt.info,
  pipelined: rt.pipelined,
  step: (b: Parameters<Runtime['step']>[0], fill?: Parameters<Runtime['step']>[1]) => {
    steps++;
    if (b.tokenIds.length === b.queryLens.length) {
      decodeSteps++;
      decodeOnlyAt.push(oneTokenSteps);
    }
    if (b.queryLens.some((n) => n === 1)) oneTokenSteps++;
    return rt.step(b, fill);
  },
};

const engine = new Engine(counted, loadTokenizer(join(packageRoot(), 'test', 'fixtures', 'tokenizers', 'cl100k')), {
  maxNumBatchedTokens: 8192,
});
async function wave(name: string, n: number, input: number, output: number) {
  const t0 = performance.now();
  const before = { steps, decodeSteps };
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const prompt = Array.from({ length: input }, rand);
      for await (const _ of engine.submit({ id: `${name}${i}`, promptTokens: prompt, sampling: { temperature: 0 }, stop: { maxTokens: output, ignoreEos: true } }));
    }),
  );
  const all = steps - before.steps, decode = decodeSteps - before.decodeSteps;
  console.log(`${name}: ${n} x ${input}/${output} in ${((performance.now() - t0) / 1000).toFixed(2)} s, ` +
    `${all} steps (${decode} decode-only; ${rt.info.numLayers} attention launches a step)`);
}

await wave('prefill', 4, Number(values['prefill-len']), 1);
await wave('decode', decodeSeqs, decodeContext, decodeOutput);
// Layer 8 of the first step (four 2048-token prompts) and of the middle decode-only step.
const mid = decodeOnlyAt.length >> 1;
console.log(`prefill kernel: --launch-skip 8 (layer 8 of the first step)`);
console.log(`decode kernel: --launch-skip ${rt.info.numLayers * decodeOnlyAt[mid] + 8} (layer 8 of decode-only step ${mid + 1} of ${decodeOnlyAt.length})`);
await rt.close();
