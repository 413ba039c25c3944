import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { DEVICE_DEFAULTS, RUNTIME_DEFAULTS, defaultThreads } from '../config/defaults.js';

import { loadAddon, packageRoot, type NativeRuntimeHandle, type NativeStepResult } from './binding.js';
import type { SamplingColumns } from '../engine/sampling-columns.js';
import { DUMMY_SHAPES } from './dummy-shapes.js';
import { readCheckpoint } from './checkpoint.js';
import { parseModelConfig, readModelConfig, type ModelConfig } from './model-config.js';

export type { ModelConfig } from './model-config.js';

export interface RuntimeOptions {
  /** A HF checkpoint directory (config.json + safetensors). */
  modelDir?: string;
  /** Random weights of a named shape ('llama-3-8b', 'llama-2-7b') or of an HF-style config (benchmarks), instead of modelDir. */
  dummy?: { config: Record<string, unknown> | string; seed?: number };
  device?: 'cpu' | 'cuda';
  /** cuda: what the GEMMs read. (The CPU backend computes in float32 from the checkpoint.) */
  dtype?: 'bf16' | 'fp8';
  /** cuda: share of the card for weights, workspace and KV pool. */
  gpuMemoryFraction?: number;
  /** Tokens per KV block. */
  blockSize?: number;
  /** Bytes of KV cache; the pool holds as many blocks as fit (cuda: at most this; undefined: what the memory fraction leaves). */
  kvCacheBytes?: number;
  /** Most tokens one step may carry. */
  maxNumTokens?: number;
  /** Most sequences one step may carry. */
  maxNumSeqs?: number;
  /** Worker threads for the forward pass (over all ranks). */
  threads?: number;
  /** 'fp8': an E4M3 KV cache with per-layer scales of 1.0; 'int8': INT8 with a scale per token and head (both cuda only); 'auto' (default): bf16 on cuda, float32 on cpu. */
  kvCacheDtype?: 'auto' | 'fp8' | 'int8';
  /**
   * 'int8': weight-only INT8 projections with per-channel scales, quantized at load; 'w8a8' (cuda only):
   * the same weights, and activations quantized per token to INT8 for cuBLASLt's INT8 tensor cores.
   */
  quantization?: 'int8' | 'w8a8';
  /** Ranks the model is cut over, Megatron-style (cpu only so far: ranks are threads meeting in an in-process all-reduce). */
  tensorParallelSize?: number;
  /** cuda: backend knobs (defaults: RUNTIME_DEFAULTS.cuda). */
  cuda?: Partial<CudaKnobs>;
}

