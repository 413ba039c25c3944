// Guided decoding through HTTP with the official clients and the default
// model: output follows response_format / structured_outputs, bad specs are
// 400s naming the parameter. The default model never saw a double quote in
// training, so its JSON strings close only when a schema bounds them
// (maxLength, enum): the schemas here do, as a client of this model would.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI from 'openai';
import { zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';

import type { RunningServer } from '../../app/server.js';
import { openaiClientOf, postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
let client: OpenAI;
const MODEL = 'tiny-shakespeare';

before(async () => {
  server = await startTestServer();
  client = openaiClientOf(server);
});
after(() => server.shutdown(1000));

const Verdict = z.object({
  speaker: z.string().max(16),
  mood: z.enum(['merry', 'sad', 'wroth']),
  lines: z.number().int().min(0).max(500),
  exit: z.boolean(),
  allies: z.array(z.enum(['Romeo', 'Juliet', 'Tybalt'])).max(3),
});

describe('response_format json_schema', () => {
  test('chat.completions.parse with zodResponseFormat: parsed output validates, across seeds', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const r = await client.chat.completions.parse({
        model: MODEL,
        messages: [{ role: 'user', content: 'Judge this scene.' }],
        response_format: zodResponseFormat(Verdict, 'verdict'),
        seed,
        max_tokens: 200,
      });
      const choice = r.choices[0];
      assert.equal(choice.finish_reason, 'stop', `seed ${seed}: ${choice.message.content}`);
      assert.ok(choice.message.parsed, `seed ${seed}: nothing parsed from ${choice.message.content}`);
      Verdict.parse(choice.message.parsed);
    }
  });

  test('streamed, the deltas join into JSON that validates', async () => {
    for (let seed = 1; seed <= 4; seed++) {
      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'Judge this scene.' }],
        response_format: zodResponseFormat(Verdict, 'verdict'),
        seed,
        max_tokens: 200,
        stream: true,
      });
      let text = '';
      let finish: string | null = null;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      assert.equal(finish, 'stop');
      Verdict.parse(JSON.parse(text));
    }
  });

  test('n choices each follow the schema', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Judge.' }], response_format: zodResponseFormat(Verdict, 'verdict'), n: 3, seed: 3, max_tokens: 200 });
    assert.equal(r.choices.length, 3);
    for (const c of r.choices) Verdict.parse(JSON.parse(c.message.content!));
  });

  test('json_object: the output is a JSON object', async () => {
    // Keys are strings the model cannot close unaided: allowed to end on length; whatever ends on stop parses.
    for (let seed = 1; seed <= 4; seed++) {
      const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' }, seed, max_tokens: 40 });
      const text = r.choices[0].message.content!;
      assert.ok(text.startsWith('{'), text);
      if (r.choices[0].finish_reason === 'stop') {
        assert.equal(typeof JSON.parse(text), 'object');
      }
    }
  });
});

describe("vLLM's structured_outputs", () => {
  const complete = async (structured_outputs: object, seed: number, extra: object = {}) => {
    const r = await postJson(`${server.url}/v1/completions`, { model: MODEL, prompt: 'ROMEO:', structured_outputs, seed, max_tokens: 60, ...extra });
    assert.equal(r.status, 200, await r.clone().text());
    return ((await r.json()) as { choices: { text: string; finish_reason: string }[] }).choices[0];
  };

  test('choice, regex, grammar and json on completions', async () => {
    for (let seed = 1; seed <= 4; seed++) {
      assert.ok(['Ay', 'No', 'Perchance'].includes((await complete({ choice: ['Ay', 'No', 'Perchance'] }, seed)).text));
      assert.match((await complete({ regex: '(Act|Scene) [IVX]{1,4}\\.' }, seed)).text, /^(Act|Scene) [IVX]{1,4}\.$/);
      const g = await complete({ grammar: 'root ::= "(" num (" + " num)* ")"\nnum ::= [1-9] [0-9]?' }, seed);
      if (g.finish_reason === 'stop') assert.match(g.text, /^\([1-9][0-9]?( \+ [1-9][0-9]?)*\)$/);
      const j = await complete({ json: JSON.stringify({ type: 'object', properties: { act: { type: 'integer', minimum: 1, maximum: 5 } }, required: ['act'] }) }, seed);
      assert.ok(Number.isInteger(JSON.parse(j.text).act), j.text);
    }
  });

  test('on chat, streamed', async () => {
    const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], stream: true, seed: 5, structured_outputs: { choice: ['To be', 'Not to be'] } } as OpenAI.ChatCompletionCreateParamsStreaming);
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.ok(['To be', 'Not to be'].includes(text), text);
  });

  test('a guided request beside unguided ones: each gets what it asked for', async () => {
    const [guided, free] = await Promise.all([
      complete({ regex: '[0-9]{4}' }, 1),
      postJson(`${server.url}/v1/completions`, { model: MODEL, prompt: 'ROMEO:', seed: 1, max_tokens: 20 }).then((r) => r.json() as Promise<{ choices: { text: string }[] }>),
    ]);
    assert.match(guided.text, /^[0-9]{4}$/);
    assert.ok(!/^[0-9]{4}$/.test(free.choices[0].text));
  });
});

