import type { OutputOptions, SamplingOptions, StopOptions } from '../../engine/types.js';
import type { ServerDeps } from '../deps.js';
import { ApiError, badRequest } from '../errors.js';
import { checkTokenId } from '../prompts.js';

export function checkModel(deps: ServerDeps, model: string | null | undefined): void {
  if (model != null && model !== deps.modelName)
    throw new ApiError(404, `The model \`${model}\` does not exist. This server serves \`${deps.modelName}\`.`, 'invalid_request_error', 'model', 'model_not_found');
}

interface SamplingFields {
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  min_p?: number | null;
  seed?: number | null;
  logit_bias?: Record<string, number> | null;
}

/** OpenAI's bound on a logit bias: -100 bans a token, 100 all but forces it. */
const MAX_BIAS = 100;

/** OpenAI defaults: temperature 1, top_p 1; top_k -1 and 0 both mean off. */
export function samplingOf(deps: ServerDeps, b: SamplingFields, numLogprobs: number | undefined): SamplingOptions {
  return {
    logitBias: logitBiasOf(deps, b.logit_bias),
    temperature: b.temperature ?? 1,
    topP: b.top_p ?? 1,
    topK: b.top_k != null && b.top_k > 0 ? b.top_k : 0,
    minP: b.min_p ?? 0,
    seed: b.seed ?? undefined,
    logprobs: numLogprobs,
  };
}

interface StopFields {
  stop?: string | string[] | null;
  ignore_eos?: boolean | null;
  stop_token_ids?: number[] | null;
  include_stop_str_in_output?: boolean | null;
  min_tokens?: number | null;
}

/** Stop rules; stop token ids outside the vocabulary are a 400 naming the entry. */
export function stopOf(deps: ServerDeps, b: StopFields): Omit<StopOptions, 'maxTokens'> {
  (b.stop_token_ids ?? []).forEach((id, i) => checkTokenId(deps, id, `stop_token_ids[${i}]`));
  const minTokens = b.min_tokens ?? 0;
  // The ban rides on logit_bias's arrays, which the CUDA sampler does not take yet.
  if (minTokens > 0 && deps.config.device === 'cuda') throw badRequest('min_tokens is not implemented on the CUDA backend yet', 'min_tokens');
  return {
    minTokens,
    stop: b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop,
    ignoreEos: !!b.ignore_eos,
    stopTokenIds: b.stop_token_ids ?? [],
    includeStopStr: !!b.include_stop_str_in_output,
  };
}

export function outputOf(b: { skip_special_tokens?: boolean | null }): OutputOptions {
  return { skipSpecialTokens: b.skip_special_tokens ?? true };
}

/** logit_bias as [id, bias] pairs: ids checked against the vocabulary (400 naming the key), biases clamped to ±100. */
function logitBiasOf(deps: ServerDeps, bias: Record<string, number> | null | undefined): [number, number][] | undefined {
  const entries = Object.entries(bias ?? {});
  if (entries.length === 0) return undefined;
  if (deps.config.device === 'cuda') throw badRequest('logit_bias is not implemented on the CUDA backend yet', 'logit_bias');
  // "1" and "01" name the same token: one entry each, the last given wins.
  const byId = new Map<number, number>();
  for (const [key, value] of entries) {
    // Keys are digits (the schema checks), so a key too long for a safe integer is far past any vocabulary.
    const id = Number(key);
    checkTokenId(deps, id, `logit_bias.${key}`, key);
    byId.set(id, Math.max(-MAX_BIAS, Math.min(MAX_BIAS, value)));
  }
  return [...byId];
}

/** min_tokens may not exceed what max_tokens (or the context) allows, as vLLM checks. */
export function checkMinTokens(minTokens: number | null | undefined, maxTokens: number[]): void {
  const most = Math.min(...maxTokens);
  if ((minTokens ?? 0) > most) throw badRequest(`min_tokens (${minTokens}) is more than max_tokens allows (${most})`, 'min_tokens');
}