export interface CudaKnobs {
  /** No few-row path (but for INT8 weights) and the decode kernel for every decode step: a row's logits never depend on its batch. */
  batchInvariant: boolean;
  /** Decode steps replayed from captured CUDA graphs. */
  cudaGraphs: boolean;
  /** Programmatic dependent launch between the backend's kernels (sm_90). */
  pdl: boolean;
  /** Fused GEMVs for steps of at most 4 tokens. */
  fusedGemv: boolean;
  /** The prefill and decode attention kernels (off: attention.cu for every row, the tests' reference). */
  fastAttention: boolean;
  /** sm_90a: prompt rows on the warp-specialized, persistent prefill kernel (the same bits; on by default where prefillRopeQ serves: 2048/128 about 3% faster on the H200, bench/RESULTS.md). Off: attention_prefill_sm90.cu. */
  warpSpecializedPrefill: boolean;
  /** Mixed steps: the generated tokens' decode attention on a second CUDA stream, beside the prompt rows' prefill kernel (one bound by memory, the other by issue), joined before the O projection. The same bits; on by default (2048/128 about 1% faster, 2048/2048 the same). */
  overlapDecodeAttention: boolean;
  /** Prompt rows' q turned by RoPE inside the prefill kernel, from the QKV projection's bf16 output (8 bytes a q value fewer through memory: the RoPE kernel reads none and writes no float32 for the kernel to read back; the same bits, on by default; not GPT-J). */
  prefillRopeQ: boolean;
  /** Prompt rows' Q K^T on E4M3 tensor cores: the cache's E4M3 K as it is and q rounded to E4M3 with a scale a row, as TensorRT-LLM's FP8 context attention does (P V in f16 unless fp8PrefillValues). Needs an fp8 KV cache, head_dim 128 and the warp-specialized kernel; ignored elsewhere. Other bits than the f16 path; on by default, as vLLM's and TensorRT-LLM's FP8 attention quantize q for an FP8 cache. */
  fp8PrefillScores: boolean;
  /** With fp8PrefillScores: prompt rows' P V on E4M3 tensor cores too, as FlashAttention-3's FP8 path: P times 256 rounded to E4M3, V the cache's bytes transposed in shared memory by the producer warps (instead of widened to f16). Other bits; on by default (H200, 2048/128 +0.6%; on a trained head_dim-128 model +0.03% perplexity and 98.8% top-1 agreement against FP8 scores alone), as TensorRT-LLM's FP8 context attention and FlashAttention-3's FP8 path run both products in FP8. */
  fp8PrefillValues: boolean;
  /** With fp8PrefillValues: the prefill kernel's consumers take two K/V tiles an iteration (one row maximum, one rescale of O, one hand-over for 128 positions) with a leaner softmax: q's row scale and P's 2^8 folded into the exponent, corr exactly 1 where a row's maximum stays so the rescale is skipped, the maximum moved only past 0.75 log2 units (FlashAttention-4's conditional rescaling), trees for the row maximum and sum; its producer indexes cache slots in 32 bits. Written from an ncu profile of the FP8-values kernel (FMUL 20% of its instructions, 99.2% of tiles rescaled); other bits; off by default until measured on a GPU. */
  prefillPairs: boolean;
  /** The batched path's residual stream in bf16 rather than float32, as transformers keeps it in a bf16 model: each residual add rounded to bf16, and the norms read and write half the bytes (at 8,192 tokens a step, 235 MB a norm instead of 369). Other bits; off by default until measured. The few-row path keeps float32. */
  bf16Residual: boolean;
  /** FP8 weights: the batched path's O and down GEMMs add their output into the float32 residual stream in their epilogue (cuBLASLt's beta = 1 with C = D; the row GEMM rounds its add the same way), so the norm after each reads the stream and writes nothing back. About the same bytes move (at 8,192 tokens a step, 436 MB a sublayer either way: the epilogue now reads and writes the float32 stream where it wrote a bf16 delta), but the epilogue's share hides under the GEMM's arithmetic (+19 us on each at 8,192 rows, against the norm's 52 saved). Other bits (the projection's output is no longer rounded to bf16 before the add). On by default (measured on Llama-3-8B FP8: 2048/128 +1.0%, batch 1 2.62 against 2.66 ms a token); ignored without FP8 weights, with bf16Residual, GPT-J's parallel block or an O or down bias; the few-row path keeps its own adds. */
  residualInGemm: boolean;
  /** The decode kernel's warps a (token, KV head) block: 0 (default) chooses them per step, as many as keep one wave; 1, 2, 4, 8 or 16 forces that many (at most what the head size and cache allow), for measuring. The same bits either way. */
  decodeWarps: number;
  /** The warp-specialized prefill kernel's blocks, each walking (query tile, KV head) items in turn: 0 (default) one an SM; N at most N (1 puts every item through one block), for tests and measuring. The same bits either way. */
  prefillBlocks: number;
  /** MiB of weights each launch of the few-row GEMM (decode steps of up to 64 tokens) asks into L2 before it waits for the kernel before it, beyond the stages it already copies then, shared evenly by its weight rows: the kernels between two projections (norms, RoPE, attention, quantization) are chains of dependent loads that leave the memory idle, and the projection after them can read what arrived from L2. 0 (default) none; the same bits either way. Not yet measured on a GPU (bench/RESULTS.md, twenty-second session): the H200's L2 is 50 MB, so try 8 to 32. */
  rowGemmPrefetchMiB: number;
  /** MiB of the next projection's weights that the few-row GEMM's QKV, O and down launches ask into L2 as they run (O's for QKV, gate/up's for O, the next layer's QKV for down): the same leading bytes of each of its rows, a few rows with each stage of their own. At one token those three stream about 2.8 TB/s against gate/up's 3.8, so the memory has room beside them. 0 (default) none; the same bits either way. Not yet measured on a GPU (bench/RESULTS.md, twenty-third session): the H200's L2 is 50 MB, so try 8 to 32. */
  rowGemmNextMiB: number;
  /** Bytes each row of the FP8 projections' weights is padded past its K on the device (a multiple of 128, so that rows start on cache lines; up to 1,024; cuBLASLt and the row GEMM read them with that stride). At one token QKV, O and down stream about 2.8 TB/s against gate/up's 3.8, and a one-wave launch's blocks ask for the same column of rows 4 or 14 KB apart at once, addresses alike in their low bits; padded rows spread them. 0 (default) packed; the same bits either way; about 5% more weight memory at 256 on Llama-3-8B (0.35 GB). Ignored, with a word, without FP8 weights and where the few-row GEMVs serve (outside batch-invariant mode). Not yet measured on a GPU (bench/RESULTS.md, twenty-fourth session: bench/weight-stream.sh's pad rows first). */
  weightRowPad: number;
  /** Per-step GPU time and layer 0's ops on stderr, NVTX ranges for nsys. */
  profile: boolean;
}

