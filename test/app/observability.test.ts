// Request ids, access lines, error logging and the Prometheus metrics an operator reads.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Writable } from 'node:stream';

import { createApp } from '../../app/app.js';
import { jsonLog } from '../../app/logger.js';
import type { RunningServer } from '../../app/server.js';
import { postJson, recordingLog, startTestServer, type LogRecord } from '../helpers/server.js';

const KEY = 'sk-observe';
const auth = { authorization: `Bearer ${KEY}` };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PROMPT = 'Most secret words of the Duke of Milan:';

const log = recordingLog();
const textLog = recordingLog();
let server: RunningServer;
let textServer: RunningServer;
before(async () => {
  server = await startTestServer({ apiKeys: [KEY], maxBodyBytes: 4096 }, log);
  textServer = await startTestServer({ logRequests: true }, textLog);
});
after(async () => {
  await server.shutdown(1000);
  await textServer.shutdown(1000);
});

type Fields = Record<string, unknown>;
const fields = (r: LogRecord) => (r.detail ?? {}) as Fields;
/** The access lines of one request id. */
const accessLines = (records: LogRecord[], id: string, level = 'info') => records.filter((r) => r.level === level && fields(r).request_id === id && 'status' in fields(r));

async function waitFor<T>(read: () => T | undefined, what: string, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = read();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

test('x-request-id: generated on every response (200, 400, 401, 404, 413, SSE), honoured when sane', async () => {
  const responses: [string, Response][] = [
    ['200', await fetch(`${server.url}/health`)],
    ['400', await postJson(`${server.url}/v1/completions`, '{not json', auth)],
    ['401', await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'x' })],
    ['404', await fetch(`${server.url}/no/such/route`)],
    ['413', await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'x'.repeat(5000) }, auth)],
    ['SSE', await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'KING:', max_tokens: 3, stream: true }, auth)],
  ];
  const ids = new Set<string>();
  for (const [what, res] of responses) {
    await res.arrayBuffer();
    if (what !== 'SSE') assert.equal(String(res.status), what);
    const id = res.headers.get('x-request-id') ?? '';
    assert.match(id, UUID, `${what} has a generated x-request-id`);
    ids.add(id);
  }
  assert.equal(ids.size, responses.length, 'each request its own id');

  const sane = 'trace-01:abc_DEF.9';
  for (const res of [
    await fetch(`${server.url}/health`, { headers: { 'x-request-id': sane } }),
    await fetch(`${server.url}/nowhere`, { headers: { 'x-request-id': sane } }),
    await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny-shakespeare', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true }, { ...auth, 'x-request-id': sane }),
  ]) {
    await res.arrayBuffer();
    assert.equal(res.headers.get('x-request-id'), sane);
  }
  for (const bad of ['has space', 'x'.repeat(129), 'semi;colon', 'quote"d']) {
    const res = await fetch(`${server.url}/health`, { headers: { 'x-request-id': bad } });
    assert.match(res.headers.get('x-request-id') ?? '', UUID, `${JSON.stringify(bad)} is replaced`);
  }
  assert.equal((await fetch(`${server.url}/health`, { headers: { 'x-request-id': 'x'.repeat(128) } })).headers.get('x-request-id'), 'x'.repeat(128));
});

test('a stream gets one access line when it ends, with tokens, ttft and finish reasons but no text', async () => {
  const res = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: PROMPT, max_tokens: 400, stream: true, ignore_eos: true }, auth);
  const id = res.headers.get('x-request-id')!;
  const reader = res.body!.getReader();
  await reader.read();
  assert.equal(accessLines(log.records, id).length, 0, 'no line while the stream runs');
  while (!(await reader.read()).done);
  const lines = accessLines(log.records, id);
  assert.equal(lines.length, 1);
  const f = fields(lines[0]);
  assert.equal(f.method, 'POST');
  assert.equal(f.path, '/v1/completions');
  assert.equal(f.status, 200);
  assert.equal(f.model, 'tiny-shakespeare');
  assert.equal(f.completion_tokens, 400);
  assert.ok((f.prompt_tokens as number) > 5);
  assert.deepEqual(f.finish_reasons, ['length']);
  assert.ok(typeof f.ttft_ms === 'number' && f.ttft_ms >= 0);
  assert.ok(typeof f.duration_ms === 'number' && f.duration_ms >= (f.ttft_ms as number));
  assert.ok(!('prompt' in f) && !('output' in f));
  assert.ok(!JSON.stringify(log.records).includes('Duke of Milan'), 'the prompt text is never logged');
});

