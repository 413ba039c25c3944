import { join } from 'node:path';

import { z } from 'zod';

import { packageRoot } from '../native/binding.js';
import { DEVICE_DEFAULTS, RUNTIME_DEFAULTS, defaultThreads, defaultTokenizerWorkers } from './defaults.js';

/** vLLM's names for the tool-call formats app/tool-calls/ reads (--tool-call-parser). */
export const TOOL_CALL_PARSERS = ['hermes', 'llama3_json', 'mistral'] as const;

/** The embedded default model, served when no --model is given. */
export const DEFAULT_MODEL_DIR = join(packageRoot(), 'models', 'tiny-shakespeare');

const int = (min: number) => z.coerce.number().int().min(min);
const list = z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v), z.array(z.string()));
const bool = z.preprocess((v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v), z.boolean());
const perDevice = (key: 'kvCacheBytes' | 'maxNumBatchedTokens' | 'maxNumSeqs' | 'maxPrefillTokensWithDecodes' | 'maxQueue') =>
  `default: cpu ${DEVICE_DEFAULTS.cpu[key] ?? '-'}, cuda ${DEVICE_DEFAULTS.cuda[key] ?? 'what --gpu-memory-fraction leaves'}`;

/**
 * Every server setting and what it means (--help prints this). Settings whose
 * default depends on the machine or the device are optional here and filled
 * by resolveConfig() from config/defaults.ts, their one owner.
 */
