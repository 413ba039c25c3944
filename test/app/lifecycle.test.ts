// What happens around requests: a client that disconnects mid-stream frees
// its KV blocks at once; SIGTERM lets running streams finish, then exits 0.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../../native/binding.js';
import { postJson, recordingLog, startTestServer } from '../helpers/server.js';

const long = (stream: boolean) => ({ model: 'tiny-shakespeare', prompt: 'ROMEO:\n', max_tokens: 400, ignore_eos: true, stream });

test('a client that disconnects mid-stream frees every KV block of its request', async () => {
  const server = await startTestServer();
  try {
    const abort = new AbortController();
    const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(long(true)), signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    assert.ok(server.deps.engine.stats().kvBlocksUsed > 0, 'the request holds blocks while it streams');
    abort.abort();
    const deadline = Date.now() + 2000;
    while ((server.deps.engine.stats().kvBlocksUsed > 0 || server.deps.engine.stats().running > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(server.deps.engine.stats().kvBlocksUsed, 0);
    assert.equal(server.deps.engine.stats().running, 0);
  } finally {
    await server.shutdown(1000);
  }
});

test('a client that disconnects from a non-streamed request cancels it too', async () => {
  const server = await startTestServer();
  try {
    const abort = new AbortController();
    const pending = fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(long(false)), signal: abort.signal }).catch(() => null);
    while (server.deps.engine.stats().running === 0) await new Promise((r) => setTimeout(r, 2));
    abort.abort();
    await pending;
    const deadline = Date.now() + 2000;
    while (server.deps.engine.stats().running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(server.deps.engine.stats().running, 0);
    assert.equal(server.deps.engine.stats().kvBlocksUsed, 0);
  } finally {
    await server.shutdown(1000);
  }
});

test('SIGTERM during a stream: the stream completes, new requests are refused, the process exits 0', async () => {
  const child = spawn(process.execPath, [join(packageRoot(), 'dist', 'app', 'main.js'), '--port', '0', '--kv-cache-bytes', String(64 << 20)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /serving \S+ at (http:\/\/\S+)/.exec(log);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`server exited early (${code}): ${log}`)));
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const res = await postJson(`${url}/v1/completions`, { ...long(true), max_tokens: 60 });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value, { stream: true });
  child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 50));
  const refused = await postJson(`${url}/v1/completions`, long(false)).then((r) => r.status, () => 'connection refused');
  assert.ok(refused === 503 || refused === 'connection refused', `new request got ${refused}`);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  assert.match(text, /"finish_reason":"length"/);
  assert.ok(text.trimEnd().endsWith('data: [DONE]'));
  assert.equal(await exited, 0);
  assert.match(log, /SIGTERM/);
});

async function readAll(res: Response): Promise<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return text;
    text += decoder.decode(value, { stream: true });
  }
}

