// The serving benchmark's arithmetic and SSE scanning (bench/serve-stats.ts, bench/serve-sse.ts, bench/serve-workload.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SseScanner, classifyEvent } from '../../bench/serve-sse.js';
import { percentile, requestLatency, runStats, summarize, type RequestRecord } from '../../bench/serve-stats.js';
import { poissonOffsets, promptIdRange, seededRandom, tokenPrompt } from '../../bench/serve-workload.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} != ${b}`);

test('percentiles interpolate linearly between ranks, as numpy does by default', () => {
  const v = [15, 20, 35, 40, 50];
  assert.equal(percentile(v, 0), 15);
  assert.equal(percentile(v, 50), 35);
  assert.equal(percentile(v, 100), 50);
  // rank 0.4 * 4 = 1.6: 20 + 0.6 * (35 - 20)
  close(percentile(v, 40), 29);
  // rank 0.99 * 4 = 3.96: 40 + 0.96 * 10
  close(percentile(v, 99), 49.6);
  // order of the input does not matter, and numbers sort as numbers (not as strings: 100 > 9)
  assert.equal(percentile([100, 9, 50], 50), 50);
  assert.equal(percentile([7], 90), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('summaries of 1..100: mean 50.5, p50 50.5, p90 90.1, p99 99.01', () => {
  const v = Array.from({ length: 100 }, (_, i) => 100 - i);
  const s = summarize(v);
  assert.equal(s.count, 100);
  close(s.mean, 50.5);
  close(s.p50, 50.5);
  close(s.p90, 90.1);
  close(s.p99, 99.01);
  // No values: NaN figures, which the JSON line writes as null.
  assert.equal(JSON.stringify(summarize([])), '{"mean":null,"p50":null,"p90":null,"p99":null,"count":0}');
});

const record = (over: Partial<RequestRecord>): RequestRecord => ({
  ok: true,
  start: 1000,
  end: 1000,
  tokenTimes: [],
  completionTokens: 0,
  promptTokens: 4,
  streamed: true,
  ...over,
});

test('TTFT, ITLs and TPOT from a synthetic timeline', () => {
  // sent at 1000 ms; tokens at 1100, 1110, 1130, 1160; last byte at 1165
  const l = requestLatency(record({ start: 1000, end: 1165, tokenTimes: [1100, 1110, 1130, 1160], completionTokens: 4 }));
  assert.equal(l.ttft, 100);
  assert.deepEqual(l.itls, [10, 20, 30]);
  assert.equal(l.e2e, 165);
  // (165 - 100) / (4 - 1)
  close(l.tpot!, 65 / 3);
  // The usage count wins over the event count: 7 tokens in 4 events (some events held several).
  close(requestLatency(record({ start: 1000, end: 1165, tokenTimes: [1100, 1110, 1130, 1160], completionTokens: 7 })).tpot!, 65 / 6);
  // One token: no TPOT.
  assert.equal(requestLatency(record({ end: 1050, tokenTimes: [1040], completionTokens: 1 })).tpot, undefined);
});

test('a request that was not streamed has TTFT = E2E and neither ITLs nor TPOT', () => {
  const l = requestLatency(record({ streamed: false, start: 0, end: 250, completionTokens: 32 }));
  assert.equal(l.ttft, 250);
  assert.equal(l.e2e, 250);
  assert.deepEqual(l.itls, []);
  assert.equal(l.tpot, undefined);
});

test('run figures count completed requests only and keep the first error', () => {
  const records = [
    record({ start: 0, end: 400, tokenTimes: [100, 200, 300, 400], completionTokens: 4, promptTokens: 10 }),
    record({ ok: false, error: 'HTTP 429: the queue is full', start: 0, end: 5 }),
    record({ start: 100, end: 2000, tokenTimes: [300, 2000], completionTokens: 2, promptTokens: 10 }),
    record({ ok: false, error: 'second', start: 0, end: 5 }),
  ];
  const s = runStats(records, 2000);
  assert.equal(s.completed, 2);
  assert.equal(s.failed, 2);
  assert.equal(s.firstError, 'HTTP 429: the queue is full');
  assert.equal(s.durationS, 2);
  assert.equal(s.requestsPerS, 1);
  assert.equal(s.outputTokPerS, 3);
  assert.equal(s.totalTokPerS, 13);
  assert.deepEqual([s.ttft.count, s.itl.count, s.tpot.count, s.e2e.count], [2, 4, 2, 2]);
  // TTFTs 100 and 200; ITLs 100, 100, 100, 1700; E2Es 400 and 1900
  close(s.ttft.mean, 150);
  close(s.itl.p50, 100);
  close(s.itl.mean, 500);
  close(s.e2e.p50, 1150);
  // TPOTs (400-100)/3 = 100 and (1900-200)/1 = 1700
  close(s.tpot.mean, 900);
});

/** Feeds text to a scanner in pieces cut at the given offsets; returns every event's data. */
function scanInPieces(text: string, cuts: number[]): string[] {
  const out: string[] = [];
  const sse = new SseScanner();
  let from = 0;
  for (const c of [...cuts, text.length]) {
    sse.push(text.slice(from, c), (d) => out.push(d));
    from = c;
  }
  sse.end((d) => out.push(d));
  return out;
}

const STREAM =
  'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" thee","logprobs":null,"finish_reason":null}]}\n\n' +
  'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"length"}]}\n\n' +
  ': a comment line\n\n' +
  'data: {"error":{"message":"the runtime failed this step: out of memory","type":"server_error","param":null,"code":null}}\n\n' +
  'data: [DONE]\n\n';

test('SSE frames survive chunks split at every byte boundary', () => {
  const whole = scanInPieces(STREAM, []);
  assert.equal(whole.length, 4);
  assert.equal(whole[3], '[DONE]');
  for (let a = 0; a <= STREAM.length; a++) assert.deepEqual(scanInPieces(STREAM, [a]), whole, `cut at ${a}`);
  // Odd cuts everywhere at once, including between the two newlines of a frame end.
  const many = [1, 2, 3, 7, 120, 121, 122, 200, 243, 244, 245, 300, 301, STREAM.length - 2, STREAM.length - 1];
  assert.deepEqual(scanInPieces(STREAM, many), whole);
});

test('SSE with CRLF or CR line ends, split anywhere (inside a CRLF too), and multi-line data', () => {
  const want = scanInPieces(STREAM, []);
  for (const ends of ['\r\n', '\r']) {
    const text = STREAM.replace(/\n/g, ends);
    for (let a = 0; a <= text.length; a += 1) assert.deepEqual(scanInPieces(text, [a]), want, `${JSON.stringify(ends)}: cut at ${a}`);
  }
  assert.deepEqual(scanInPieces('event: x\ndata: a\ndata:b\n\n', [10]), ['a\nb']);
});

test('event classes: token (with or without text), finish, usage, error, done', () => {
  const events = scanInPieces(STREAM, [57]).map((d) => classifyEvent(d, 'text'));
  assert.deepEqual(
    events.map((e) => e.kind),
    ['token', 'other', 'error', 'done'],
  );
  assert.deepEqual(events[2], { kind: 'error', message: 'the runtime failed this step: out of memory' });
  assert.deepEqual(
    classifyEvent('{"id":"c","object":"text_completion","choices":[],"usage":{"prompt_tokens":32,"completion_tokens":31,"total_tokens":63}}', 'text'),
    { kind: 'usage', promptTokens: 32, completionTokens: 31 },
  );
  // Chat: the opening chunk's empty content is no token; an escaped quote in the text does not confuse the search.
  assert.equal(classifyEvent('{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}', 'content').kind, 'other');
  assert.equal(classifyEvent('{"choices":[{"index":0,"delta":{"content":"\\"text\\":\\""},"finish_reason":null}]}', 'content').kind, 'token');
  // A token that adds no text yet still has its chunk, and counts.
  assert.equal(classifyEvent('{"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":null}]}', 'text').kind, 'token');
  assert.equal(classifyEvent('{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}', 'content').kind, 'other');
  assert.equal(classifyEvent('{"choices":[{"index":0,"text":"\\"","finish_reason":null}]}', 'text').kind, 'token');
});

test('workload: the seeded generator reproduces, ids stay in range, Poisson gaps average 1/rate', () => {
  const a = seededRandom(7);
  const b = seededRandom(7);
  const xs = Array.from({ length: 1000 }, a);
  assert.deepEqual(xs, Array.from({ length: 1000 }, b));
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, seededRandom(8)));

  assert.deepEqual(promptIdRange(128_256), { lo: 100, hi: 20_000 });
  assert.deepEqual(promptIdRange(1024), { lo: 100, hi: 1024 });
  assert.deepEqual(promptIdRange(256), { lo: 32, hi: 256 });
  const ids = tokenPrompt(seededRandom(1), 10_000, { lo: 100, hi: 1024 });
  assert.ok(ids.every((t) => Number.isInteger(t) && t >= 100 && t < 1024));
  assert.ok(ids.includes(100) && ids.includes(1023));

  const offsets = poissonOffsets(seededRandom(3), 20_001, 20);
  assert.equal(offsets[0], 0);
  assert.ok(offsets.every((t, i) => i === 0 || t >= offsets[i - 1]));
  // 20,000 gaps of mean 50 ms: the total is within 3% of 1,000 s (about 4 standard deviations).
  close(offsets[20_000] / 1000, 1000, 30);
  assert.deepEqual(poissonOffsets(seededRandom(3), 3, Infinity), [0, 0, 0]);
});