// Every option left out takes its default from config/defaults.ts, the one owner.


export interface RuntimeInfo extends ModelConfig {
  device: 'cpu' | 'cuda';
  deviceName: string;
  /** GPU bytes held: weights, workspace and KV pool (0 on CPU). */
  deviceBytesUsed: number;
  weightDtype: string;
  /** CUDA: what the load-time GEMM tuning chose for each weight shape and row bucket, a line each (kernel, time, and any row-GEMM or invariance mismatch); empty on CPU. */
  gemmTuning: string;
  /** CUDA: bytes of the layers' projection weights (QKV, O, gate/up, down) as the device holds them, padded rows included (CudaKnobs.weightRowPad); 0 on CPU. */
  projectionWeightBytes: number;
  blockSize: number;
  numBlocks: number;
  bytesPerBlock: number;
  numThreads: number;
  maxNumTokens: number;
  maxNumSeqs: number;
}

/**
 * One step's flat mixed batch. T tokens from S sequences; sequence s owns the
 * next queryLens[s] entries of tokenIds/positions (consecutive positions), and
 * row s of blockTables ([S, blockTableStride]) maps its positions to KV blocks.
 */
export interface StepBatch extends SamplingColumns {
  tokenIds: Int32Array;
  /**
   * Async scheduling: feed[t] >= 0 makes token t the token the previous step
   * sampled for its sequence feed[t] (not known on the host when this step is
   * launched); tokenIds[t] is then ignored. Omitted: every token is known.
   */
  feed?: Int32Array;
  positions: Int32Array;
  queryLens: Int32Array;
  blockTables: Int32Array;
  blockTableStride: number;
  /** 1 where the chunk ends the sequence's known tokens and a token is sampled. */
  sample: Uint8Array;
  /**
   * Tokens at positions below promptLens[s] are sequence s's prompt, the rest
   * tokens it generated. The CUDA backend takes a row's attention kernel from
   * that, not from the step around it, so a request's tokens do not depend on
   * how its prompt was chunked. Omitted: a one-token query counts as generated.
   */
  promptLens?: Int32Array;
  /**
   * logit_bias as CSR: sequence s adds biasValues[k] to logit biasIds[k] for
   * k in [biasStart[s], biasStart[s + 1]); omitted when no sequence has
   * biases. Sampling sees the biased logits; returned logprobs stay those of
   * the raw ones.
   */
  biasStart?: Int32Array;
  biasIds?: Int32Array;
  biasValues?: Float32Array;
  /**
   * Penalty history as CSR: a sequence with a non-empty range (re)starts its
   * penalty slot from these tokens (its prompt and output so far; the first
   * historyPrompt[s] are prompt tokens). The runtime counts sampled tokens
   * itself after that. Omitted when no slot restarts.
   */
  historyStart?: Int32Array;
  historyTokens?: Int32Array;
  historyPrompt?: Int32Array;
  /** Rows of grammar bitmasks the step samples under (maskRow); the masks come from step()'s fillMasks. */
  numMaskRows?: number;
  /** Also return the raw logits of sampled rows (tests, parity). */
  returnLogits?: boolean;
}

/**
 * Rows of sequences that did not sample hold token -1 and NaN. logprobs are
 * those of the chosen tokens under the raw (unscaled) logits; topIds /
 * topLogprobs are [S, topN]; logits is [S, vocab] when returnLogits was set.
 */
export type StepResult = NativeStepResult;

/** Writes a step's grammar bitmasks into masks ([rows, ceil(vocab / 32)] words, bit set = allowed). */
export type MaskFiller = (masks: Int32Array) => void;

/** A loaded model on one device; drive it with step(). */
export class Runtime {
  private inFlight: Promise<unknown> = Promise.resolve();

  private constructor(private readonly handle: NativeRuntimeHandle, readonly info: RuntimeInfo) {}