test('cut off by the grace period, a request never looks finished: 503 body, or an error event without finish_reason or [DONE]', async () => {
  const server = await startTestServer({ maxNumSeqs: 2 });
  const streamed = await postJson(`${server.url}/v1/completions`, { ...long(true), max_tokens: 1000 });
  const whole = postJson(`${server.url}/v1/completions`, { ...long(false), max_tokens: 1000 });
  while (server.deps.engine.stats().running < 2) await new Promise((r) => setTimeout(r, 2));
  const stopped = server.shutdown(100);
  const [text, res] = await Promise.all([readAll(streamed), whole]);
  await stopped;
  assert.equal(res.status, 503);
  const body = (await res.json()) as { error: { code: string; message: string; type: string } };
  assert.equal(body.error.code, 'request_cancelled');
  assert.match(body.error.message, /grace period/);
  const events = text.split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
  assert.match(events[events.length - 1], /^\{"error":\{"message":"the server shut down before the request finished/);
  assert.doesNotMatch(text, /"finish_reason":"(stop|length)"/);
  assert.doesNotMatch(text, /\[DONE\]/);
});

test('while draining, /ready is 503, /health answers, new work gets 503 in the OpenAI shape, and running requests finish', async () => {
  const server = await startTestServer();
  const streamed = await postJson(`${server.url}/v1/completions`, { ...long(true), max_tokens: 300 });
  while (server.deps.engine.stats().running < 1) await new Promise((r) => setTimeout(r, 2));
  const stopped = server.shutdown(20000);
  assert.equal((await fetch(`${server.url}/ready`)).status, 503);
  assert.equal((await fetch(`${server.url}/health`)).status, 200);
  const refused = await postJson(`${server.url}/v1/completions`, long(false));
  assert.equal(refused.status, 503);
  assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'shutting_down');
  const text = await readAll(streamed);
  assert.match(text, /"finish_reason":"length"/);
  assert.ok(text.trimEnd().endsWith('data: [DONE]'));
  await stopped;
});

test('a port in use: one clear line and a non-zero exit', async () => {
  const server = await startTestServer();
  const port = new URL(server.url).port;
  try {
    const child = spawn(process.execPath, [join(packageRoot(), 'dist', 'app', 'main.js'), '--port', port], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    assert.notEqual(code, 0);
    assert.match(log, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
    assert.doesNotMatch(log, /\n\s+at /, 'no stack trace');
    assert.equal(log.trim().split('\n').length, 1, log);
  } finally {
    await server.shutdown(1000);
  }
});

test('start-up logs the KV capacity in tokens and warns about a cache too small for one full-context request and a clamped --max-model-len', async () => {
  const log = recordingLog();
  const server = await startTestServer({ kvCacheBytes: 256 * 1024, maxModelLen: 100000 }, log);
  try {
    const lines = log.records.map((r) => `${r.level} ${r.message}`);
    assert.ok(lines.some((l) => /^info KV cache: \d+ blocks of 16 tokens = \d+ tokens/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^warn --max-model-len 100000 is longer than the model's context; serving 1024/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^warn the KV cache holds \d+ tokens, fewer than one full-context request \(1024\)/.test(l)), lines.join('\n'));
    assert.ok(lines.includes('info async scheduling: on (step N + 1 is launched while step N runs)'), lines.join('\n'));
  } finally {
    await server.shutdown(1000);
  }
});

test('--no-async-scheduling runs the server one step at a time, and says so at start-up', async () => {
  const log = recordingLog();
  const server = await startTestServer({ asyncScheduling: false }, log);
  try {
    assert.ok(log.records.some((r) => r.message === 'async scheduling: off (one step at a time)'));
    const res = await postJson(`${server.url}/v1/completions`, { ...long(false), max_tokens: 5 });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 5);
  } finally {
    await server.shutdown(1000);
  }
});

test('a drain waits for a request still being read, which then runs to its end', { timeout: 20000 }, async () => {
  const server = await startTestServer();
  const { hostname, port } = new URL(server.url);
  const body = JSON.stringify({ ...long(false), max_tokens: 900 });
  const done = new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request({ hostname, port, path: '/v1/completions', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.flushHeaders();
    (async () => {
      while (server.deps.state.inFlight === 0) await new Promise((r) => setTimeout(r, 2));
      stopped = server.shutdown(20000);
      await new Promise((r) => setTimeout(r, 100));
      req.end(body);
    })();
  });
  let stopped: Promise<void> | undefined;
  const res = await done;
  assert.equal(res.status, 200, res.text);
  assert.match(res.text, /"finish_reason":"length"/);
  await stopped;
});

test('a stream of several choices whose client reads late still ends with [DONE] (back-pressure on every choice)', { timeout: 30000 }, async () => {
  const server = await startTestServer();
  try {
    const { hostname, port } = new URL(server.url);
    const body = JSON.stringify({ model: 'tiny-shakespeare', prompt: 'ROMEO:\n', n: 16, logprobs: 5, max_tokens: 1000, ignore_eos: true, stream: true });
    const text = await new Promise<string>((resolve, reject) => {
      const req = request({ hostname, port, path: '/v1/completions', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.pause();
        let out = '';
        // Read nothing until the engine is done, so the server's writes pile up against the socket.
        (async () => {
          while (server.deps.engine.stats().running > 0 || server.deps.engine.stats().waiting > 0) await new Promise((r) => setTimeout(r, 10));
          res.on('data', (c) => (out += c));
          res.on('end', () => resolve(out));
          res.resume();
        })();
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.ok(text.trimEnd().endsWith('data: [DONE]'), text.slice(-200));
  } finally {
    await server.shutdown(1000);
  }
});
