import { randomUUID } from 'node:crypto';

import type { Context } from 'hono';

import type { RequestFinish } from '../../engine/types.js';
import { chatOf } from '../anthropic/convert.js';
import { MessagesRequest, CountTokensRequest } from '../anthropic/schema.js';
import { parseBody, readJson } from '../body.js';
import { choiceEvents } from '../choice-events.js';
import { collectEvents, prepareConversation } from '../conversation.js';
import type { ServerDeps } from '../deps.js';
import { ApiError } from '../errors.js';
import { cancelAll, startChoices } from '../generation.js';
import { resolveMaxTokens } from '../prompts.js';
import { startOutcome } from '../respond.js';
import { deferAccessLog, noteOutcome } from '../request-log.js';
import { samplingOf, stopOf } from '../sampling-params.js';
import { streamEvents } from '../sse.js';
import type { ParsedCall } from '../tool-calls/types.js';
import { checkModel } from './common.js';

/** Anthropic's shape of a tool_use id. */
const toolUseId = () => 'toolu_' + randomUUID().replace(/-/g, '').slice(0, 24);

type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';

function stopReasonOf(f: RequestFinish, calls: number): { stop_reason: StopReason; stop_sequence: string | null } {
  if (calls > 0) return { stop_reason: 'tool_use', stop_sequence: null };
  if (f.reason === 'length') return { stop_reason: 'max_tokens', stop_sequence: null };
  if (typeof f.stopReason === 'string') return { stop_reason: 'stop_sequence', stop_sequence: f.stopReason };
  return { stop_reason: 'end_turn', stop_sequence: null };
}

/** Anthropic counts cache reads apart from input tokens. */
function usageOf(promptTokens: number, f: RequestFinish | undefined) {
  const cached = f?.cachedPromptTokens ?? 0;
  return { input_tokens: promptTokens - cached, cache_creation_input_tokens: 0, cache_read_input_tokens: cached, output_tokens: f?.completionTokens ?? 0 };
}

const toolUse = (c: ParsedCall) => ({ type: 'tool_use', id: c.id, name: c.name, input: JSON.parse(c.arguments) as object });

/**
 * POST /v1/messages: Anthropic's Messages API over the chat path. The
 * conversation becomes chat messages (anthropic/convert.ts), so the prompt,
 * tool rendering, tool-call parsing, forced calls and stop rules are the chat
 * route's; only the request and reply shapes are Anthropic's.
 */
export function messages(deps: ServerDeps) {
  return async function messagesHandler(c: Context) {
    const body = parseBody(MessagesRequest, await readJson(c));
    checkModel(deps, body.model);
    const chat = chatOf(body);
    const conv = await prepareConversation(deps, { messages: chat.messages, tools: chat.tools, toolChoice: chat.toolChoice, parallelToolCalls: chat.parallel, format: null }, toolUseId);
    const prompt = conv.prompt;
    const maxTokens = resolveMaxTokens(deps, prompt.length, body.max_tokens, 'messages');
    const id = `msg_${randomUUID().replace(/-/g, '').slice(0, 24)}`;
    const choices = startChoices(deps, id, [prompt], {
      sampling: samplingOf(deps, { temperature: body.temperature, top_p: body.top_p, top_k: body.top_k }, undefined),
      stop: stopOf(deps, { stop: body.stop_sequences }),
      output: { skipSpecialTokens: !conv.keepSpecialTokens },
      maxTokens: [maxTokens],
      n: 1,
      guides: await conv.guides(1),
    });
    deps.metrics.promptTokens.inc(prompt.length);
    const g = { prompts: [prompt], choices, promptText: deps.config.logRequests ? JSON.stringify(body.messages) : undefined };
    const outcome = startOutcome(deps, g);
    const events = choiceEvents(deps, choices[0], conv.newParser?.() ?? null, outcome);
    const head = { id, type: 'message', role: 'assistant', model: deps.modelName };

    if (!body.stream) {
      try {
        let text = '';
        const calls: ParsedCall[] = [];
        let finish: RequestFinish | undefined;
        let failure: ApiError | null = null;
        const ended = await collectEvents(c, deps, choices, events, (e) => {
          if (e.kind === 'text') text += e.text;
          else if (e.kind === 'call') calls.push(e.call);
          else ({ finish, failure } = e);
        });
        // Nobody reads a response to a client that left; 499 keeps it out of the 5xx counts.
        if (ended === 'gone') return c.body(null, 499 as never);
        if (failure) throw failure;
        const content = [...(text.length > 0 || calls.length === 0 ? [{ type: 'text', text }] : []), ...calls.map(toolUse)];
        return c.json({ ...head, content, ...stopReasonOf(finish!, calls.length), usage: usageOf(prompt.length, finish) });
      } finally {
        noteOutcome(c, outcome);
      }
    }

    deferAccessLog(c);
    return streamEvents(c, () => cancelAll(deps, choices), async (sink) => {
      const send = (type: string, data: object) => sink.send(JSON.stringify({ type, ...data }), type);
      try {
        await send('message_start', { message: { ...head, content: [], stop_reason: null, stop_sequence: null, usage: usageOf(prompt.length, undefined) } });
        await send('ping', {});
        let block = -1;
        let textOpen = false;
        let calls = 0;
        for await (const e of events) {
          if (e.kind === 'text') {
            if (e.text.length === 0) continue;
            if (!textOpen) {
              await send('content_block_start', { index: ++block, content_block: { type: 'text', text: '' } });
              textOpen = true;
            }
            await send('content_block_delta', { index: block, delta: { type: 'text_delta', text: e.text } });
          } else if (e.kind === 'call') {
            if (textOpen) await send('content_block_stop', { index: block });
            textOpen = false;
            calls++;
            await send('content_block_start', { index: ++block, content_block: { type: 'tool_use', id: e.call.id, name: e.call.name, input: {} } });
            await send('content_block_delta', { index: block, delta: { type: 'input_json_delta', partial_json: e.call.arguments } });
            await send('content_block_stop', { index: block });
          } else {
            if (e.failure) return endWithError(send, outcome, e.failure);
            if (textOpen) await send('content_block_stop', { index: block });
            const usage = usageOf(prompt.length, e.finish);
            await send('message_delta', { delta: stopReasonOf(e.finish, calls), usage });
            await send('message_stop', {});
          }
        }
      } catch (err) {
        cancelAll(deps, choices, 'the server failed while streaming');
        endWithError(send, outcome, new ApiError(500, `internal error while streaming: ${(err as Error).message}`, 'server_error', null, 'internal_error'));
      } finally {
        noteOutcome(c, outcome);
      }
    });
  };
}

function endWithError(send: (type: string, data: object) => unknown, outcome: ReturnType<typeof startOutcome>, e: ApiError): void {
  outcome.error = { status: e.status, message: e.message, code: e.code };
  send('error', { error: { type: e.status === 503 ? 'overloaded_error' : 'api_error', message: e.message } });
}

/** POST /v1/messages/count_tokens: the prompt's tokens, tools and system included. */
export function countTokens(deps: ServerDeps) {
  return async function countTokensHandler(c: Context) {
    const body = parseBody(CountTokensRequest, await readJson(c));
    checkModel(deps, body.model);
    const chat = chatOf(body);
    const { prompt } = await prepareConversation(deps, { messages: chat.messages, tools: chat.tools, toolChoice: chat.toolChoice, parallelToolCalls: chat.parallel, format: null });
    return c.json({ input_tokens: prompt.length });
  };
}
