import { availableParallelism } from 'node:os';
import { join } from 'node:path';

import { z } from 'zod';

import { packageRoot } from '../native/binding.js';

/** The embedded default model, served when no --model is given. */
export const DEFAULT_MODEL_DIR = join(packageRoot(), 'models', 'tiny-shakespeare');

const int = (min: number) => z.coerce.number().int().min(min);
const list = z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v), z.array(z.string()));
const bool = z.preprocess((v) => (v === 'true' || v === '1' ? true : v === 'false' || v === '0' ? false : v), z.boolean());

/** Every server setting, its default and what it means (--help prints this). */
export const ConfigSchema = z
  .object({
    model: z.string().default(DEFAULT_MODEL_DIR).describe('model directory (HF layout: config.json, *.safetensors, tokenizer.json)'),
    servedModelName: z.string().optional().describe("model name clients use (default: the model directory's name)"),
    host: z.string().default('127.0.0.1').describe('address to listen on'),
    port: int(0).max(65535).default(8000).describe('port to listen on (0: any free port)'),
    device: z.enum(['cpu', 'cuda']).default('cpu').describe('runtime backend'),
    dtype: z.enum(['auto', 'bf16', 'fp8']).default('auto').describe("weight dtype (cpu: 'auto', float32 compute on the checkpoint's weights; cuda: 'auto' = bf16)"),
    gpuMemoryFraction: z.coerce.number().gt(0).max(1).default(0.9).describe('cuda: share of the GPU for weights, workspace and KV cache'),
    threads: int(1).default(availableParallelism()).describe('CPU threads for the forward pass (default: every core)'),
    blockSize: int(1).max(1024).default(16).describe('tokens per KV cache block'),
    kvCacheBytes: int(1).default(512 * 1024 * 1024).describe('bytes of KV cache (the pool holds as many blocks as fit)'),
    maxNumBatchedTokens: int(1).default(2048).describe('most tokens in one engine step (decodes plus prompt chunks)'),
    maxNumSeqs: int(1).default(64).describe('most sequences in one engine step'),
    maxPrefillChunk: int(1).optional().describe('longest prompt chunk per sequence per step (default: the step budget)'),
    maxQueue: int(0).default(256).describe('requests waiting for a slot before new ones get 429'),
    maxModelLen: int(1).optional().describe("context length served (default and upper bound: the model's)"),
    enablePrefixCache: bool.default(true).describe('reuse KV blocks of shared prompt prefixes'),
    apiKeys: list.default([]).describe('accepted API keys (Authorization: Bearer); empty: no auth'),
    corsOrigins: list.default([]).describe("origins allowed by CORS ('*' for any); empty: CORS off"),
    maxBodyBytes: int(1).default(4 * 1024 * 1024).describe('largest request body; larger ones get 413'),
    tokenizerWorkers: int(0).default(1).describe('worker threads that tokenize long prompts off the event loop'),
    shutdownGraceMs: int(0).default(30000).describe('on SIGTERM, how long running requests may take to finish'),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('log verbosity'),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