test('a non-streamed generation and plain routes get an access line too', async () => {
  const res = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny-shakespeare', messages: [{ role: 'user', content: PROMPT }], max_tokens: 5, ignore_eos: true, n: 2 }, auth);
  assert.equal(res.status, 200);
  await res.json();
  const f = fields(accessLines(log.records, res.headers.get('x-request-id')!)[0]);
  assert.deepEqual([f.path, f.status, f.completion_tokens, f.finish_reasons], ['/v1/chat/completions', 200, 10, ['length', 'length']]);

  const health = await fetch(`${server.url}/health`);
  const healthId = health.headers.get('x-request-id')!;
  assert.equal(accessLines(log.records, healthId).length, 0, 'probes are not at info');
  const h = fields(accessLines(log.records, healthId, 'debug')[0]);
  assert.deepEqual([h.method, h.path, h.status], ['GET', '/health', 200]);
  assert.ok(!('model' in h));

  const models = await fetch(`${server.url}/v1/models`, { headers: auth });
  const m = fields(accessLines(log.records, models.headers.get('x-request-id')!)[0]);
  assert.deepEqual([m.method, m.path, m.status], ['GET', '/v1/models', 200]);
});

test('client errors: an info access line with the code, a debug line, never an error', async () => {
  const res = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'x', max_tokens: 0 }, auth);
  assert.equal(res.status, 400);
  const id = res.headers.get('x-request-id')!;
  const f = fields(accessLines(log.records, id)[0]);
  assert.equal(f.status, 400);
  assert.equal((f.error as Fields).status, 400);
  const mine = log.records.filter((r) => fields(r).request_id === id);
  assert.ok(mine.some((r) => r.level === 'debug' && /400/.test(r.message)));
  assert.ok(!mine.some((r) => r.level === 'error' || r.level === 'warn'));

  const malformed = await postJson(`${server.url}/v1/completions`, 'secret words', auth);
  assert.equal(malformed.status, 400);
  const j = fields(accessLines(log.records, malformed.headers.get('x-request-id')!)[0]);
  assert.deepEqual((j.error as Fields).code, 'invalid_json');
  assert.ok(!JSON.stringify(log.records).includes('secret words'), 'a parse error quoting the body is not logged');

  const missing = await fetch(`${server.url}/v1/models/nope`, { headers: auth });
  const m = fields(accessLines(log.records, missing.headers.get('x-request-id')!)[0]);
  assert.deepEqual([m.status, (m.error as Fields).code], [404, 'model_not_found']);
  const unauthorized = await fetch(`${server.url}/v1/models`);
  const u = fields(accessLines(log.records, unauthorized.headers.get('x-request-id')!)[0]);
  assert.deepEqual([u.status, (u.error as Fields).code], [401, 'invalid_api_key']);
});

test('a 500 is logged as an error with its stack and the request id', async () => {
  const rec = recordingLog();
  const app = createApp({ ...server.deps, config: { ...server.deps.config, apiKeys: [] }, tokenizers: null as never }, rec);
  const res = await app.request('/tokenize', { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'req-500' }, body: JSON.stringify({ prompt: 'hi' }) });
  assert.equal(res.status, 500);
  assert.equal(res.headers.get('x-request-id'), 'req-500');
  assert.deepEqual(((await res.json()) as { error: { code: string } }).error.code, 'internal_error');
  const error = rec.records.find((r) => r.level === 'error');
  assert.ok(error, 'an error line');
  assert.equal(fields(error).request_id, 'req-500');
  assert.ok(fields(error).err instanceof Error && /TypeError/.test((fields(error).err as Error).stack ?? ''));
  const access = fields(accessLines(rec.records, 'req-500')[0]);
  assert.deepEqual([access.status, (access.error as Fields).code], [500, 'internal_error']);
});

test('a client that disconnects mid-stream: the line says abort, and so do the metrics', async () => {
  const before = await (await fetch(`${server.url}/metrics`)).text();
  const controller = new AbortController();
  const res = await fetch(`${server.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify({ model: 'tiny-shakespeare', prompt: 'KING:', max_tokens: 600, stream: true, ignore_eos: true }),
    signal: controller.signal,
  });
  const id = res.headers.get('x-request-id')!;
  const reader = res.body!.getReader();
  await reader.read();
  controller.abort();
  await reader.cancel().catch(() => {});
  const line = await waitFor(() => accessLines(log.records, id)[0], 'the access line');
  const f = fields(line);
  assert.deepEqual(f.finish_reasons, ['abort']);
  assert.ok((f.completion_tokens as number) < 600);
  const after = await (await fetch(`${server.url}/metrics`)).text();
  assert.equal(metricValue(after, 'tachyon_requests_aborted_total'), metricValue(before, 'tachyon_requests_aborted_total') + 1);
  assert.equal(metricValue(after, 'tachyon_requests_finished_total{finish_reason="abort"}'), metricValue(before, 'tachyon_requests_finished_total{finish_reason="abort"}') + 1);
});

test('with logRequests the access line carries the prompt and output text', async () => {
  const res = await postJson(`${textServer.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: PROMPT, max_tokens: 8, stream: true, ignore_eos: true });
  const body = await res.text();
  const streamed = body
    .split('\n')
    .filter((l) => l.startsWith('data: {'))
    .map((l) => JSON.parse(l.slice(6)).choices[0]?.text ?? '')
    .join('');
  const f = fields(accessLines(textLog.records, res.headers.get('x-request-id')!)[0]);
  assert.ok(String(f.prompt).includes('Duke of Milan'));
  assert.deepEqual(f.output, [streamed]);
});

