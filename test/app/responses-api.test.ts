// OpenAI's Responses API with the official openai SDK against the default
// model: create (streamed and not), previous_response_id, retrieve, delete,
// input_items, function calls and text formats, the store's bounds.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Ajv } from 'ajv';
import OpenAI, { NotFoundError } from 'openai';

import { ResponseStore } from '../../app/responses/store.js';
import type { RunningServer } from '../../app/server.js';
import { openaiClientOf, postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
let client: OpenAI;
const MODEL = 'tiny-shakespeare';

before(async () => {
  server = await startTestServer({ responsesStoreMaxCount: 50 });
  client = openaiClientOf(server);
});
after(() => server.shutdown(1000));

const WEATHER = { type: 'object', properties: { city: { type: 'string', enum: ['Verona', 'Mantua'] } }, required: ['city'], additionalProperties: false };
const tools: OpenAI.Responses.FunctionTool[] = [{ type: 'function', name: 'get_weather', description: 'Weather in a city', parameters: WEATHER, strict: true }];

describe('responses.create', () => {
  test('a text answer: incomplete when max_output_tokens cut it, completed when it ended; usage and output_text', async () => {
    // No seed in this API: the model may end (EOS) before the bound on some draws.
    const r = await client.responses.create({ model: MODEL, input: 'Speak, good Romeo.', instructions: 'You are Juliet.', max_output_tokens: 16 });
    assert.equal(r.object, 'response');
    assert.match(r.id, /^resp_/);
    // An answer whose EOS is its 16th token is complete; only a cut one is incomplete, and a cut one has all 16.
    assert.ok(r.status === 'completed' || r.status === 'incomplete', r.status);
    assert.deepEqual(r.incomplete_details, r.status === 'incomplete' ? { reason: 'max_output_tokens' } : null);
    if (r.status === 'incomplete') assert.equal(r.usage!.output_tokens, 16);
    assert.equal(r.output.length, 1);
    const msg = r.output[0] as OpenAI.Responses.ResponseOutputMessage;
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal((msg.content[0] as OpenAI.Responses.ResponseOutputText).text, r.output_text);
    assert.ok(r.usage!.output_tokens <= 16);
    assert.equal(r.usage!.total_tokens, r.usage!.input_tokens + r.usage!.output_tokens);
    assert.equal(r.instructions, 'You are Juliet.');
  });

  test('text.format json_schema: completed, and the text validates', async () => {
    const schema = { type: 'object', properties: { mood: { enum: ['merry', 'sad'] }, act: { type: 'integer', minimum: 1, maximum: 5 } }, required: ['mood', 'act'], additionalProperties: false };
    const r = await client.responses.create({ model: MODEL, input: 'Judge.', text: { format: { type: 'json_schema', name: 'verdict', schema, strict: true } }, max_output_tokens: 100 });
    assert.equal(r.status, 'completed');
    assert.ok(new Ajv().compile(schema)(JSON.parse(r.output_text)), r.output_text);
  });

  test("tool_choice 'required': a function_call item with valid arguments; its output goes back through previous_response_id", async () => {
    const r = await client.responses.create({ model: MODEL, input: 'Weather in Verona?', tools, tool_choice: 'required', parallel_tool_calls: false, max_output_tokens: 200 });
    assert.equal(r.output.length, 1);
    const call = r.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    assert.equal(call.type, 'function_call');
    assert.equal(call.name, 'get_weather');
    assert.match(call.call_id, /^call_/);
    assert.ok(new Ajv().compile(WEATHER)(JSON.parse(call.arguments)), call.arguments);
    const next = await client.responses.create({
      model: MODEL,
      previous_response_id: r.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"sky": "clear"}' }],
      tools,
      max_output_tokens: 8,
    });
    assert.equal(next.previous_response_id, r.id);
    assert.equal(next.output[0].type, 'message');
  });
});

