import { z } from 'zod';

import type { OutputOptions, SamplingOptions, StopOptions } from '../engine/types.js';
import type { ServerDeps } from './deps.js';
import { badRequest } from './errors.js';
import { checkTokenId } from './prompts.js';

/**
 * The request fields that choose, stop and render tokens, shared by chat and
 * completions, and their one mapping to the engine's options. The path of a
 * setting: these fields -> SamplingOptions / StopOptions (engine/types.ts) ->
 * a sampling column (engine/sampling-columns.ts, native/cpu/sampling_columns.h)
 * -> the samplers.
 */
export const samplingFields = {
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  // OpenAI's range; over generated tokens.
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  // vLLM's: over prompt and generated tokens; 1 = off.
  repetition_penalty: z.number().gt(0).max(2).nullish(),
  // Token id (as a string, OpenAI's shape) -> bias; clamped to [-100, 100].
  logit_bias: z.record(z.string().regex(/^\d+$/, 'keys must be token ids'), z.number()).nullish(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(16)]).nullish(),
  ignore_eos: z.boolean().nullish(),
  // vLLM's extensions for stopping and detokenizing.
  stop_token_ids: z.array(z.number().int().min(0)).max(64).nullish(),
  min_tokens: z.number().int().min(0).nullish(),
  include_stop_str_in_output: z.boolean().nullish(),
  skip_special_tokens: z.boolean().nullish(),
};

type Fields = { [K in keyof typeof samplingFields]?: z.infer<(typeof samplingFields)[K]> };

/** OpenAI's bound on a logit bias: -100 bans a token, 100 all but forces it. */
const MAX_BIAS = 100;

/** OpenAI defaults: temperature 1, top_p 1, penalties off; top_k -1 and 0 both mean off. */
export function samplingOf(deps: ServerDeps, b: Fields, numLogprobs: number | undefined): SamplingOptions {
  return {
    logitBias: logitBiasOf(deps, b.logit_bias),
    temperature: b.temperature ?? 1,
    topP: b.top_p ?? 1,
    topK: b.top_k != null && b.top_k > 0 ? b.top_k : 0,
    minP: b.min_p ?? 0,
    seed: b.seed ?? undefined,
    logprobs: numLogprobs,
    presencePenalty: b.presence_penalty ?? 0,
    frequencyPenalty: b.frequency_penalty ?? 0,
    repetitionPenalty: b.repetition_penalty ?? 1,
  };
}

/** Stop rules; stop token ids outside the vocabulary are a 400 naming the entry. */
export function stopOf(deps: ServerDeps, b: Fields): Omit<StopOptions, 'maxTokens'> {
  (b.stop_token_ids ?? []).forEach((id, i) => checkTokenId(deps, id, `stop_token_ids[${i}]`));
  return {
    minTokens: b.min_tokens ?? 0,
    stop: b.stop == null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop,
    ignoreEos: !!b.ignore_eos,
    stopTokenIds: b.stop_token_ids ?? [],
    includeStopStr: !!b.include_stop_str_in_output,
  };
}

export function outputOf(b: Fields): OutputOptions {
  return { skipSpecialTokens: b.skip_special_tokens ?? true };
}

/** logit_bias as [id, bias] pairs: ids checked against the vocabulary (400 naming the key), biases clamped to ±100. */
function logitBiasOf(deps: ServerDeps, bias: Record<string, number> | null | undefined): [number, number][] | undefined {
  const entries = Object.entries(bias ?? {});
  if (entries.length === 0) return undefined;
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
