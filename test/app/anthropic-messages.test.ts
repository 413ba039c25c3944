// Anthropic's Messages API with the official @anthropic-ai/sdk against the
// default model: create, stream, countTokens, a tool_use round trip, forced
// tools, and errors in Anthropic's shape.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';
import { Ajv } from 'ajv';

import type { RunningServer } from '../../app/server.js';
import { postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
let client: Anthropic;
const MODEL = 'tiny-shakespeare';

before(async () => {
  server = await startTestServer({ apiKeys: ['sk-ant-test'] });
  client = new Anthropic({ baseURL: server.url, apiKey: 'sk-ant-test', maxRetries: 0 });
});
after(() => server.shutdown(1000));

const WEATHER = { type: 'object' as const, properties: { city: { type: 'string', enum: ['Verona', 'Mantua'] }, days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city', 'days'] };
const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Weather in a city', input_schema: WEATHER }];
const validWeather = new Ajv().compile(WEATHER);
// The SDK's newest types leave temperature out (newer Claude models fix it); the API still takes it, and so does this server.
const GREEDY = { temperature: 0 } as unknown as Record<string, never>;

describe('messages.create', () => {
  test('a reply: one text block, usage, stop_reason max_tokens or end_turn', async () => {
    const m = await client.messages.create({ model: MODEL, max_tokens: 24, system: 'You are Juliet.', messages: [{ role: 'user', content: 'Speak.' }] });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, MODEL);
    assert.match(m.id, /^msg_/);
    assert.equal(m.content[0].type, 'text');
    assert.ok(['max_tokens', 'end_turn'].includes(m.stop_reason!));
    assert.ok(m.usage.output_tokens <= 24 && m.usage.input_tokens > 0);
  });

  test('the same seedless greedy request twice gives the same text; top_k 1 is greedy', async () => {
    const ask = () => client.messages.create({ model: MODEL, max_tokens: 16, ...GREEDY, messages: [{ role: 'user', content: 'Speak.' }] });
    const [a, b] = [await ask(), await ask()];
    assert.deepEqual(a.content, b.content);
  });

  test('stop_sequences: stop_reason stop_sequence names the one matched, its text not shown', async () => {
    const free = await client.messages.create({ model: MODEL, max_tokens: 40, ...GREEDY, messages: [{ role: 'user', content: 'Speak.' }] });
    const text = (free.content[0] as Anthropic.TextBlock).text;
    const stop = text.slice(6, 8);
    const m = await client.messages.create({ model: MODEL, max_tokens: 40, ...GREEDY, stop_sequences: [stop], messages: [{ role: 'user', content: 'Speak.' }] });
    assert.equal(m.stop_reason, 'stop_sequence');
    assert.equal(m.stop_sequence, stop);
    assert.equal((m.content[0] as Anthropic.TextBlock).text, text.slice(0, text.indexOf(stop)));
  });
});

describe('messages.stream', () => {
  test('the events arrive in order and the final message equals the streamed text', async () => {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 20, ...GREEDY, messages: [{ role: 'user', content: 'Speak.' }] });
    const types: string[] = [];
    let text = '';
    stream.on('streamEvent', (e) => types.push(e.type));
    stream.on('text', (t) => (text += t));
    const final = await stream.finalMessage();
    assert.equal(types[0], 'message_start');
    assert.equal(types.at(-1), 'message_stop');
    assert.equal(types.at(-2), 'message_delta');
    assert.ok(types.includes('content_block_start') && types.includes('content_block_delta') && types.includes('content_block_stop'));
    assert.equal((final.content[0] as Anthropic.TextBlock).text, text);
    assert.equal(final.usage.output_tokens, 20);
    const whole = await client.messages.create({ model: MODEL, max_tokens: 20, ...GREEDY, messages: [{ role: 'user', content: 'Speak.' }] });
    assert.equal((whole.content[0] as Anthropic.TextBlock).text, text);
  });
});

test('messages.countTokens counts what create bills as input', async () => {
  const params = { model: MODEL, system: 'Be brief.', messages: [{ role: 'user' as const, content: 'Speak, good Romeo.' }] };
  const { input_tokens } = await client.messages.countTokens(params);
  const m = await client.messages.create({ ...params, max_tokens: 2 });
  assert.equal(input_tokens, m.usage.input_tokens + (m.usage.cache_read_input_tokens ?? 0));
});

describe('tools', () => {
  test("tool_choice any: a tool_use block with valid input, stop_reason tool_use; then a tool_result turn is answered", async () => {
    for (let i = 0; i < 3; i++) {
      const m = await client.messages.create({ model: MODEL, max_tokens: 200, tools, tool_choice: { type: 'any', disable_parallel_tool_use: true }, messages: [{ role: 'user', content: `Weather ${i}?` }] });
      assert.equal(m.stop_reason, 'tool_use');
      const use = m.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
      assert.match(use.id, /^toolu_/);
      assert.equal(use.name, 'get_weather');
      assert.ok(validWeather(use.input), JSON.stringify(use.input));
      const next = await client.messages.create({
        model: MODEL,
        max_tokens: 10,
        tools,
        messages: [
          { role: 'user', content: `Weather ${i}?` },
          { role: 'assistant', content: m.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Clear skies.' }] },
        ],
      });
      assert.equal(next.content[0].type, 'text');
    }
  });

  test('tool_choice naming a tool, streamed: input_json_delta assembles into valid input', async () => {
    const stream = client.messages.stream({ model: MODEL, max_tokens: 200, tools, tool_choice: { type: 'tool', name: 'get_weather' }, messages: [{ role: 'user', content: 'Weather?' }] });
    const final = await stream.finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    const use = final.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock;
    assert.ok(validWeather(use.input), JSON.stringify(use.input));
  });
});

describe("errors in Anthropic's shape", () => {
  const post = (body: object, headers: Record<string, string> = { 'x-api-key': 'sk-ant-test' }) => postJson(`${server.url}/v1/messages`, body, headers);
  const shape = async (r: Response, status: number, type: string, message: RegExp) => {
    assert.equal(r.status, status);
    const b = (await r.json()) as { type: string; error: { type: string; message: string } };
    assert.equal(b.type, 'error');
    assert.equal(b.error.type, type);
    assert.match(b.error.message, message);
  };
  test('missing max_tokens, an unknown block type, a tool_use in a user message, a wrong model, a wrong key', async () => {
    await shape(await post({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }), 400, 'invalid_request_error', /max_tokens/);
    await shape(await post({ model: MODEL, max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'image', source: {} }] }] }), 400, 'invalid_request_error', /messages\[0\]\.content/);
    await shape(
      await post({ model: MODEL, max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }] }] }),
      400,
      'invalid_request_error',
      /tool_use blocks belong to assistant messages/,
    );
    await shape(await post({ model: 'claude-opus-4', max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }), 404, 'not_found_error', /claude-opus-4/);
    await shape(await post({ model: MODEL, max_tokens: 4, messages: [{ role: 'user', content: 'x' }] }, { 'x-api-key': 'wrong' }), 401, 'authentication_error', /API key/);
    // The SDK sees them as its own error classes.
    await assert.rejects(client.messages.create({ model: MODEL, max_tokens: 4, messages: [] }), (e: unknown) => e instanceof Anthropic.BadRequestError);
  });
});
