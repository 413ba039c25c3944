// Offline throughput through the real engine and the CUDA backend, counted as
// trtllm-bench counts it: N requests of fixed input/output length queued at
// once, EOS ignored, output tokens over the wall time from the first request's
// start to the last one's end. Random weights of a named shape, random prompts.
//   node dist/bench/throughput.js [--only NAME] [--scale 0.25]
// bench/run-throughput.sh runs this beside the transformers baseline.
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Engine } from '../engine/engine.js';
import type { StepRuntime } from '../engine/types.js';
import { packageRoot } from '../native/binding.js';
import { DUMMY_SHAPES } from '../native/dummy-shapes.js';
import { Runtime, type StepBatch } from '../native/index.js';
import { loadTokenizer } from '../tokenizers/tokenizer.js';
import { weightBytesPerToken } from './weight-bytes.js';

interface Workload {
  name: string;
  shape: string;
  dtype: 'fp8' | 'bf16';
  /** INT8 weights (RuntimeOptions.quantization), with dtype bf16. */
  quantization?: 'int8' | 'w8a8';
  requests: number;
  input: number;
  output: number;
  maxSeqs: number;
  latency?: boolean;
  /** Run as many requests as the KV pool holds at full length (at most `requests` and maxSeqs), one wave. */
  fillPool?: boolean;
}

const WORKLOADS: Workload[] = [
  // 128/128 rows run 1,024 sequences a step (vLLM's default on large GPUs): the FP8 KV pool holds
  // them, and per-step costs spread over twice the tokens (H200, half scale: 25,236 -> 25,902 at 512).
  { name: 'llama-3-8b fp8 128/128', shape: 'llama-3-8b', dtype: 'fp8', requests: 8192, input: 128, output: 128, maxSeqs: 1024 },
  // 512 sequences: at 256 the pool stayed 29% full and most steps were decode-only (H200, same call:
  // 3,317 output tok/s at 256, 3,368 at 512, KV peak 66,351 of 118,074 blocks).
  { name: 'llama-3-8b fp8 2048/128', shape: 'llama-3-8b', dtype: 'fp8', requests: 1024, input: 2048, output: 128, maxSeqs: 512 },
  // TensorRT-LLM's long-output rows (H200: 25,399 and 11,969 output tok/s; it queues 3,000 and 1,500
  // requests with the batch as large as memory allows). One wave each, of as many sequences as the
  // KV pool holds at full length (E4M3 pool of 1.89 M tokens: 869 and 461).
  { name: 'llama-3-8b fp8 128/2048', shape: 'llama-3-8b', dtype: 'fp8', requests: 3000, input: 128, output: 2048, maxSeqs: 1024, fillPool: true },
  { name: 'llama-3-8b fp8 2048/2048', shape: 'llama-3-8b', dtype: 'fp8', requests: 1500, input: 2048, output: 2048, maxSeqs: 512, fillPool: true },
  { name: 'llama-2-7b fp8 128/128', shape: 'llama-2-7b', dtype: 'fp8', requests: 2048, input: 128, output: 128, maxSeqs: 1024 },
  // Issue 17's INT8 row: W8A8 (per-token INT8 activations, cuBLASLt's INT8 tensor cores); no published peer figure.
  { name: 'llama-3-8b w8a8 128/128', shape: 'llama-3-8b', dtype: 'bf16', quantization: 'w8a8', requests: 8192, input: 128, output: 128, maxSeqs: 1024 },
  // head_dim 256 (16 heads of 256, no GQA): TensorRT-LLM's published H200 figure is 27,304 output tok/s.
  // Up to 2,048 sequences a step, the batch as large as the E4M3 pool allows (229 KB a token: about
  // 2,100 sequences of 256 tokens), as TensorRT-LLM runs it (H200: 26,482 at 1,024, 27,714 at 2,048).
  { name: 'gpt-j-6b fp8 128/128', shape: 'gpt-j-6b', dtype: 'fp8', requests: 2048, input: 128, output: 128, maxSeqs: 2048 },
  { name: 'llama-3-8b fp8 batch 1', shape: 'llama-3-8b', dtype: 'fp8', requests: 1, input: 128, output: 256, maxSeqs: 512 },
  // Small-batch latency (steps of at most 4 tokens take the few-row path); --scale leaves these alone.
  { name: 'llama-3-8b fp8 batch 2', shape: 'llama-3-8b', dtype: 'fp8', requests: 2, input: 128, output: 256, maxSeqs: 512, latency: true },
  { name: 'llama-3-8b fp8 batch 4', shape: 'llama-3-8b', dtype: 'fp8', requests: 4, input: 128, output: 256, maxSeqs: 512, latency: true },
  { name: 'llama-3-8b fp8 batch 8', shape: 'llama-3-8b', dtype: 'fp8', requests: 8, input: 128, output: 256, maxSeqs: 512, latency: true },
];