export const ConfigSchema = z
  .object({
    model: z.string().default(DEFAULT_MODEL_DIR).describe('model directory (HF layout: config.json, *.safetensors, tokenizer.json)'),
    models: list
      .default([])
      .describe('more model directories served beside --model, each named after its folder (repeating --model adds them here)'),
    modelRepository: z
      .string()
      .optional()
      .describe("serve every model folder of this Triton-style repository (the checkpoint in the folder or its highest numeric version; an optional config.pbtxt); instead of --model"),
    servedModelName: z.string().optional().describe("model name clients use (default: the model directory's name)"),
    host: z.string().default('127.0.0.1').describe('address to listen on'),
    port: int(0).max(65535).default(8000).describe('port to listen on (0: any free port)'),
    device: z.enum(['cpu', 'cuda']).default('cpu').describe('runtime backend'),
    dtype: z.enum(['auto', 'bf16', 'fp8']).default('auto').describe("weight dtype (cpu: 'auto', float32 compute on the checkpoint's weights; cuda: 'auto' = bf16, or an INT8 checkpoint's int8 weights)"),
    quantization: z
      .enum(['int8', 'w8a8'])
      .optional()
      .describe("weights quantized at load: 'int8' = weight-only INT8 with per-channel scales; 'w8a8' (cuda) = INT8 weights and INT8 activations with per-token scales on the INT8 tensor cores (an INT8 checkpoint is read as it is either way)"),
    kvCacheDtype: z
      .enum(['auto', 'fp8', 'fp8_e4m3', 'int8'])
      .default('auto')
      .transform((v) => (v === 'fp8_e4m3' ? 'fp8' : v))
      .describe("KV cache element type: 'auto' = bf16 on cuda, float32 on cpu; 'fp8' (or 'fp8_e4m3') = E4M3 with per-layer scales of 1.0; 'int8' = INT8 with a scale per token and head (no few-row path); both about half the bytes a token (cuda)"),
    gpuMemoryFraction: z.coerce.number().gt(0).max(1).default(RUNTIME_DEFAULTS.gpuMemoryFraction).describe('cuda: share of the GPU for weights, workspace and KV cache'),
    tensorParallelSize: int(1)
      .max(64)
      .default(RUNTIME_DEFAULTS.tensorParallelSize)
      .describe('ranks to shard the model over, Megatron-style; must divide the attention heads and the MLP width (cpu: threads of this process; cuda: not yet)'),
    threads: int(1).optional().describe('CPU threads for the forward pass (default: every core)'),
    blockSize: int(1).max(1024).default(RUNTIME_DEFAULTS.blockSize).describe('tokens per KV cache block'),
    kvCacheBytes: int(1).optional().describe(`bytes of KV cache (the pool holds as many blocks as fit; ${perDevice('kvCacheBytes')})`),
    maxNumBatchedTokens: int(1).optional().describe(`most tokens in one engine step, decodes plus prompt chunks (${perDevice('maxNumBatchedTokens')})`),
    maxNumSeqs: int(1).optional().describe(`most sequences in one engine step (${perDevice('maxNumSeqs')})`),
    maxPrefillChunk: int(1).optional().describe('longest prompt chunk per sequence per step (default: the step budget)'),
    maxPrefillTokensWithDecodes: int(1)
      .optional()
      .describe(`most prompt tokens in a step that also carries running decodes, so long prompts never stall streams (${perDevice('maxPrefillTokensWithDecodes')})`),
    maxQueue: int(1).optional().describe(`requests waiting for a slot before new ones get 429 (${perDevice('maxQueue')})`),
    maxModelLen: int(1).optional().describe("context length served (default and upper bound: the model's)"),
    enablePrefixCache: bool.default(true).describe('reuse KV blocks of shared prompt prefixes'),
    asyncScheduling: bool
      .default(true)
      .describe('schedule and launch step N + 1 while the device runs step N, its decode tokens fed on the device (off: one step at a time)'),
    apiKeys: list.default([]).describe('accepted API keys (Authorization: Bearer, or x-api-key); empty: no auth'),
    corsOrigins: list.default([]).describe("origins allowed by CORS ('*' for any); empty: CORS off"),
    maxBodyBytes: int(1).default(4 * 1024 * 1024).describe('largest request body; larger ones get 413'),
    tokenizerWorkers: int(0).optional().describe('worker threads that tokenize long prompts off the event loop (default: half the cores, 1 to 8)'),
    shutdownGraceMs: int(0).default(30000).describe('on SIGTERM, how long running requests may take to finish'),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('log verbosity'),
    toolCallParser: z
      .enum(TOOL_CALL_PARSERS)
      .optional()
      .describe('how tool calls are read out of model output: hermes, llama3_json or mistral (default: detected from the chat template; none found: no tool calls are parsed)'),
    batchInvariant: bool
      .default(RUNTIME_DEFAULTS.cuda.batchInvariant)
      .describe("cuda: every row computed the same way whatever runs beside it (no few-row path; prompt rows on the prefill kernel, generated tokens on the decode kernel), so a request's tokens never depend on what else runs (slower at batch 1)"),
    cudaGraphs: bool.default(RUNTIME_DEFAULTS.cuda.cudaGraphs).describe('cuda: replay decode steps from captured CUDA graphs'),
    pdl: bool.default(RUNTIME_DEFAULTS.cuda.pdl).describe("cuda: programmatic dependent launch between the backend's kernels (sm_90)"),
    fusedGemv: bool.default(RUNTIME_DEFAULTS.cuda.fusedGemv).describe('cuda: fused GEMVs for steps of at most 4 tokens (batch 1 latency)'),
    fastAttention: bool
      .default(RUNTIME_DEFAULTS.cuda.fastAttention)
      .describe('cuda: the prefill and decode attention kernels (--no-fast-attention: the general kernel for every row, the reference the tests hold them to)'),
    fp8PrefillScores: bool
      .default(RUNTIME_DEFAULTS.cuda.fp8PrefillScores)
      .describe("cuda, an fp8 KV cache at head_dim 128: prompt rows' Q K^T on FP8 tensor cores, q rounded to E4M3 with a scale a row, as vLLM's and TensorRT-LLM's FP8 attention do (--no-fp8-prefill-scores: f16 scores and P V from the widened cache; slower, a little closer to a bf16 cache)"),
    fp8PrefillValues: bool
      .default(RUNTIME_DEFAULTS.cuda.fp8PrefillValues)
      .describe("cuda, with --fp8-prefill-scores: prompt rows' P V on FP8 tensor cores too, P rounded to E4M3 and V the cache's bytes, as TensorRT-LLM's FP8 context attention (--no-fp8-prefill-values: P V in f16 from the widened cache)"),
    residualInGemm: bool
      .default(RUNTIME_DEFAULTS.cuda.residualInGemm)
      .describe("cuda, FP8 weights: the O and down projections add into the float32 residual stream in their GEMMs' epilogue, so the norm after each only reads it (--no-residual-in-gemm: the projection's output rounded to bf16 and added by the norm, as before; slower)"),
    profile: bool
      .default(RUNTIME_DEFAULTS.cuda.profile)
      .describe("cuda: print each step's GPU time and layer 0's ops to stderr, and mark NVTX ranges for nsys (steps then run one at a time)"),
    ui: bool.default(true).describe('serve the built-in chat page at / and /ui (--no-ui: the API only)'),
    logRequests: bool.default(false).describe('log each request\'s prompt and output text (off: text is never logged)'),
    responsesStorePath: z
      .string()
      .default(':memory:')
      .describe("SQLite file for the Responses API's stored responses (store: true, previous_response_id); ':memory:' keeps them for the process's life"),
    responsesStoreMaxCount: int(1).default(10000).describe('stored responses kept; the oldest are evicted first'),
    responsesStoreMaxAge: int(1).default(30 * 24 * 3600).describe('seconds a stored response is kept (default 30 days, as OpenAI keeps them)'),
  })
  .strict()
  .refine((c) => c.device === 'cuda' || c.quantization !== 'w8a8', {
    message: "'w8a8' runs on cuda only (INT8 tensor cores); the CPU backend has weight-only 'int8'",
    path: ['quantization'],
  })
  .refine((c) => c.quantization === undefined || c.dtype !== 'fp8', {
    message: "cannot be combined with --dtype fp8 (FP8 weights): choose one",
    path: ['quantization'],
  })
  .refine((c) => c.device === 'cuda' || c.kvCacheDtype === 'auto', {
    message: "a quantized KV cache runs on cuda only; the CPU backend keeps its KV cache in float32",
    path: ['kvCacheDtype'],
  })
  .refine((c) => c.device === 'cpu' || c.tensorParallelSize === 1, {
    message: 'tensor parallelism is not available on cuda yet; the CPU backend has it',
    path: ['tensorParallelSize'],
  });