test('with logRequests the Responses and Messages routes log their output text too', async () => {
  const r = await postJson(`${textServer.url}/v1/responses`, { model: 'tiny-shakespeare', input: PROMPT, max_output_tokens: 6, store: false });
  const text = ((await r.json()) as { output_text: string }).output_text;
  assert.deepEqual(fields(accessLines(textLog.records, r.headers.get('x-request-id')!)[0]).output, [text]);
  const m = await postJson(`${textServer.url}/v1/messages`, { model: 'tiny-shakespeare', max_tokens: 6, messages: [{ role: 'user', content: PROMPT }] });
  const reply = ((await m.json()) as { content: { text: string }[] }).content[0].text;
  assert.deepEqual(fields(accessLines(textLog.records, m.headers.get('x-request-id')!)[0]).output, [reply]);
});

test('metrics: engine totals are counters, finish reasons are counted, step and process metrics exist', async () => {
  const scrape = async () => (await fetch(`${server.url}/metrics`)).text();
  const first = await scrape();
  for (const name of ['tachyon_preemptions_total', 'tachyon_prefix_cache_hit_tokens_total', 'tachyon_requests_finished_total', 'tachyon_requests_aborted_total', 'process_cpu_seconds_total'])
    assert.match(first, new RegExp(`^# TYPE ${name} counter$`, 'm'), name);
  for (const name of ['tachyon_step_duration_seconds', 'tachyon_step_batch_size', 'tachyon_step_tokens', 'tachyon_e2e_request_latency_seconds'])
    assert.match(first, new RegExp(`^# TYPE ${name} histogram$`, 'm'), name);
  assert.match(first, /tachyon_e2e_request_latency_seconds_bucket\{le="3600"\}/);
  assert.doesNotMatch(first, /^tachyon_preemptions /m, 'the old gauge names are gone');

  // The same long prompt twice: the second hits the prefix cache.
  const prompt = 'To be, or not to be, that is the question: whether tis nobler in the mind to suffer the slings and arrows of outrageous fortune';
  for (let i = 0; i < 2; i++) await (await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt, max_tokens: 3, ignore_eos: true }, auth)).json();
  const second = await scrape();
  const hits = server.deps.engine.stats().prefixCacheHitTokens;
  assert.ok(hits > 0);
  assert.equal(metricValue(second, 'tachyon_prefix_cache_hit_tokens_total'), hits);
  assert.equal(metricValue(second, 'tachyon_preemptions_total'), server.deps.engine.stats().preemptions);
  const length = 'tachyon_requests_finished_total{finish_reason="length"}';
  assert.equal(metricValue(second, length), metricValue(first, length) + 2);
  assert.equal(metricValue(await scrape(), 'tachyon_prefix_cache_hit_tokens_total'), hits, 'a scrape does not count twice');

  server.deps.metrics.observeStep(12, 3, 40);
  const third = await scrape();
  assert.ok(metricValue(third, 'tachyon_step_duration_seconds_count') >= 1);
  assert.match(third, /tachyon_step_batch_size_bucket\{le="4"\} [1-9]/);
  assert.match(third, /tachyon_step_tokens_bucket\{le="64"\} [1-9]/);
});

test('jsonLog writes one JSON line per message, message text intact, with bound fields', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const l = jsonLog('info', sink);
  l.debug('hidden');
  l.info('serving tiny-shakespeare at http://127.0.0.1:1234 (OpenAI API under http://127.0.0.1:1234/v1)');
  l.child!({ request_id: 'r1' }).warn('slow', { ms: 12 });
  l.error('boom', new Error('bad thing'));
  const parsed = lines.map((x) => JSON.parse(x));
  assert.equal(parsed.length, 3);
  assert.equal(parsed[0].level, 'info');
  assert.match(parsed[0].msg, /serving \S+ at (http:\/\/\S+)/);
  assert.ok(!Number.isNaN(Date.parse(parsed[0].time)));
  assert.deepEqual([parsed[1].level, parsed[1].msg, parsed[1].request_id, parsed[1].ms], ['warn', 'slow', 'r1', 12]);
  assert.equal(parsed[2].err.message, 'bad thing');
  assert.match(parsed[2].err.stack, /Error: bad thing/);
});