// --no-batch-invariant and --profile: the backend knobs of the same names (RuntimeOptions.cuda;
// batch invariance is on by default, as in the server). --no-warp-specialized-prefill: prompt rows on
// attention_prefill_sm90.cu (the knob warpSpecializedPrefill off; on by default: attention_prefill_sm90_ws.cu).
// --kv-cache-dtype: fp8 by default, as TensorRT-LLM's published FP8 rows run; auto = bf16.
// --max-num-seqs: every workload's sequences per step instead of its own.
// --no-async-scheduling: the engine schedules each step after the last one's result (as the server's flag).
// --decode-warps N: the decode kernel's warps a block forced (CudaKnobs.decodeWarps; default chosen per step).
// --no-overlap-decode-attention: mixed steps run the decode kernel after the prefill kernel on one stream (CudaKnobs.overlapDecodeAttention, on by default: a second stream beside it).
// --no-prefill-rope-q: the RoPE kernel writes every row's q as float32 for the prefill kernel to read (CudaKnobs.prefillRopeQ off; on by default: the prefill kernel turns its rows' q itself).
// --prefill-blocks N: the warp-specialized prefill kernel's blocks at most N (CudaKnobs.prefillBlocks; default one an SM; 1000000: one block an item, as before it was persistent).
// --row-gemm-prefetch-mib N: the few-row GEMM asks up to N MiB of its weights into L2 before its PDL wait (CudaKnobs.rowGemmPrefetchMiB; default 0: none; the same bits).
// --row-gemm-next-mib N: its QKV, O and down launches ask up to N MiB of the next projection's weights into L2 as they run (CudaKnobs.rowGemmNextMiB; default 0: none; the same bits).
// --weight-row-pad N: the FP8 projections' weight rows N bytes longer than K on the device (CudaKnobs.weightRowPad; default 0: packed; the same bits).
// --prefill-pairs: the FP8-values prefill kernel two K/V tiles an iteration with a leaner softmax (CudaKnobs.prefillPairs; off by default until measured: other bits).
// --bf16-residual: the batched path's residual stream in bf16, as transformers keeps it (CudaKnobs.bf16Residual; off by default: other bits).
// --no-residual-in-gemm: the O and down GEMMs write bf16 deltas the norms add (CudaKnobs.residualInGemm off; on by default: they add into the float32 stream in place).
// --no-fp8-prefill-values: prompt rows' P V in f16 from the widened E4M3 cache (CudaKnobs.fp8PrefillValues off; on by default with FP8 scores: E4M3 tensor cores).
// --no-fp8-prefill-scores: prompt rows' Q K^T in f16 from the widened E4M3 cache (CudaKnobs.fp8PrefillScores off; on by default: E4M3 tensor cores, q rounded with a scale a row).
// --max-num-batched-tokens N: tokens a step (vLLM's flag; default 8,192), the runtime's maxNumTokens and the engine's budget.
const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    scale: { type: 'string', default: '1' },
    'no-batch-invariant': { type: 'boolean' },
    'no-warp-specialized-prefill': { type: 'boolean' },
    profile: { type: 'boolean' },
    'kv-cache-dtype': { type: 'string', default: 'fp8' },
    'max-num-seqs': { type: 'string' },
    'no-async-scheduling': { type: 'boolean' },
    'decode-warps': { type: 'string' },
    'no-overlap-decode-attention': { type: 'boolean' },
    'no-prefill-rope-q': { type: 'boolean' },
    'max-num-batched-tokens': { type: 'string', default: '8192' },
    'prefill-blocks': { type: 'string' },
    'no-fp8-prefill-scores': { type: 'boolean' },
    'no-fp8-prefill-values': { type: 'boolean' },
    'bf16-residual': { type: 'boolean' },
    'prefill-pairs': { type: 'boolean' },
    'row-gemm-prefetch-mib': { type: 'string' },
    'row-gemm-next-mib': { type: 'string' },
    'weight-row-pad': { type: 'string' },
    'no-residual-in-gemm': { type: 'boolean' },
  },
});
const kvCacheDtype = values['kv-cache-dtype'] as 'auto' | 'fp8' | 'int8';
if (!['auto', 'fp8', 'int8'].includes(kvCacheDtype)) throw new Error(`--kv-cache-dtype ${kvCacheDtype}: auto, fp8 or int8`);
const scale = Number(values.scale);
const stepTokens = Number(values['max-num-batched-tokens']);
if (!Number.isInteger(stepTokens) || stepTokens < 1) throw new Error(`--max-num-batched-tokens ${values['max-num-batched-tokens']}: a positive integer`);
const tokenizer = loadTokenizer(join(packageRoot(), 'test', 'fixtures', 'tokenizers', 'cl100k'));

