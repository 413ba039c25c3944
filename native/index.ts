import { availableParallelism } from 'node:os';

import { loadAddon, type NativeRuntimeHandle, type NativeStepResult } from './binding.js';
import { readCheckpoint } from './checkpoint.js';
import { parseModelConfig, readModelConfig, type ModelConfig } from './model-config.js';

export type { ModelConfig } from './model-config.js';

export interface RuntimeOptions {
  /** A HF checkpoint directory (config.json + safetensors). */
  modelDir?: string;
  /** Random weights of the shape this HF-style config describes (benchmarks), instead of modelDir. */
  dummy?: { config: Record<string, unknown>; seed?: number };
  device?: 'cpu';
  /** Tokens per KV block. */
  blockSize?: number;
  /** Bytes of KV cache; the pool holds as many blocks as fit. */
  kvCacheBytes?: number;
  /** Most tokens one step may carry. */
  maxNumTokens?: number;
  /** Most sequences one step may carry. */
  maxNumSeqs?: number;
  /** Worker threads for the forward pass; defaults to every core. */
  threads?: number;
}

export interface RuntimeInfo extends ModelConfig {
  device: 'cpu';
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
  /** Also return the raw logits of sampled rows (tests, parity). */
  returnLogits?: boolean;
}

/**
 * Rows of sequences that did not sample hold token -1 and NaN. logprobs are
 * those of the chosen tokens under the raw (unscaled) logits; topIds /
 * topLogprobs are [S, topN]; logits is [S, vocab] when returnLogits was set.
 */
export type StepResult = NativeStepResult;

const DEFAULTS = { blockSize: 16, kvCacheBytes: 256 * 1024 * 1024, maxNumTokens: 2048, maxNumSeqs: 256 };

/** A loaded model on one device; drive it with step(). */
export class Runtime {
  private inFlight: Promise<unknown> = Promise.resolve();

  private constructor(private readonly handle: NativeRuntimeHandle, readonly info: RuntimeInfo) {}

  static async load(options: RuntimeOptions): Promise<Runtime> {
    if ((options.device ?? 'cpu') !== 'cpu') throw new Error(`device '${options.device}' is not available in this build`);
    if (!options.modelDir === !options.dummy) throw new Error('give exactly one of modelDir and dummy');
    const config = options.modelDir ? readModelConfig(options.modelDir) : parseModelConfig(options.dummy!.config, 'dummy config');
    const weights = options.modelDir
      ? readCheckpoint(options.modelDir)
      : { dummySeed: options.dummy!.seed ?? 0 };
    const sizes = {
      blockSize: options.blockSize ?? DEFAULTS.blockSize,
      kvCacheBytes: options.kvCacheBytes ?? DEFAULTS.kvCacheBytes,
      maxNumTokens: options.maxNumTokens ?? DEFAULTS.maxNumTokens,
      maxNumSeqs: options.maxNumSeqs ?? DEFAULTS.maxNumSeqs,
      numThreads: options.threads ?? availableParallelism(),
    };
    const handle = new (loadAddon().NativeRuntime)({ config, ...weights, ...sizes });
    await handle.load();
    const native = handle.info();
    return new Runtime(handle, {
      ...config,
      device: 'cpu',
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