export type Config = z.infer<typeof ConfigSchema>;

/** A config with every machine- and device-dependent default filled in. */
export type ResolvedConfig = Omit<Config, 'threads' | 'maxNumBatchedTokens' | 'maxNumSeqs' | 'maxPrefillTokensWithDecodes' | 'tokenizerWorkers' | 'maxQueue'> & {
  threads: number;
  maxQueue: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  maxPrefillTokensWithDecodes: number;
  tokenizerWorkers: number;
  /** undefined on cuda: the pool takes what gpuMemoryFraction leaves. */
  kvCacheBytes: number | undefined;
};

/** Fills the defaults that depend on the device and the machine (config/defaults.ts). */
export function resolveConfig(c: Config): ResolvedConfig {
  const d = DEVICE_DEFAULTS[c.device];
  const maxNumBatchedTokens = c.maxNumBatchedTokens ?? d.maxNumBatchedTokens;
  return {
    ...c,
    threads: c.threads ?? defaultThreads(),
    kvCacheBytes: c.kvCacheBytes ?? d.kvCacheBytes,
    maxNumBatchedTokens,
    maxNumSeqs: c.maxNumSeqs ?? d.maxNumSeqs,
    maxQueue: c.maxQueue ?? d.maxQueue,
    maxPrefillTokensWithDecodes: Math.min(c.maxPrefillTokensWithDecodes ?? d.maxPrefillTokensWithDecodes, maxNumBatchedTokens),
    tokenizerWorkers: c.tokenizerWorkers ?? defaultTokenizerWorkers(),
  };
}