describe('bad guided requests: 400 naming the parameter, and the server goes on', () => {
  const cases: [string, object, string, RegExp][] = [
    ['a schema type that does not exist', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'nope' } } } }, 'response_format.json_schema.schema', /Unsupported type "nope"/],
    ['a $ref to nothing', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { $ref: '#/$defs/gone' } } } } } }, 'response_format.json_schema.schema', /./],
    ['a regex that does not parse', { structured_outputs: { regex: '(ab' } }, 'structured_outputs.regex', /parenthesis/i],
    ['a grammar that does not parse', { structured_outputs: { grammar: 'root ::= "a" |' } }, 'structured_outputs.grammar', /EBNF/],
    ['json that is not JSON', { structured_outputs: { json: '{"type":' } }, 'structured_outputs.json', /not valid JSON/],
    ['two kinds at once', { structured_outputs: { regex: 'a', choice: ['b'] } }, 'structured_outputs', /exactly one/],
    ['no kind', { structured_outputs: {} }, 'structured_outputs', /exactly one/],
    ['both response_format and structured_outputs', { response_format: { type: 'json_object' }, structured_outputs: { regex: 'a' } }, 'structured_outputs', /not both/],
    ['a response_format type that does not exist', { response_format: { type: 'xml' } }, 'response_format.type', /./],
  ];
  for (const [name, extra, param, message] of cases)
    test(name, async () => {
      const r = await postJson(`${server.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 4, ...extra });
      assert.equal(r.status, 400);
      const e = ((await r.json()) as { error: { message: string; param: string; type: string } }).error;
      assert.equal(e.param, param, e.message);
      assert.equal(e.type, 'invalid_request_error');
      assert.match(e.message, message);
    });

  test('a guided request refused after its grammar compiled (a bad logit_bias, too many choices) leaves no guide behind', async () => {
    const format = { type: 'json_schema', json_schema: { name: 'v', schema: { type: 'object', properties: { n: { type: 'integer' } } } } };
    for (const extra of [{ logit_bias: { '999999': 1 }, n: 3 }, { stop_token_ids: [999999] }]) {
      const r = await postJson(`${server.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'x' }], response_format: format, ...extra });
      assert.equal(r.status, 400);
    }
    const ok = await postJson(`${server.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'x' }], response_format: format, max_tokens: 30, n: 2 });
    assert.equal(ok.status, 200);
    assert.equal((await server.deps.grammars()).liveGuides, 0);
  });

  test('after thirty refused schemas, guided requests still work and the KV cache is whole', async () => {
    for (let i = 0; i < 30; i++) {
      const r = await postJson(`${server.url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: `bad${i}` } } } });
      assert.equal(r.status, 400);
    }
    const r = await client.chat.completions.parse({ model: MODEL, messages: [{ role: 'user', content: 'x' }], response_format: zodResponseFormat(Verdict, 'verdict'), seed: 9, max_tokens: 200 });
    Verdict.parse(r.choices[0].message.parsed);
    const stats = server.deps.engine.stats();
    assert.equal(stats.running + stats.waiting, 0);
    assert.equal(stats.kvBlocksUsed, 0);
  });
});