async function run(w: Workload) {
  const rt = await Runtime.load({
    dummy: { config: w.shape, seed: 1 },
    device: 'cuda',
    dtype: w.dtype,
    quantization: w.quantization,
    maxNumSeqs: values['max-num-seqs'] ? Number(values['max-num-seqs']) : w.maxSeqs,
    maxNumTokens: stepTokens,
    kvCacheDtype,
    cuda: {
      batchInvariant: values['no-batch-invariant'] ? false : undefined,
      profile: values.profile,
      warpSpecializedPrefill: values['no-warp-specialized-prefill'] ? false : undefined,
      decodeWarps: values['decode-warps'] ? Number(values['decode-warps']) : undefined,
      overlapDecodeAttention: values['no-overlap-decode-attention'] ? false : undefined,
      prefillRopeQ: values['no-prefill-rope-q'] ? false : undefined,
      prefillBlocks: values['prefill-blocks'] ? Number(values['prefill-blocks']) : undefined,
      fp8PrefillScores: values['no-fp8-prefill-scores'] ? false : undefined,
      fp8PrefillValues: values['no-fp8-prefill-values'] ? false : undefined,
      bf16Residual: values['bf16-residual'],
      prefillPairs: values['prefill-pairs'],
      rowGemmPrefetchMiB: values['row-gemm-prefetch-mib'] ? Number(values['row-gemm-prefetch-mib']) : undefined,
      rowGemmNextMiB: values['row-gemm-next-mib'] ? Number(values['row-gemm-next-mib']) : undefined,
      weightRowPad: values['weight-row-pad'] ? Number(values['weight-row-pad']) : undefined,
      residualInGemm: values['no-residual-in-gemm'] ? false : undefined,
    },
  });
  const blocksPerSeq = Math.ceil((w.input + w.output) / rt.info.blockSize);
  const queued = w.fillPool ? Math.min(w.requests, rt.info.maxNumSeqs, Math.floor(rt.info.numBlocks / blocksPerSeq)) : w.requests;
  const requests = Math.max(1, Math.round(queued * (queued > 1 && !w.latency ? scale : 1)));
  const steps: { ms: number; seqs: number; tokens: number }[] = [];
  // Host time: from one step's result to the next step's call, when no step was on the GPU in
  // between (scheduling, batch building, processing). Under async scheduling the next step is
  // usually launched before the last one's result, and that time is hidden.
  let lastEnd = 0;
  let hostMs = 0;
  let inFlight = 0;
  const timed: StepRuntime = {
    info: rt.info,
    pipelined: rt.pipelined,
    async step(b: StepBatch) {
      const t0 = performance.now();
      if (lastEnd && inFlight === 0) hostMs += t0 - lastEnd;
      inFlight++;
      const r = await rt.step(b);
      inFlight--;
      const end = performance.now();
      // Its own time: from its launch or the last result, whichever came later.
      steps.push({ ms: end - Math.max(t0, lastEnd), seqs: b.queryLens.length, tokens: b.tokenIds.length });
      lastEnd = end;
      return r;
    },
  };
  const engine = new Engine(timed, tokenizer, { maxNumBatchedTokens: stepTokens, asyncScheduling: !values['no-async-scheduling'] });
  let seed = 11;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % rt.info.vocabSize);
  let peakBlocks = 0;
  const sampler = setInterval(() => (peakBlocks = Math.max(peakBlocks, engine.stats().kvBlocksUsed)), 10);
  let produced = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: requests }, async (_, i) => {
      const prompt = Array.from({ length: w.input }, rand);
      for await (const d of engine.submit({ id: `r${i}`, promptTokens: prompt, sampling: { temperature: 0 }, stop: { maxTokens: w.output, ignoreEos: true } }))
        produced += d.tokenIds.length;
    }),
  );
  const wall = (performance.now() - start) / 1000;
  clearInterval(sampler);
  const decode = steps.filter((s) => s.tokens === s.seqs).map((s) => s.ms).sort((a, b) => a - b);
  const all = steps.map((s) => s.ms).sort((a, b) => a - b);
  const result = {
    name: w.name,
    requests,
    outputTps: produced / wall,
    totalTps: ((w.input + w.output) * requests) / wall,
    wall,
    steps: steps.length,
    medianStepMs: all[Math.floor(all.length / 2)],
    medianDecodeStepMs: decode.length ? decode[Math.floor(decode.length / 2)] : NaN,
    meanBatch: steps.reduce((s, x) => s + x.seqs, 0) / steps.length,
    hostMsPerStep: hostMs / Math.max(1, steps.length - 1),
    kvPeak: `${peakBlocks} of ${rt.info.numBlocks} blocks`,
    gpuGiB: rt.info.deviceBytesUsed / 2 ** 30,
  };
  await rt.close();
  return result;
}

