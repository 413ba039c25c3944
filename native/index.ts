import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { DEVICE_DEFAULTS, RUNTIME_DEFAULTS, defaultThreads } from '../config/defaults.js';

import { loadAddon, packageRoot, type NativeRuntimeHandle, type NativeStepResult } from './binding.js';
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
  /** Worker threads for the forward pass. */
  threads?: number;
}

// Every option left out takes its default from config/defaults.ts, the one owner.


export interface RuntimeInfo extends ModelConfig {
  device: 'cpu' | 'cuda';
  deviceName: string;
  /** GPU bytes held: weights, workspace and KV pool (0 on CPU). */
  deviceBytesUsed: number;
  weightDtype: string;
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
export interface StepBatch {
  tokenIds: Int32Array;
  positions: Int32Array;
  queryLens: Int32Array;
  blockTables: Int32Array;
  blockTableStride: number;
  /** 1 where the chunk ends the sequence's known tokens and a token is sampled. */
  sample: Uint8Array;
  /** 0 = greedy. */
  temperature: Float32Array;
  /** <= 0 = off. */
  topK: Int32Array;
  /** 1 = off. */
  topP: Float32Array;
  /** 0 = off. */
  minP: Float32Array;
  seed: BigUint64Array;
  /** Top logprobs wanted per sequence, 0..20. */
  numLogprobs: Int32Array;
  /**
   * logit_bias as CSR (CPU backend only so far): sequence s adds biasValues[k]
   * to logit biasIds[k] for k in [biasStart[s], biasStart[s + 1]); omitted
   * when no sequence has biases. Sampling sees the biased logits; returned
   * logprobs stay those of the raw ones.
   */
  biasStart?: Int32Array;
  biasIds?: Int32Array;
  biasValues?: Float32Array;
  /** Also return the raw logits of sampled rows (tests, parity). */
  returnLogits?: boolean;
}

/**
 * Rows of sequences that did not sample hold token -1 and NaN. logprobs are
 * those of the chosen tokens under the raw (unscaled) logits; topIds /
 * topLogprobs are [S, topN]; logits is [S, vocab] when returnLogits was set.
 */
export type StepResult = NativeStepResult;

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
    };
    const gpu =
      device === 'cuda'
        ? { device, cudaLibrary: cudaLibrary(), dtype: options.dtype ?? RUNTIME_DEFAULTS.cudaDtype, gpuMemoryFraction: options.gpuMemoryFraction ?? RUNTIME_DEFAULTS.gpuMemoryFraction }
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

  /** Runs one forward pass and samples; the work happens off the event loop. */
  async step(batch: StepBatch): Promise<StepResult> {
    const result = this.handle.step(batch) as Promise<NativeStepResult>;
    this.inFlight = result.catch(() => undefined);
    return result;
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
