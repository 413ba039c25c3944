// Every bad request gets OpenAI's error shape with the right status, and the
// server keeps answering afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import type { RunningServer } from '../../app/server.js';
import { postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
before(async () => {
  server = await startTestServer({ maxBodyBytes: 64 * 1024 });
});
after(() => server.shutdown(1000));

const M = 'tiny-shakespeare';
const chat = (extra: Record<string, unknown>) => ({ model: M, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, ...extra });
const completion = (extra: Record<string, unknown>) => ({ model: M, prompt: 'hi', max_tokens: 4, ...extra });

interface Case {
  name: string;
  path?: string;
  body: unknown;
  raw?: boolean;
  status: number;
  param?: string | null;
  code?: string;
  message?: RegExp;
}

const cases: Case[] = [
  { name: 'malformed JSON', body: '{"model": "tiny', raw: true, status: 400, code: 'invalid_json' },
  { name: 'a JSON array body', body: '[1,2]', raw: true, status: 400 },
  { name: 'invalid UTF-8', body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), raw: true, status: 400, code: 'invalid_encoding' },
  { name: 'missing model', body: { messages: [{ role: 'user', content: 'x' }] }, status: 400, param: 'model' },
  { name: 'unknown model', body: chat({ model: 'gpt-4o' }), status: 404, param: 'model', code: 'model_not_found' },
  { name: 'empty messages', body: chat({ messages: [] }), status: 400, param: 'messages' },
  { name: 'messages of the wrong type', body: chat({ messages: 'hello' }), status: 400, param: 'messages' },
  { name: 'unknown role', body: chat({ messages: [{ role: 'wizard', content: 'x' }] }), status: 400, param: 'messages[0].role' },
  { name: 'an image content part', body: chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }), status: 400, param: 'messages[0].content[0].type' },
  { name: 'temperature as a string', body: chat({ temperature: 'hot' }), status: 400, param: 'temperature' },
  { name: 'negative max_tokens', body: chat({ max_tokens: -5 }), status: 400, param: 'max_tokens' },
  { name: 'fractional max_tokens', body: chat({ max_tokens: 2.5 }), status: 400, param: 'max_tokens' },
  { name: 'absurd n', body: chat({ n: 100000 }), status: 400, param: 'n' },
  { name: 'top_p of 0', body: chat({ top_p: 0 }), status: 400, param: 'top_p' },
  { name: 'min_p above 1', body: chat({ min_p: 3 }), status: 400, param: 'min_p' },
  { name: 'top_logprobs without logprobs', body: chat({ top_logprobs: 3 }), status: 400, param: 'top_logprobs' },
  { name: 'too many top_logprobs', body: chat({ logprobs: true, top_logprobs: 50 }), status: 400, param: 'top_logprobs' },
  { name: 'stream_options without stream', body: chat({ stream_options: { include_usage: true } }), status: 400, param: 'stream_options' },
  { name: 'an unknown parameter', body: chat({ temperatur: 1 }), status: 400, param: 'temperatur', code: 'unsupported_parameter' },
  { name: 'a parameter not implemented', body: chat({ functions: [{ name: 'f' }] }), status: 400, param: 'functions', message: /not supported/ },
  { name: 'a penalty out of range', body: chat({ frequency_penalty: 2.5 }), status: 400, param: 'frequency_penalty' },
  { name: "tool_choice 'required' beside a response_format", body: chat({ tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: 'required', response_format: { type: 'json_object' } }), status: 400, param: 'tool_choice', message: /cannot also follow response_format/ },
  { name: 'a tool_choice naming a function not among tools', body: chat({ tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: { type: 'function', function: { name: 'g' } } }), status: 400, param: 'tool_choice' },
  { name: 'a tool without a name', body: chat({ tools: [{ type: 'function', function: {} }] }), status: 400, param: 'tools[0].function.name' },
  { name: 'logit_bias on a token outside the vocabulary', body: chat({ logit_bias: { 99999: 10 } }), status: 400, param: 'logit_bias.99999' },
  { name: 'logit_bias keyed by something other than a token id', body: chat({ logit_bias: { abc: 10 } }), status: 400, param: 'logit_bias.abc' },
  { name: 'empty stop string', body: chat({ stop: [''] }), status: 400, param: 'stop[0]' },
  { name: 'prompt plus max_tokens over the context', body: chat({ max_tokens: 5000 }), status: 400, param: 'messages', code: 'context_length_exceeded', message: /maximum context length is 1024 tokens\. However, you requested \d+ tokens \(\d+ in the messages, 5000 in the completion\)/ },
  { name: 'a prompt longer than the context', path: '/v1/completions', body: completion({ prompt: 'ROMEO '.repeat(1200), max_tokens: null }), status: 400, code: 'context_length_exceeded' },
  { name: 'completions: empty prompt list', path: '/v1/completions', body: completion({ prompt: [] }), status: 400, param: 'prompt' },
  { name: 'completions: token ids outside the vocabulary', path: '/v1/completions', body: completion({ prompt: [1, 99999] }), status: 400, param: 'prompt' },
  { name: 'completions: echo', path: '/v1/completions', body: completion({ echo: true }), status: 400, param: 'echo' },
  { name: 'completions: logprobs as a boolean', path: '/v1/completions', body: completion({ logprobs: true }), status: 400, param: 'logprobs' },
  { name: 'a body over the size limit', body: chat({ messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] }), status: 413, code: 'request_too_large' },
  { name: 'a 10 MB body', body: chat({ messages: [{ role: 'user', content: 'y'.repeat(10 * 1024 * 1024) }] }), status: 413, code: 'request_too_large' },
  { name: 'tokenize: neither prompt nor messages', path: '/tokenize', body: { model: M }, status: 400 },
  { name: 'detokenize: an id outside the vocabulary', path: '/detokenize', body: { tokens: [1, 5000] }, status: 400, param: 'tokens[1]' },
  { name: 'an unknown route', path: '/v1/embeddings', body: { model: M, input: 'x' }, status: 404, code: 'not_found' },
];

