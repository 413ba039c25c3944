// /tokenize, /detokenize, /v1/models, /health, /ready, /metrics.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import type { RunningServer } from '../../app/server.js';
import { postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
before(async () => {
  server = await startTestServer({ corsOrigins: ['https://chat.example'] });
});
after(() => server.shutdown(1000));

test('tokenize and detokenize round-trip, shaped as vLLM', async () => {
  const t = (await (await postJson(`${server.url}/tokenize`, { model: 'tiny-shakespeare', prompt: 'O Romeo, Romeo!' })).json()) as { tokens: number[]; count: number; max_model_len: number };
  assert.equal(t.count, t.tokens.length);
  assert.equal(t.max_model_len, 1024);
  const d = (await (await postJson(`${server.url}/detokenize`, { model: 'tiny-shakespeare', tokens: t.tokens })).json()) as { prompt: string };
  assert.equal(d.prompt, 'O Romeo, Romeo!');
  const chat = (await (await postJson(`${server.url}/tokenize`, { messages: [{ role: 'user', content: 'hi <|im_end|>' }] })).json()) as { tokens: number[] };
  const imEnd = 3;
  assert.equal(chat.tokens.filter((x) => x === imEnd).length, 1, "the user's <|im_end|> text is not a control token");
});

test('health, ready and models', async () => {
  assert.deepEqual(await (await fetch(`${server.url}/health`)).json(), { status: 'ok' });
  const ready = await fetch(`${server.url}/ready`);
  assert.equal(ready.status, 200);
  const model = (await (await fetch(`${server.url}/v1/models/tiny-shakespeare`)).json()) as { id: string; object: string };
  assert.deepEqual([model.id, model.object], ['tiny-shakespeare', 'model']);
  assert.equal((await fetch(`${server.url}/v1/models/other`)).status, 404);
});

test('metrics expose requests, latencies, tokens and engine gauges', async () => {
  await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'KING:', max_tokens: 6, ignore_eos: true });
  const text = await (await fetch(`${server.url}/metrics`)).text();
  for (const name of ['tachyon_requests_total', 'tachyon_time_to_first_token_seconds_bucket', 'tachyon_inter_token_latency_seconds_bucket', 'tachyon_e2e_request_latency_seconds_bucket', 'tachyon_prompt_tokens_total', 'tachyon_generation_tokens_total', 'tachyon_requests_waiting', 'tachyon_requests_running', 'tachyon_kv_blocks_used', 'tachyon_prefix_cache_hit_tokens'])
    assert.ok(text.includes(name), name);
  assert.match(text, /tachyon_requests_total\{endpoint="\/v1\/completions",status="200"\} \d+/);
  assert.match(text, /tachyon_generation_tokens_total \d+/);
});

test('CORS answers the configured origin', async () => {
  const res = await fetch(`${server.url}/v1/models`, { method: 'OPTIONS', headers: { origin: 'https://chat.example', 'access-control-request-method': 'POST' } });
  assert.equal(res.headers.get('access-control-allow-origin'), 'https://chat.example');
});

test('parameters that change nothing here are accepted and ignored; store: true is a 400 naming it', async () => {
  const ignored = { store: false, metadata: { team: 'a' }, service_tier: 'auto', prompt_cache_key: 'k', safety_identifier: 'u-1', user: 'u', parallel_tool_calls: false };
  const chat = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny-shakespeare', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, ...ignored });
  assert.equal(chat.status, 200, await chat.clone().text());
  const { parallel_tool_calls: _, ...forCompletions } = ignored;
  assert.equal((await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'hi', max_tokens: 3, ...forCompletions })).status, 200);
  const stored = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny-shakespeare', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, store: true });
  assert.equal(stored.status, 400);
  assert.equal(((await stored.json()) as { error: { param: string } }).error.param, 'store');
});
