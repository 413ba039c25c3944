// tool_choice 'required' and a named function through HTTP on the default
// model: guided decoding makes the output a call whose arguments validate
// against the function's parameters schema, streamed and not, with the
// openai SDK and the Vercel AI SDK; then a tool result goes back in the history.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateObject, generateText, jsonSchema, streamText, tool } from 'ai';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { z } from 'zod';

import type { RunningServer } from '../../app/server.js';
import { openaiClientOf, startTestServer } from '../helpers/server.js';

let server: RunningServer;
let client: OpenAI;
const MODEL = 'tiny-shakespeare';

before(async () => {
  server = await startTestServer();
  client = openaiClientOf(server);
});
after(() => server.shutdown(1000));

// Strings are bounded or enumerated: the default model never learned to close a double quote.
const WEATHER = {
  type: 'object',
  properties: { city: { type: 'string', enum: ['Verona', 'Mantua', 'Padua'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'days'],
  additionalProperties: false,
};
const SUMMON = {
  type: 'object',
  properties: { who: { type: 'string', maxLength: 10 }, urgent: { type: 'boolean' } },
  required: ['who', 'urgent'],
  additionalProperties: false,
};
const tools: OpenAI.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: WEATHER } },
  { type: 'function', function: { name: 'summon', description: 'Call someone', parameters: SUMMON } },
];
const ajv = new Ajv();
const validators: Record<string, ReturnType<typeof ajv.compile>> = { get_weather: ajv.compile(WEATHER), summon: ajv.compile(SUMMON) };
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What weather in Verona?' }];

function checkCall(call: { id?: string; type?: string; function?: { name?: string; arguments?: string } }): void {
  assert.match(call.id ?? '', /^call_/);
  assert.equal(call.type, 'function');
  const validate = validators[call.function!.name!];
  assert.ok(validate, `unknown function ${call.function!.name}`);
  const args = JSON.parse(call.function!.arguments!);
  assert.ok(validate(args), `${call.function!.arguments}: ${JSON.stringify(validate.errors)}`);
}

