import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { resolveConfig, type Config, type ResolvedConfig } from '../config/schema.js';
import { Engine, type EngineConfig } from '../engine/engine.js';
import type { StepRuntime } from '../engine/types.js';
import { Runtime } from '../native/index.js';
import { ChatTemplate, chatTemplateSource } from '../tokenizers/chat-template.js';
import { TokenizerService } from '../tokenizers/tokenizer-service.js';
import type { Log } from './logger.js';

/** A model ready to serve: its runtime, tokenizer and engine, built from one resolved config. */
export interface LoadedModel {
  config: ResolvedConfig;
  runtime: Runtime;
  tokenizers: TokenizerService;
  engine: Engine;
  chatTemplate: ChatTemplate | null;
  /** For requests with tools: the "tool_use" template where one is named, else chatTemplate. */
  toolChatTemplate: ChatTemplate | null;
  /** The context served: --max-model-len clamped to the model's. */
  maxModelLen: number;
  close(): Promise<void>;
}

/** The default chat template, and the one for requests with tools where tokenizer_config names a separate "tool_use" template. */
function readChatTemplates(dir: string): { chat: ChatTemplate | null; tools: ChatTemplate | null } {
  const path = join(dir, 'tokenizer_config.json');
  if (!existsSync(path)) return { chat: null, tools: null };
  const config = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const source = chatTemplateSource(config);
  const toolSource = chatTemplateSource(config, true);
  const chat = source === null ? null : new ChatTemplate(source);
  return { chat, tools: toolSource === null || toolSource === source ? chat : new ChatTemplate(toolSource) };
}

/** The engine's budgets and switches as the server's config sets them. */
export function engineConfigOf(config: ResolvedConfig): EngineConfig {
  return {
    maxNumBatchedTokens: config.maxNumBatchedTokens,
    maxNumSeqs: config.maxNumSeqs,
    maxPrefillChunk: config.maxPrefillChunk,
    maxPrefillTokensWithDecodes: config.maxPrefillTokensWithDecodes,
    maxWaiting: config.maxQueue,
    enablePrefixCache: config.enablePrefixCache,
    // Generated tokens' blocks serve later prompts unless prompt rows and generated tokens take
    // different attention kernels (CUDA, batch-invariant, fast attention): see EngineConfig.
    cacheGeneratedBlocks: config.device === 'cpu' || !config.batchInvariant || !config.fastAttention,
    asyncScheduling: config.asyncScheduling,
  };
}

/**
 * Loads the runtime, tokenizer and engine the way the server runs them (the
 * serving benchmark's engine-only figure uses this too, so both see the same
 * defaults). Logs the KV capacity and warns about settings that cannot serve
 * a full-context request.
 */
export async function loadModel(raw: Config, log: Log): Promise<LoadedModel> {
  const config = resolveConfig(raw);
  if (config.device === 'cpu' && config.dtype !== 'auto')
    throw new Error(`dtype '${config.dtype}' is not available on the CPU backend, which computes in float32 from the checkpoint's weights; use 'auto'`);
  const runtime = await Runtime.load({
    modelDir: config.model,
    device: config.device,
    dtype: config.dtype === 'auto' ? undefined : config.dtype,
    gpuMemoryFraction: config.gpuMemoryFraction,
    blockSize: config.blockSize,
    kvCacheBytes: config.kvCacheBytes,
    maxNumTokens: config.maxNumBatchedTokens,
    maxNumSeqs: config.maxNumSeqs,
    threads: config.threads,
    tensorParallelSize: config.tensorParallelSize,
    quantization: config.quantization,
    kvCacheDtype: config.kvCacheDtype,
    cuda: { batchInvariant: config.batchInvariant, cudaGraphs: config.cudaGraphs, pdl: config.pdl, fusedGemv: config.fusedGemv, fastAttention: config.fastAttention, fp8PrefillScores: config.fp8PrefillScores, fp8PrefillValues: config.fp8PrefillValues, residualInGemm: config.residualInGemm, profile: config.profile },
  });
  let tokenizers: TokenizerService;
  try {
    tokenizers = await TokenizerService.create({ dir: config.model }, { workers: config.tokenizerWorkers });
  } catch (e) {
    await runtime.close();
    throw e;
  }
  const info = runtime.info;
  const maxModelLen = Math.min(config.maxModelLen ?? info.maxPositions, info.maxPositions);
  if (config.maxModelLen !== undefined && config.maxModelLen > info.maxPositions)
    log.warn(`--max-model-len ${config.maxModelLen} is longer than the model's context; serving ${info.maxPositions}`);
  const kvTokens = info.numBlocks * info.blockSize;
  log.info(`KV cache: ${info.numBlocks} blocks of ${info.blockSize} tokens = ${kvTokens} tokens ` +
    `(${((info.numBlocks * info.bytesPerBlock) / 2 ** 30).toFixed(2)} GiB), ${(kvTokens / maxModelLen).toFixed(2)} full-context requests`);
  if (kvTokens < maxModelLen)
    log.warn(`the KV cache holds ${kvTokens} tokens, fewer than one full-context request (${maxModelLen}); ` +
      `longer requests get 400 (raise ${config.device === 'cuda' ? '--gpu-memory-fraction' : '--kv-cache-bytes'} or lower --max-model-len)`);
  const stepRuntime: StepRuntime = {
    info: { ...info, maxPositions: maxModelLen },
    pipelined: runtime.pipelined,
    step: (b, fillMasks) => runtime.step(b, fillMasks),
  };
  const engine = new Engine(stepRuntime, tokenizers.tokenizer, engineConfigOf(config));
  log.info(`async scheduling: ${engine.asyncScheduling ? 'on (step N + 1 is launched while step N runs)' : 'off (one step at a time)'}`);
  const templates = readChatTemplates(config.model);
  return {
    config,
    runtime,
    tokenizers,
    engine,
    chatTemplate: templates.chat,
    toolChatTemplate: templates.tools,
    maxModelLen,
    async close() {
      await tokenizers.close();
      await runtime.close();
    },
  };
}
