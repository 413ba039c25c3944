import type { Context } from 'hono';

import { parseBody, readJson } from '../body.js';
import type { ServerDeps } from '../deps.js';
import { badRequest } from '../errors.js';
import { finishReason, newId, startChoices } from '../generation.js';
import { completionLogprobs } from '../logprobs.js';
import { completionPromptTokens, resolveMaxTokens } from '../prompts.js';
import { respond } from '../respond.js';
import { CompletionRequest } from '../schemas.js';
import { checkModel } from './common.js';
import { guideRequestOf, guidesFor } from '../guided-request.js';
import { checkMinTokens, outputOf, samplingOf, stopOf } from '../sampling-params.js';

/** POST /v1/completions */
export function completions(deps: ServerDeps) {
  return async function completionsHandler(c: Context) {
    const body = parseBody(CompletionRequest, await readJson(c));
    checkModel(deps, body.model);
    if (body.stream_options && !body.stream) throw badRequest('stream_options is only allowed when stream is true', 'stream_options');
    const prompts = await completionPromptTokens(deps, body.prompt);
    const maxTokens = prompts.map((p, i) => resolveMaxTokens(deps, p.length, body.max_tokens, prompts.length > 1 ? `prompt[${i}]` : 'prompt'));
    checkMinTokens(body.min_tokens, maxTokens);
    const numLogprobs = body.logprobs ?? undefined;
    const id = newId('cmpl');
    const guide = guideRequestOf(body);
    // Everything that may refuse the request comes before the guides are made: startChoices owns them from there.
    const sampling = samplingOf(deps, body, numLogprobs);
    const stop = stopOf(deps, body);
    const choices = startChoices(deps, id, prompts, {
      sampling,
      stop,
      output: outputOf(body),
      maxTokens,
      n: body.n ?? 1,
      guides: guide ? await guidesFor(deps, guide, prompts.length * (body.n ?? 1)) : undefined,
    });
    deps.metrics.promptTokens.inc(prompts.reduce((s, p) => s + p.length, 0));
    const tok = deps.tokenizers.tokenizer;
    return respond(c, deps, { id, created: Math.floor(Date.now() / 1000), prompts, choices, stream: !!body.stream, includeUsage: !!body.stream_options?.include_usage,
      promptText: deps.config.logRequests ? JSON.stringify(body.prompt) : undefined }, {
      chunkObject: 'text_completion',
      fullObject: 'text_completion',
      wantsLogprobs: numLogprobs !== undefined,
      opening: () => null,
      delta: (index, text, lps, sent) => ({ index, text, logprobs: lps ? completionLogprobs(tok, lps, sent) : null, finish_reason: null }),
      closing: (index, f) => ({ index, text: '', logprobs: null, finish_reason: finishReason(f), stop_reason: f.stopReason ?? null }),
      full: (index, text, lps, f) => ({
        index,
        text,
        logprobs: lps ? completionLogprobs(tok, lps, 0) : null,
        finish_reason: finishReason(f),
        stop_reason: f.stopReason ?? null,
      }),
    });
  };
}
