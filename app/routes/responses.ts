import type { Context } from 'hono';

import { parseBody, readJson } from '../body.js';
import { choiceEvents } from '../choice-events.js';
import { collectEvents, prepareConversation } from '../conversation.js';
import type { ServerDeps } from '../deps.js';
import { ApiError, badRequest } from '../errors.js';
import { cancelAll, startChoices } from '../generation.js';
import type { GuideRequest } from '../guided-request.js';
import { resolveMaxTokens } from '../prompts.js';
import { startOutcome } from '../respond.js';
import { deferAccessLog, noteOutcome } from '../request-log.js';
import { ResponseBuilder } from '../responses/build.js';
import { chatMessagesOf, chatToolsOf, itemId, normalizeInput, type Item } from '../responses/convert.js';
import { ResponsesRequest } from '../responses/schema.js';
import { samplingOf, stopOf } from '../sampling-params.js';
import { streamEvents } from '../sse.js';
import { checkModel } from './common.js';

const notFound = (id: string, param: string | null = null) =>
  new ApiError(404, `No response with id '${id}' was found (never stored, deleted, or evicted).`, 'invalid_request_error', param, 'not_found');

/** text.format as a grammar, or null for plain text. */
function formatGuide(format: NonNullable<ResponsesRequest['text']>['format']): GuideRequest | null {
  if (format == null || format.type === 'text') return null;
  if (format.type === 'json_object') return { spec: { kind: 'json_object' }, param: 'text.format' };
  return { spec: { kind: 'json_schema', schema: format.schema }, param: 'text.format.schema' };
}

/**
 * POST /v1/responses: OpenAI's Responses API over the chat path. Input items
 * (after those of previous_response_id) become chat messages; tool calls,
 * forced calls, guided text formats and stop rules are the chat route's.
 */
export function createResponse(deps: ServerDeps) {
  return async function createResponseHandler(c: Context) {
    const body = parseBody(ResponsesRequest, await readJson(c));
    checkModel(deps, body.model);
    let context: Item[] = [];
    if (body.previous_response_id) {
      const prev = deps.responses.get(body.previous_response_id);
      if (!prev) throw notFound(body.previous_response_id, 'previous_response_id');
      context = [...prev.context, ...prev.input, ...(prev.response.output as Item[])];
    }
    const input = normalizeInput(body.input);
    const { tools, toolChoice } = chatToolsOf(body);
    const conv = await prepareConversation(deps, {
      messages: chatMessagesOf(body.instructions, [...context, ...input]),
      tools,
      toolChoice,
      parallelToolCalls: body.parallel_tool_calls,
      format: formatGuide(body.text?.format),
      param: 'input',
    });
    const prompt = conv.prompt;
    const maxTokens = resolveMaxTokens(deps, prompt.length, body.max_output_tokens, 'input');
    const builder = new ResponseBuilder(itemId('resp'), Math.floor(Date.now() / 1000), deps.modelName, body, prompt.length);
    const choices = startChoices(deps, builder.id, [prompt], {
      sampling: samplingOf(deps, { temperature: body.temperature, top_p: body.top_p }, undefined),
      stop: stopOf(deps, {}),
      output: { skipSpecialTokens: !conv.keepSpecialTokens },
      maxTokens: [maxTokens],
      n: 1,
      guides: await conv.guides(1),
    });
    deps.metrics.promptTokens.inc(prompt.length);
    const outcome = startOutcome(deps, { prompts: [prompt], choices, promptText: deps.config.logRequests ? JSON.stringify(body.input) : undefined });
    const events = choiceEvents(deps, choices[0], conv.newParser?.() ?? null, outcome);
    const save = () => {
      // Aged from when it is stored (a long generation is not born old).
      if (body.store ?? true) deps.responses.put(builder.id, Math.floor(Date.now() / 1000), { response: builder.snapshot(), input, context });
    };

    if (!body.stream) {
      try {
        let failed: ApiError | null = null;
        const ended = await collectEvents(c, deps, choices, events, (e) => {
          if (e.kind === 'text') {
            if (e.text.length > 0) builder.text(e.text);
          } else if (e.kind === 'call') builder.call(e.call);
          else {
            failed = e.failure;
            builder.end(e.finish);
          }
        });
        if (ended === 'gone') return c.body(null, 499 as never);
        if (failed) throw failed;
        save();
        return c.json(builder.snapshot());
      } finally {
        noteOutcome(c, outcome);
      }
    }

    deferAccessLog(c);
    return streamEvents(c, () => cancelAll(deps, choices), async (sink) => {
      let seq = 0;
      const send = (type: string, data: object) => sink.send(JSON.stringify({ type, sequence_number: seq++, ...data }), type);
      const sendAll = async (list: [string, object][]) => {
        for (const [type, data] of list) await send(type, data);
      };
      try {
        await send('response.created', { response: builder.snapshot() });
        await send('response.in_progress', { response: builder.snapshot() });
        for await (const e of events) {
          if (e.kind === 'text') await sendAll(e.text.length ? builder.text(e.text) : []);
          else if (e.kind === 'call') await sendAll(builder.call(e.call));
          else {
            const failed = e.failure;
            if (failed) {
              outcome.error = { status: failed.status, message: failed.message, code: failed.code };
              await send('response.failed', { response: builder.snapshot({ code: 'server_error', message: failed.message }) });
              return;
            }
            await sendAll(builder.end(e.finish));
            save();
            await send(builder.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response: builder.snapshot() });
          }
        }
      } catch (err) {
        cancelAll(deps, choices, 'the server failed while streaming');
        const message = `internal error while streaming: ${(err as Error).message}`;
        outcome.error = { status: 500, message, code: 'internal_error' };
        await send('response.failed', { response: builder.snapshot({ code: 'server_error', message }) });
      } finally {
        noteOutcome(c, outcome);
      }
    });
  };
}

/** GET /v1/responses/:id */
export function getResponse(deps: ServerDeps) {
  return (c: Context) => {
    const id = c.req.param('id')!;
    const stored = deps.responses.get(id);
    if (!stored) throw notFound(id);
    return c.json(stored.response);
  };
}

/** DELETE /v1/responses/:id */
export function deleteResponse(deps: ServerDeps) {
  return (c: Context) => {
    const id = c.req.param('id')!;
    if (!deps.responses.delete(id)) throw notFound(id);
    return c.json({ id, object: 'response', deleted: true });
  };
}

/** GET /v1/responses/:id/input_items: the items this response was given (not those of previous responses), newest first by default. */
export function listInputItems(deps: ServerDeps) {
  return (c: Context) => {
    const id = c.req.param('id')!;
    const stored = deps.responses.get(id);
    if (!stored) throw notFound(id);
    const order = c.req.query('order') ?? 'desc';
    if (order !== 'asc' && order !== 'desc') throw badRequest("order must be 'asc' or 'desc'", 'order');
    const limit = Number(c.req.query('limit') ?? 20);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw badRequest('limit must be an integer from 1 to 100', 'limit');
    let items = order === 'asc' ? stored.input : [...stored.input].reverse();
    const after = c.req.query('after');
    if (after !== undefined) {
      const at = items.findIndex((x) => x.id === after);
      if (at < 0) throw badRequest(`no input item '${after}' in response '${id}'`, 'after');
      items = items.slice(at + 1);
    }
    const data = items.slice(0, limit);
    return c.json({ object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: items.length > limit });
  };
}