describe('openai SDK', () => {
  test("tool_choice 'required': calls whose arguments validate, across seeds, finish tool_calls", async () => {
    // The array of calls is unbounded and this model rarely closes it: most answers end at max_tokens, the open call dropped.
    for (let seed = 1; seed <= 5; seed++) {
      const r = await client.chat.completions.create({ model: MODEL, messages, tools, tool_choice: 'required', seed, max_tokens: 300 });
      const m = r.choices[0].message;
      assert.equal(r.choices[0].finish_reason, 'tool_calls');
      assert.ok(m.tool_calls && m.tool_calls.length >= 1);
      assert.ok(!m.content, `content: ${m.content}`);
      for (const c of m.tool_calls) checkCall(c as OpenAI.ChatCompletionMessageFunctionToolCall);
      assert.equal(new Set(m.tool_calls.map((c) => c.id)).size, m.tool_calls.length);
    }
  });

  test("'required' with parallel_tool_calls false: exactly one call", async () => {
    for (let seed = 1; seed <= 4; seed++) {
      const r = await client.chat.completions.create({ model: MODEL, messages, tools, tool_choice: 'required', parallel_tool_calls: false, seed, max_tokens: 300 });
      assert.equal(r.choices[0].message.tool_calls?.length, 1);
      checkCall(r.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall);
    }
  });

  test('a named function: one call to it, arguments valid', async () => {
    for (let seed = 1; seed <= 4; seed++) {
      const r = await client.chat.completions.create({ model: MODEL, messages, tools, tool_choice: { type: 'function', function: { name: 'summon' } }, seed, max_tokens: 300 });
      const calls = r.choices[0].message.tool_calls!;
      assert.equal(calls.length, 1);
      assert.equal((calls[0] as OpenAI.ChatCompletionMessageFunctionToolCall).function.name, 'summon');
      checkCall(calls[0] as OpenAI.ChatCompletionMessageFunctionToolCall);
      assert.equal(r.choices[0].finish_reason, 'tool_calls');
    }
  });

  test('streamed: the first delta of each call has id, type and name; arguments assembled by index validate', async () => {
    for (let seed = 1; seed <= 4; seed++) {
      const stream = await client.chat.completions.create({ model: MODEL, messages, tools, tool_choice: 'required', seed, max_tokens: 300, stream: true });
      const calls: { id?: string; type?: string; function: { name?: string; arguments: string } }[] = [];
      let finish: string | null = null;
      let content = '';
      for await (const chunk of stream) {
        const choice = chunk.choices[0];
        if (!choice) continue;
        content += choice.delta.content ?? '';
        finish = choice.finish_reason ?? finish;
        for (const d of choice.delta.tool_calls ?? []) {
          if (!calls[d.index]) {
            assert.ok(d.id && d.type === 'function' && d.function?.name, `the first delta of call ${d.index} lacks id/type/name`);
            calls[d.index] = { id: d.id, type: d.type, function: { name: d.function.name, arguments: '' } };
          }
          calls[d.index].function.arguments += d.function?.arguments ?? '';
        }
      }
      assert.equal(finish, 'tool_calls');
      assert.equal(content, '');
      assert.ok(calls.length >= 1);
      calls.forEach(checkCall);
    }
  });

  test('the tool result goes back: a follow-up turn with assistant tool_calls and a tool message is answered', async () => {
    const first = await client.chat.completions.create({ model: MODEL, messages, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } }, seed: 2, max_tokens: 100 });
    const call = first.choices[0].message.tool_calls![0];
    const follow = await client.chat.completions.create({
      model: MODEL,
      tools,
      max_tokens: 12,
      seed: 2,
      messages: [...messages, first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: JSON.stringify({ sky: 'clear' }) }],
    });
    assert.equal(follow.choices[0].message.role, 'assistant');
    assert.ok((follow.choices[0].message.content ?? '').length > 0);
  });
});

describe('Vercel AI SDK (@ai-sdk/openai-compatible)', () => {
  const provider = () => createOpenAICompatible({ name: 'tachyon', baseURL: `${server.url}/v1`, supportsStructuredOutputs: true });
  const Scene = z.object({ speaker: z.string().max(12), act: z.number().int().min(1).max(5), aside: z.boolean() });

  test('generateObject: the object validates, across seeds', async () => {
    for (let seed = 1; seed <= 4; seed++) {
      const { object } = await generateObject({ model: provider().chatModel(MODEL), schema: Scene, prompt: 'Describe a scene.', seed, maxOutputTokens: 200, maxRetries: 0 });
      Scene.parse(object);
    }
  });

  test("generateText with toolChoice 'required': tool calls with valid input", async () => {
    const { toolCalls } = await generateText({
      model: provider().chatModel(MODEL),
      prompt: 'Weather?',
      tools: { get_weather: tool({ description: 'Weather in a city', inputSchema: jsonSchema(WEATHER) }) },
      toolChoice: 'required',
      seed: 3,
      maxOutputTokens: 200,
      maxRetries: 0,
    });
    assert.ok(toolCalls.length >= 1);
    for (const c of toolCalls) {
      assert.equal(c.toolName, 'get_weather');
      assert.ok(validators.get_weather(c.input), JSON.stringify(c.input));
    }
  });

  test('streamText with a named tool: the streamed call is valid', async () => {
    const result = streamText({
      model: provider().chatModel(MODEL),
      prompt: 'Summon someone.',
      tools: { summon: tool({ description: 'Call someone', inputSchema: jsonSchema(SUMMON) }) },
      toolChoice: { type: 'tool', toolName: 'summon' },
      seed: 4,
      maxOutputTokens: 200,
      maxRetries: 0,
    });
    const calls = await result.toolCalls;
    assert.equal(calls.length, 1);
    assert.ok(validators.summon(calls[0].input), JSON.stringify(calls[0].input));
  });
});
