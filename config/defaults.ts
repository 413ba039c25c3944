import { availableParallelism } from 'node:os';

export type Device = 'cpu' | 'cuda';

/**
 * The one owner of every default that depends on the device. The server's
 * config, Runtime.load and the benchmarks all read this table; the native
 * backends receive explicit values and hold no defaults of their own.
 *
 * cuda figures were measured on one H200 with a Llama-3-8B-shaped FP8 model
 * (bench/RESULTS.md, "Serving defaults"); cpu figures suit the embedded model.
 */
export interface DeviceDefaults {
  /** Bytes of KV cache; undefined: what gpuMemoryFraction leaves after weights and workspace. */
  kvCacheBytes: number | undefined;
  /** Most tokens in one step (decodes plus prompt chunks). */
  maxNumBatchedTokens: number;
  /** Most sequences in one step. */
  maxNumSeqs: number;
  /** Most prompt tokens in a step that also carries running decodes (bounds inter-token latency). */
  maxPrefillTokensWithDecodes: number;
  /** Requests waiting for a slot before new ones get 429; a GPU serves thousands of concurrent streams. */
  maxQueue: number;
}

export const DEVICE_DEFAULTS: Record<Device, DeviceDefaults> = {
  cpu: { kvCacheBytes: 512 * 1024 * 1024, maxNumBatchedTokens: 2048, maxNumSeqs: 64, maxPrefillTokensWithDecodes: 2048, maxQueue: 256 },
  cuda: { kvCacheBytes: undefined, maxNumBatchedTokens: 8192, maxNumSeqs: 512, maxPrefillTokensWithDecodes: 512, maxQueue: 8192 },
};

/** Defaults that do not depend on the device. */
export const RUNTIME_DEFAULTS = {
  blockSize: 16,
  /** Ranks the model is cut over (tensor parallelism; cpu: threads of this process). */
  tensorParallelSize: 1,
  /** cuda: share of the card for weights, workspace and KV pool. */
  gpuMemoryFraction: 0.9,
  /** cuda: what the GEMMs read. */
  cudaDtype: 'bf16' as const,
  /** cuda knobs (RuntimeOptions.cuda). */
  cuda: { batchInvariant: true, cudaGraphs: true, pdl: true, fusedGemv: true, fastAttention: true, warpSpecializedPrefill: true, overlapDecodeAttention: true, prefillRopeQ: true, fp8PrefillScores: true, fp8PrefillValues: true, prefillPairs: false, bf16Residual: false, residualInGemm: true, decodeWarps: 0, prefillBlocks: 0, rowGemmPrefetchMiB: 0, rowGemmNextMiB: 0, weightRowPad: 0, profile: false },
};

/** Forward-pass threads on CPU: every core. */
export const defaultThreads = (): number => availableParallelism();

/** Tokenizer worker threads: half the cores, at least one, at most eight (the rest serve the event loop and the runtime). */
export const defaultTokenizerWorkers = (): number => Math.max(1, Math.min(8, Math.floor(availableParallelism() / 2)));
