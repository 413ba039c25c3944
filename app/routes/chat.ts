import type { Context } from 'hono';

import type { RequestFinish } from '../../engine/types.js';

import { parseBody, readJson } from '../body.js';
import type { ServerDeps } from '../deps.js';
import { badRequest } from '../errors.js';
import { finishReason, newId, startChoices } from '../generation.js';
import { chatLogprobs } from '../logprobs.js';
import { resolveMaxTokens } from '../prompts.js';
import { respond } from '../respond.js';
import { ChatRequest } from '../schemas.js';
import { ChatToolCalls } from '../tool-calls/chat.js';
import { prepareConversation } from '../conversation.js';
import { guideRequestOf } from '../guided-request.js';
import { checkModel } from './common.js';
import { checkMinTokens, outputOf, samplingOf, stopOf } from '../sampling-params.js';

/** POST /v1/chat/completions */
export function chatCompletions(deps: ServerDeps) {
  return async function chatCompletionsHandler(c: Context) {
    const body = parseBody(ChatRequest, await readJson(c));
    checkModel(deps, body.model);
    if (body.top_logprobs != null && !body.logprobs) throw badRequest('top_logprobs needs logprobs: true', 'top_logprobs');
    if (body.stream_options && !body.stream) throw badRequest('stream_options is only allowed when stream is true', 'stream_options');
    const conv = await prepareConversation(deps, {
      messages: body.messages,
      tools: body.tools ?? null,
      toolChoice: body.tool_choice,
      parallelToolCalls: body.parallel_tool_calls,
      format: guideRequestOf(body),
      addGenerationPrompt: body.add_generation_prompt ?? true,
    });
    const prompt = conv.prompt;
    const tools = conv.newParser ? new ChatToolCalls(conv.newParser) : null;
    // Any call parsed makes the finish tool_calls (vLLM does the same, even over length).
    const reason = (index: number, f: RequestFinish) => (tools?.callsOf(index).length ? 'tool_calls' : finishReason(f));
    const maxTokens = resolveMaxTokens(deps, prompt.length, body.max_completion_tokens ?? body.max_tokens, 'messages');
    checkMinTokens(body.min_tokens, [maxTokens]);
    const numLogprobs = body.logprobs ? (body.top_logprobs ?? 0) : undefined;
    const id = newId('chatcmpl');
    // Everything that may refuse the request comes before the guides are made: startChoices owns them from there.
    const sampling = samplingOf(deps, body, numLogprobs);
    const stop = stopOf(deps, body);
    const choices = startChoices(deps, id, [prompt], {
      sampling,
      stop,
      output: conv.keepSpecialTokens ? { ...outputOf(body), skipSpecialTokens: false } : outputOf(body),
      maxTokens: [maxTokens],
      n: body.n ?? 1,
      guides: await conv.guides(body.n ?? 1),
    });
    deps.metrics.promptTokens.inc(prompt.length);
    const tok = deps.tokenizers.tokenizer;
    return respond(c, deps, { id, created: Math.floor(Date.now() / 1000), prompts: [prompt], choices, stream: !!body.stream, includeUsage: !!body.stream_options?.include_usage,
      promptText: deps.config.logRequests ? JSON.stringify(body.messages) : undefined }, {
      chunkObject: 'chat.completion.chunk',
      fullObject: 'chat.completion',
      wantsLogprobs: numLogprobs !== undefined,
      opening: (index) => ({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }),
      delta: (index, text, lps) => ({ index, delta: { content: text }, logprobs: lps ? { content: chatLogprobs(tok, lps) } : null, finish_reason: null }),
      closing: (index, f) => ({ index, delta: {}, logprobs: null, finish_reason: reason(index, f), stop_reason: f.stopReason ?? null }),
      full: (index, text, lps, f) => ({
        index,
        message: messageOf(text, tools?.callsOf(index) ?? []),
        logprobs: lps ? { content: chatLogprobs(tok, lps) } : null,
        finish_reason: reason(index, f),
        stop_reason: f.stopReason ?? null,
      }),
      rewrite: tools ? (index) => tools.rewrite(index) : undefined,
    });
  };
}

/** The non-streamed message: with calls, tool_calls and content null when nothing else was said. */
function messageOf(text: string, calls: ReturnType<ChatToolCalls['callsOf']>): object {
  if (calls.length === 0) return { role: 'assistant', content: text };
  return { role: 'assistant', content: text.length > 0 ? text : null, tool_calls: calls };
}