describe('bad requests', () => {
  for (const c of cases) {
    test(`${c.name}: ${c.status}`, async () => {
      const url = `${server.url}${c.path ?? '/v1/chat/completions'}`;
      const res = c.raw
        ? await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: c.body as string })
        : await postJson(url, c.body);
      assert.equal(res.status, c.status);
      const body = (await res.json()) as { error: { message: string; type: string; param: string | null; code: string | null } };
      assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
      assert.equal(typeof body.error.message, 'string');
      assert.ok(!/\n\s+at /.test(body.error.message), 'no stack trace');
      if (c.param !== undefined) assert.equal(body.error.param, c.param);
      if (c.code) assert.equal(body.error.code, c.code);
      if (c.message) assert.match(body.error.message, c.message);
      // The server still answers.
      const ok = await postJson(`${server.url}/v1/completions`, completion({}));
      assert.equal(ok.status, 200);
    });
  }
});

test('a full queue is a 429 with Retry-After; a request that could never be queued is a 400 saying why', async () => {
  const busy = await startTestServer({ maxQueue: 2, maxNumSeqs: 1 });
  const abort = new AbortController();
  try {
    const never = await postJson(`${busy.url}/v1/completions`, completion({ prompt: ['a', 'b', 'c'] }));
    assert.equal(never.status, 400, 'three prompts on an idle server whose queue holds two');
    const body = (await never.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'too_many_sequences');
    assert.match(body.error.message, /3 sequences.*at most 2 \(--max-queue\)/);
    assert.equal((await postJson(`${busy.url}/v1/completions`, completion({ n: 3 }))).status, 400);

    // One request runs (one sequence per step), two wait: the queue is full.
    const long = { ...completion({ max_tokens: 400, ignore_eos: true, stream: true }) };
    const hold = () => fetch(`${busy.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(long), signal: abort.signal });
    await hold();
    while (busy.deps.engine.stats().running < 1) await new Promise((r) => setTimeout(r, 2));
    await Promise.all([hold(), hold()]);
    while (busy.deps.engine.stats().waiting < 2) await new Promise((r) => setTimeout(r, 2));
    const res = await postJson(`${busy.url}/v1/completions`, completion({}));
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'queue_full');
  } finally {
    abort.abort();
    await busy.shutdown(1000);
  }
});

test('an internal error is a 500 without a stack trace, and the server carries on', async () => {
  const template = server.deps.chatTemplate!;
  const render = template.render;
  template.render = () => {
    throw new TypeError('boom at line 1');
  };
  try {
    const res = await postJson(`${server.url}/v1/chat/completions`, chat({}));
    assert.equal(res.status, 500);
    const body = (await res.json()) as { error: { message: string; type: string } };
    assert.deepEqual([body.error.message, body.error.type], ['internal server error', 'server_error']);
  } finally {
    template.render = render;
  }
  assert.equal((await postJson(`${server.url}/v1/chat/completions`, chat({}))).status, 200);
});
