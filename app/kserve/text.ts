// Text in, text out for the KServe routes (TensorRT-LLM's ensemble tensors:
// text_input, max_tokens, temperature, top_k, top_p, random_seed, stop_words,
// bad_words), through the same request path as /v1/completions.
import type { RequestDelta } from '../../engine/types.js';
import { parseBody } from '../body.js';
import type { ServerDeps } from '../deps.js';
import { badRequest } from '../errors.js';
import { failureOf, newId, observed, startChoices, type Choice } from '../generation.js';
import { completionPromptTokens, resolveMaxTokens } from '../prompts.js';
import { outputOf, samplingOf, stopOf } from '../sampling-params.js';
import { CompletionRequest } from '../schemas.js';

export interface TextJob {
  text: string;
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Strings that end generation (TensorRT-LLM's stop_words). */
  stopWords?: string[];
  /** Words never generated (TensorRT-LLM's bad_words): each must be one token, which is banned. */
  badWords?: string[];
}

export interface StartedText {
  choice: Choice;
  promptTokens: number;
}

/** Starts one generation; every refusal (a bad value, a prompt too long) is a 400 before anything runs. */
export async function startText(deps: ServerDeps, job: TextJob): Promise<StartedText> {
  const tok = deps.tokenizers.tokenizer;
  const bias: Record<string, number> = {};
  for (const word of (job.badWords ?? []).filter((w) => w.length > 0)) {
    const ids = tok.encode(word, { addSpecialTokens: false });
    if (ids.length !== 1) throw badRequest(`bad_words: '${word}' is ${ids.length} tokens; only words of one token can be banned`, 'bad_words');
    bias[String(ids[0])] = -100;
  }
  const stop = (job.stopWords ?? []).filter((w) => w.length > 0);
  const body = parseBody(CompletionRequest, {
    model: deps.modelName,
    prompt: job.text,
    max_tokens: job.maxTokens,
    temperature: job.temperature,
    top_k: job.topK,
    top_p: job.topP,
    seed: job.seed,
    stop: stop.length > 0 ? stop : undefined,
    logit_bias: Object.keys(bias).length > 0 ? bias : undefined,
  });
  const prompts = await completionPromptTokens(deps, body.prompt);
  const maxTokens = [resolveMaxTokens(deps, prompts[0].length, body.max_tokens, 'text_input')];
  const [choice] = startChoices(deps, newId('kserve'), prompts, {
    sampling: samplingOf(deps, body, undefined),
    stop: stopOf(deps, body),
    output: outputOf(body),
    maxTokens,
    n: 1,
  });
  deps.metrics.promptTokens.inc(prompts[0].length);
  return { choice, promptTokens: prompts[0].length };
}

/** The choice's text pieces as they come; throws the API error of a choice that failed. */
export async function* textPieces(deps: ServerDeps, choice: Choice): AsyncIterable<string> {
  for await (const d of observed(deps, choice.deltas) as AsyncIterable<RequestDelta>) {
    if (d.text) yield d.text;
    if (d.finish) {
      const failure = failureOf(d.finish);
      if (failure) throw failure;
    }
  }
}

/** The whole generated text. */
export async function wholeText(deps: ServerDeps, choice: Choice): Promise<string> {
  let text = '';
  for await (const piece of textPieces(deps, choice)) text += piece;
  return text;
}