describe('responses.stream', () => {
  test('typed events in order with rising sequence numbers; the final response matches the deltas', async () => {
    const stream = client.responses.stream({ model: MODEL, input: 'Speak.', max_output_tokens: 12 });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    let text = '';
    stream.on('event', (e) => events.push(e));
    stream.on('response.output_text.delta', (e) => (text += e.delta));
    const final = await stream.finalResponse();
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
    );
    const types = events.map((e) => e.type);
    assert.deepEqual(types.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    const end = final.status === 'incomplete' ? 'response.incomplete' : 'response.completed';
    if (final.status === 'incomplete') assert.equal(final.usage!.output_tokens, 12);
    assert.deepEqual(types.slice(-4), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', end]);
    assert.equal(final.output_text, text);
    assert.equal((await client.responses.retrieve(final.id)).output_text, text);
  });

  test('a streamed forced call: output_item.added, arguments delta and done, output_item.done, response.completed', async () => {
    const stream = client.responses.stream({ model: MODEL, input: 'Weather?', tools, tool_choice: { type: 'function', name: 'get_weather' }, max_output_tokens: 100 });
    const types: string[] = [];
    stream.on('event', (e) => types.push(e.type));
    const final = await stream.finalResponse();
    assert.deepEqual(types.slice(2), [
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ]);
    const call = final.output[0] as OpenAI.Responses.ResponseFunctionToolCall;
    assert.ok(new Ajv().compile(WEATHER)(JSON.parse(call.arguments)));
  });
});

describe('conversation state', () => {
  test('previous_response_id continues the conversation; retrieve, input_items and delete', async () => {
    const first = await client.responses.create({ model: MODEL, input: 'Who goes there?', max_output_tokens: 8 });
    const second = await client.responses.create({ model: MODEL, input: [{ role: 'user', content: 'And then?' }], previous_response_id: first.id, max_output_tokens: 8 });
    // The second prompt holds the first exchange: more input tokens than the question alone.
    const alone = await client.responses.create({ model: MODEL, input: [{ role: 'user', content: 'And then?' }], max_output_tokens: 1, store: false });
    assert.ok(second.usage!.input_tokens > alone.usage!.input_tokens + first.usage!.output_tokens);
    assert.deepEqual(await client.responses.retrieve(first.id), first);
    const items = await client.responses.inputItems.list(second.id);
    assert.equal(items.data.length, 1);
    assert.equal(items.data[0].type, 'message');
    assert.match(items.data[0].id!, /^msg_/);
    await client.responses.delete(first.id);
    await assert.rejects(client.responses.retrieve(first.id), NotFoundError);
    // The second keeps its own copy of the conversation: it can still be continued.
    const third = await client.responses.create({ model: MODEL, input: 'Go on.', previous_response_id: second.id, max_output_tokens: 4 });
    assert.ok(third.usage!.input_tokens > second.usage!.input_tokens);
  });

  test('store: false is not kept; an unknown previous_response_id is a 404 naming it', async () => {
    const r = await client.responses.create({ model: MODEL, input: 'x', max_output_tokens: 2, store: false });
    await assert.rejects(client.responses.retrieve(r.id), NotFoundError);
    await assert.rejects(client.responses.create({ model: MODEL, input: 'x', previous_response_id: 'resp_nope' }), (e: unknown) => {
      assert.ok(e instanceof NotFoundError);
      assert.equal(e.param, 'previous_response_id');
      return true;
    });
  });

  test('bad input: an unknown item type, a call output without call_id, reasoning asked for', async () => {
    const bad = async (extra: object, param: string) => {
      const r = await postJson(`${server.url}/v1/responses`, { model: MODEL, max_output_tokens: 2, ...extra });
      assert.equal(r.status, 400);
      const e = ((await r.json()) as { error: { param: string; type: string } }).error;
      assert.equal(e.param, param);
      assert.equal(e.type, 'invalid_request_error');
    };
    await bad({ input: [{ type: 'input_image', image_url: 'x' }] }, 'input[0].type');
    await bad({ input: [{ type: 'function_call_output', output: 'x' }] }, 'input[0].call_id');
    await bad({ input: 'x', reasoning: { effort: 'high' } }, 'reasoning');
    // A conversation past the context is the input's fault.
    await bad({ input: 'ROMEO: '.repeat(2000) }, 'input');
  });
});

describe('the store', () => {
  test('bounded by count: the oldest are evicted first', async () => {
    const small = await startTestServer({ responsesStoreMaxCount: 2 });
    try {
      const c = openaiClientOf(small);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await c.responses.create({ model: MODEL, input: `x${i}`, max_output_tokens: 1 })).id);
      await assert.rejects(c.responses.retrieve(ids[0]), NotFoundError);
      assert.equal((await c.responses.retrieve(ids[2])).id, ids[2]);
    } finally {
      await small.shutdown(1000);
    }
  });

  test('bounded by age, and kept in its SQLite file across a restart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tachyon-store-'));
    try {
      const path = join(dir, 'responses.db');
      const now = Math.floor(Date.now() / 1000);
      const entry = (id: string) => ({ response: { id }, input: [{ type: 'message', id: `msg_${id}` }], context: [] });
      let store = new ResponseStore({ path, maxCount: 10, maxAgeSeconds: 60 });
      store.put('old', now - 120, entry('old'));
      store.put('new', now, entry('new'));
      assert.equal(store.get('old'), null);
      store.close();
      store = new ResponseStore({ path, maxCount: 10, maxAgeSeconds: 60 });
      assert.deepEqual(store.get('new'), entry('new'));
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