const rows = [];
for (const w of WORKLOADS) if (!values.only || w.name.includes(values.only)) rows.push(await run(w));
console.log(`KV cache: ${{ fp8: 'fp8 (E4M3)', int8: 'int8', auto: 'bf16' }[kvCacheDtype]}`);
console.log('| workload | requests | output tok/s | total tok/s | wall s | steps | median step ms | median decode step ms | host ms/step | mean seqs/step | KV peak |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
for (const r of rows)
  console.log(`| ${r.name} | ${r.requests} | ${r.outputTps.toFixed(0)} | ${r.totalTps.toFixed(0)} | ${r.wall.toFixed(1)} | ${r.steps} | ${r.medianStepMs.toFixed(1)} | ${r.medianDecodeStepMs.toFixed(2)} | ${r.hostMsPerStep.toFixed(2)} | ${r.meanBatch.toFixed(0)} | ${r.kvPeak} |`);
const single = rows.find((r) => r.requests === 1);
if (single) {
  console.log(`batch 1: ${single.medianDecodeStepMs.toFixed(2)} ms per output token (median decode step)`);
  // For bench/run-throughput.sh, which sets it beside the bandwidth the transformers script measures.
  const w = WORKLOADS.find((x) => x.requests === 1)!;
  console.log(JSON.stringify({ batch1_ms_per_token: single.medianDecodeStepMs, weight_bytes_per_token: weightBytesPerToken(DUMMY_SHAPES[w.shape], w.dtype) }));
}
tokenizer.free();
