// Prompts too long for the context are refused from their length in bytes, before any tokenizing,
// and refusing five of them at once leaves a running stream streaming.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { createParser } from 'eventsource-parser';

import type { RunningServer } from '../../app/server.js';
import { postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.shutdown(1000));

const WORDS = ['ROMEO', 'Juliet', 'light', 'through', 'yonder', 'window', 'breaks', 'thou', 'art', 'the', 'sun', 'arise', 'fair', 'kill', 'envious', 'moon',
  'who', 'is', 'already', 'sick', 'and', 'pale', 'with', 'grief', 'that', 'maid', 'far', 'more', 'than', 'she', '—', 'ô', '\n', ',', '.', '!', '?'];

/** About `bytes` UTF-8 bytes of varied text (a seeded word salad, so every run sends the same). */
function longText(bytes: number, seed: number): string {
  let x = seed;
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const w = WORDS[(x >>> 8) % WORDS.length] + ' ';
    parts.push(w);
    n += Buffer.byteLength(w);
  }
  return parts.join('');
}

const MB = 3_900_000;

interface ErrorBody {
  error: { code: string; message: string; param: string };
}

function assertTooLong(status: number, body: ErrorBody, param: string) {
  assert.equal(status, 400);
  assert.equal(body.error.code, 'context_length_exceeded');
  assert.equal(body.error.param, param);
  const m = /maximum context length is (\d+) tokens\. However, your (?:messages|prompt) resulted in at least (\d+) tokens/.exec(body.error.message);
  assert.ok(m, body.error.message);
  assert.ok(Number(m[2]) >= Number(m[1]));
}

test('a 3.9 MB chat prompt and completion prompts get 400 context_length_exceeded naming a lower bound', async () => {
  const text = longText(MB, 1);
  const chat = await postJson(`${server.url}/v1/chat/completions`, { model: 'tiny-shakespeare', messages: [{ role: 'user', content: text }] });
  assertTooLong(chat.status, await chat.json(), 'messages');
  const one = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: text });
  assertTooLong(one.status, await one.json(), 'prompt');
  const list = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: ['KING:', text.slice(0, 100_000)] });
  assertTooLong(list.status, await list.json(), 'prompt[1]');
});

test('a prompt under the bound is tokenized and checked exactly', async () => {
  // 17,000 bytes: at least 1,000 tokens by the bound (17 bytes a token at most), under the context of
  // 1024, so it is tokenized (on the worker: over 16K characters) and refused with the exact count.
  const text = longText(17_000, 2);
  assert.ok(server.deps.tokenizers.tokenizer.minTokens(text, { addSpecialTokens: true }) < 1024);
  const res = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: text, max_tokens: 1 });
  const body = (await res.json()) as ErrorBody;
  assert.equal(res.status, 400);
  assert.equal(body.error.code, 'context_length_exceeded');
  const m = /you requested (\d+) tokens \((\d+) in the prompt, 1 in the completion\)/.exec(body.error.message);
  assert.ok(m, body.error.message);
  assert.equal(Number(m[2]), server.deps.tokenizers.tokenizer.encode(text, { addSpecialTokens: true }).length);
  const short = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: longText(1_500, 3), max_tokens: 1 });
  assert.equal(short.status, 200);
});

/**
 * Sends five 3.9 MB prompts (chat and completion in turn) from a worker thread when told to, so
 * building and sending 20 MB of bodies does not load the event loop the server and the stream's
 * reader share (the test's own JSON.stringify would stall it more than the server does).
 */
function senderWorker(url: string): Worker {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const WORDS = ${JSON.stringify(WORDS)};
    ${longText.toString()}
    const requests = Array.from({ length: 5 }, (_, i) => {
      const text = longText(${MB}, 10 + i);
      return i % 2 === 0
        ? { path: '/v1/chat/completions', param: 'messages', body: Buffer.from(JSON.stringify({ model: 'tiny-shakespeare', messages: [{ role: 'user', content: text }], stream: true })) }
        : { path: '/v1/completions', param: 'prompt', body: Buffer.from(JSON.stringify({ model: 'tiny-shakespeare', prompt: text })) };
    });
    parentPort.postMessage('ready');
    parentPort.once('message', async () => {
      const replies = await Promise.all(requests.map(async ({ path, param, body }) => {
        const res = await fetch(workerData + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        return { status: res.status, body: await res.json(), param };
      }));
      parentPort.postMessage(replies);
    });`;
  return new Worker(code, { eval: true, workerData: url });
}

test('refusing five 3.9 MB prompts at once does not stall a running stream', async (t) => {
  const sender = senderWorker(server.url);
  after(() => sender.terminate());
  await once(sender, 'message');
  const sample = longText(MB, 99);
  const e0 = performance.now();
  server.deps.tokenizers.tokenizer.encode(sample);
  const encodeMs = performance.now() - e0;

  const stream = await postJson(`${server.url}/v1/completions`, {
    model: 'tiny-shakespeare', prompt: 'ROMEO:\n', max_tokens: 1000, ignore_eos: true, stream: true,
  });
  assert.equal(stream.status, 200);
  const arrivals: number[] = [];
  let firstChunks!: () => void;
  const started = new Promise<void>((r) => (firstChunks = r));
  const parser = createParser({
    onEvent: () => {
      arrivals.push(performance.now());
      if (arrivals.length === 10) firstChunks();
    },
  });
  let stop = false;
  let ended = false;
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream.body as unknown as AsyncIterable<Uint8Array>) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      if (stop) break;
    }
    ended = true;
  })();
  await started;

  const t0 = performance.now();
  sender.postMessage('go');
  const [replies] = (await once(sender, 'message')) as [{ status: number; body: ErrorBody; param: string }[]];
  const t1 = performance.now();
  for (const r of replies) assertTooLong(r.status, r.body, r.param);

  // Read on to the first chunk after the last refusal: it closes the gap that spans it.
  while (!ended && !(arrivals.at(-1)! > t1)) await new Promise((r) => setTimeout(r, 5));
  stop = true;
  await reading;
  assert.ok(arrivals.at(-1)! > t1, 'the stream ended before the five prompts were refused; make it longer');

  let worst = 0;
  for (let i = 1; i < arrivals.length; i++) if (arrivals[i] > t0 && arrivals[i - 1] < t1) worst = Math.max(worst, arrivals[i] - arrivals[i - 1]);
  t.diagnostic(`largest gap ${worst.toFixed(1)} ms; five refused in ${(t1 - t0).toFixed(0)} ms; encoding one takes ${encodeMs.toFixed(0)} ms`);
  // On a 2-core machine (shared with other work) each refusal cost the event loop about 20 ms (the
  // body's UTF-8 decode and JSON parse, before any of this code), and five arriving together held the
  // stream 160 to 380 ms; tokenizing one such prompt on the event loop would hold it for the whole
  // encoding (1.3 to 2 s there). The bound is relative to that encoding, which is what a stall would cost,
  // so a slow or busy machine does not fail it.
  assert.ok(worst < encodeMs / 2, `largest gap between stream chunks while five prompts were refused: ${worst.toFixed(1)} ms (refused in ${(t1 - t0).toFixed(0)} ms; one encoding ${encodeMs.toFixed(0)} ms)`);
  // Before the bound the five were tokenized one after another on the one worker: 3.6 to 4 s here,
  // five encodings, and the 1000-token stream ended first. Now all five take less than one encoding.
  assert.ok(t1 - t0 < encodeMs, `five refusals took ${(t1 - t0).toFixed(0)} ms; encoding one such prompt takes ${encodeMs.toFixed(0)} ms`);
});
