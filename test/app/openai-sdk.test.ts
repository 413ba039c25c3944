// The official openai package against the real server and the default model.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import OpenAI, { APIError } from 'openai';

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

describe('chat completions', () => {
  test('a non-streamed answer', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Speak, good Romeo.' }], max_tokens: 24, seed: 1 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, MODEL);
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.ok((r.choices[0].message.content ?? '').length > 0);
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
    assert.ok(r.usage!.completion_tokens <= 24);
  });

  test('a streamed answer concatenates to the same text as the same seed unstreamed', async () => {
    const params = { model: MODEL, messages: [{ role: 'user' as const, content: 'What news?' }], max_tokens: 30, seed: 7, temperature: 0.8 };
    const whole = await client.chat.completions.create(params);
    const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    let usage;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        role ??= c.delta.role;
        text += c.delta.content ?? '';
        finish = c.finish_reason ?? finish;
      }
    }
    assert.equal(role, 'assistant');
    assert.equal(text, whole.choices[0].message.content);
    assert.equal(finish, whole.choices[0].finish_reason);
    assert.deepEqual(usage, whole.usage);
  });

  test('n choices, logprobs and stop strings', async () => {
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Say on.' }], max_tokens: 12, n: 3, logprobs: true, top_logprobs: 2, temperature: 1, seed: 3 });
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
    for (const c of r.choices) {
      const lp = c.logprobs!.content!;
      assert.ok(lp.length > 0);
      for (const t of lp) {
        assert.ok(t.logprob <= 0);
        assert.equal(t.top_logprobs.length, 2);
      }
    }
    const stopped = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Say on.' }], max_tokens: 40, stop: ['e'], temperature: 0 });
    assert.ok(!(stopped.choices[0].message.content ?? '').includes('e'));
  });
});

describe('completions', () => {
  test('non-streamed, several prompts', async () => {
    const r = await client.completions.create({ model: MODEL, prompt: ['ROMEO:\n', 'JULIET:\n'], max_tokens: 10, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices.length, 2);
    assert.ok(r.choices.every((c) => c.text.length > 0));
    const count = async (prompt: string) => ((await (await fetch(`${server.url}/tokenize`, { method: 'POST', body: JSON.stringify({ prompt }) })).json()) as { count: number }).count;
    assert.equal(r.usage!.prompt_tokens, (await count('ROMEO:\n')) + (await count('JULIET:\n')));
  });

  test('streamed with logprobs', async () => {
    const stream = await client.completions.create({ model: MODEL, prompt: 'First Citizen:\n', max_tokens: 8, stream: true, logprobs: 1, temperature: 0 });
    let text = '';
    let tokens = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      tokens += chunk.choices[0]?.logprobs?.tokens?.length ?? 0;
    }
    assert.ok(text.length > 0);
    assert.ok(tokens > 0 && tokens <= 8);
  });
});

test('models.list names the served model', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
});

test('errors surface as APIError with the right status', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => {
    assert.ok(e instanceof APIError);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], temperature: 5 }), (e: unknown) => {
    assert.ok(e instanceof APIError);
    assert.equal(e.status, 400);
    assert.equal(e.param, 'temperature');
    return true;
  });
  await assert.rejects(client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], presence_penalty: 3 }), (e: unknown) => {
    assert.ok(e instanceof APIError && e.status === 400 && /presence_penalty/.test(e.message));
    return true;
  });
});

test('with API keys configured, a wrong key is a 401 and the right one works', async () => {
  const secured = await startTestServer({ apiKeys: ['sk-right'] });
  try {
    const wrong = openaiClientOf(secured, 'sk-wrong');
    await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof APIError && e.status === 401);
    const right = openaiClientOf(secured, 'sk-right');
    assert.equal((await right.models.list()).data.length, 1);
    assert.equal((await fetch(`${secured.url}/health`)).status, 200, 'health needs no key');
  } finally {
    await secured.shutdown(1000);
  }
});