  static async load(options: RuntimeOptions): Promise<Runtime> {
    const device = options.device ?? 'cpu';
    if (!options.modelDir === !options.dummy) throw new Error('give exactly one of modelDir and dummy');
    const config = options.modelDir ? readModelConfig(options.modelDir) : parseModelConfig(dummyShape(options.dummy!.config), 'dummy config');
    const weights = options.modelDir
      ? readCheckpoint(options.modelDir)
      : { dummySeed: options.dummy!.seed ?? 0 };
    const d = DEVICE_DEFAULTS[device];
    const sizes = {
      blockSize: options.blockSize ?? RUNTIME_DEFAULTS.blockSize,
      // 0 tells the CUDA backend to take what the memory fraction leaves.
      kvCacheBytes: options.kvCacheBytes ?? d.kvCacheBytes ?? 0,
      maxNumTokens: options.maxNumTokens ?? d.maxNumBatchedTokens,
      maxNumSeqs: options.maxNumSeqs ?? d.maxNumSeqs,
      numThreads: options.threads ?? defaultThreads(),
      tensorParallelSize: options.tensorParallelSize ?? RUNTIME_DEFAULTS.tensorParallelSize,
      quantization: options.quantization ?? (device === 'cuda' && options.dtype !== 'fp8' && config.int8Activations ? 'w8a8' : undefined),
      kvCacheDtype: options.kvCacheDtype ?? 'auto',
    };
    const gpu =
      device === 'cuda'
        ? {
            device,
            cudaLibrary: cudaLibrary(),
            dtype: options.dtype ?? RUNTIME_DEFAULTS.cudaDtype,
            gpuMemoryFraction: options.gpuMemoryFraction ?? RUNTIME_DEFAULTS.gpuMemoryFraction,
            ...RUNTIME_DEFAULTS.cuda,
            ...Object.fromEntries(Object.entries(options.cuda ?? {}).filter(([, v]) => v !== undefined)),
          }
        : { device };
    const handle = new (loadAddon().NativeRuntime)({ config, ...weights, ...sizes, ...gpu });
    await handle.load();
    const native = handle.info();
    return new Runtime(handle, {
      ...config,
      device,
      ...native,
      maxNumTokens: sizes.maxNumTokens,
      maxNumSeqs: sizes.maxNumSeqs,
    });
  }

  /** Steps may be launched while one runs (async scheduling; the engine's step N + 1 while the device runs N). */
  readonly pipelined = true;

  /**
   * Runs one forward pass and samples; the work happens off the event loop.
   * One more step may be launched before this one's result is in (not while
   * a step with grammar masks is in flight); results come in launch order.
   * With batch.numMaskRows, fillMasks writes the grammar bitmasks ([rows,
   * ceil(vocab / 32)] words) while the forward pass runs; the runtime waits
   * for them only to sample.
   */
  async step(batch: StepBatch, fillMasks?: MaskFiller): Promise<StepResult> {
    const result = this.handle.step(batch) as Promise<NativeStepResult>;
    // Results come in launch order: the last one settling means every step has.
    this.inFlight = result.catch(() => undefined);
    if (batch.numMaskRows) this.provideMasks(batch.numMaskRows, fillMasks);
    return result;
  }

  private masks = new Int32Array(0);

  private provideMasks(rows: number, fill: MaskFiller | undefined): void {
    const words = rows * Math.ceil(this.info.vocabSize / 32);
    if (this.masks.length < words) this.masks = new Int32Array(words * 2);
    const masks = this.masks.subarray(0, words);
    try {
      if (!fill) throw new Error('the batch has mask rows but no mask filler was given');
      fill(masks);
      this.handle.provideMasks(masks);
    } catch (e) {
      this.handle.provideMasks(null, (e as Error).message);
    }
  }

  /** Frees weights and KV cache once any running step has finished. */
  async close(): Promise<void> {
    await this.inFlight;
    this.handle.close();
  }
}

function dummyShape(config: Record<string, unknown> | string): Record<string, unknown> {
  if (typeof config !== 'string') return config;
  const shape = DUMMY_SHAPES[config];
  if (!shape) throw new Error(`unknown dummy shape '${config}' (known: ${Object.keys(DUMMY_SHAPES).join(', ')})`);
  return shape;
}

/** The CUDA backend library, built by scripts/build-cuda.mjs where nvcc and cuBLASLt exist. */
export function cudaLibrary(): string {
  const path = join(packageRoot(), 'build', 'cuda', 'libtachyon_cuda.so');
  if (!existsSync(path))
    throw new Error(`the CUDA backend is not built (${path} is missing); it builds during npm install where nvcc and cuBLASLt are found (npm run build:cuda)`);
  return path;
}
