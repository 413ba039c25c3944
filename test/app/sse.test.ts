// SSE framing, read with raw fetch and eventsource-parser.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { createParser, type EventSourceMessage } from 'eventsource-parser';

import type { RunningServer } from '../../app/server.js';
import { postJson, startTestServer } from '../helpers/server.js';

let server: RunningServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.shutdown(1000));

async function events(res: Response): Promise<EventSourceMessage[]> {
  const out: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => out.push(e) });
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
  return out;
}

test('chat stream: a role chunk, content deltas, a finish chunk, usage, then [DONE]', async () => {
  const res = await postJson(`${server.url}/v1/chat/completions`, {
    model: 'tiny-shakespeare', messages: [{ role: 'user', content: 'Good morrow.' }], max_tokens: 16, stream: true, stream_options: { include_usage: true }, ignore_eos: true,
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const ev = await events(res);
  assert.equal(ev.at(-1)!.data, '[DONE]');
  const chunks = ev.slice(0, -1).map((e) => JSON.parse(e.data));
  const ids = new Set(chunks.map((c) => c.id));
  assert.equal(ids.size, 1);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'tiny-shakespeare'));
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, 16);
  const finish = chunks.at(-2);
  assert.equal(finish.choices[0].finish_reason, 'length');
  assert.deepEqual(finish.choices[0].delta, {});
  const content = chunks.slice(1, -2);
  assert.ok(content.length > 0 && content.every((c) => typeof c.choices[0].delta.content === 'string' && c.choices[0].finish_reason === null));
});

test('completion stream without usage ends with the finish chunk and [DONE]', async () => {
  const res = await postJson(`${server.url}/v1/completions`, { model: 'tiny-shakespeare', prompt: 'KING:', max_tokens: 5, stream: true, ignore_eos: true });
  const ev = await events(res);
  assert.equal(ev.at(-1)!.data, '[DONE]');
  const chunks = ev.slice(0, -1).map((e) => JSON.parse(e.data));
  assert.ok(chunks.every((c) => c.object === 'text_completion' && !('usage' in c)));
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
});

test('a stream sends a chunk for every generated token, even one that adds no text yet (a possible stop string held back)', async () => {
  // A newline token adds no text while it might begin the stop string; the model writes many.
  const res = await postJson(`${server.url}/v1/completions`, {
    model: 'tiny-shakespeare', prompt: 'ROMEO:\n', max_tokens: 80, stream: true, ignore_eos: true, stop: ['\nXQZJ'], stream_options: { include_usage: true }, seed: 3,
  });
  const chunks = (await events(res)).slice(0, -1).map((e) => JSON.parse(e.data));
  const usage = chunks.at(-1).usage;
  const deltas = chunks.slice(0, -2);
  assert.ok(deltas.length >= usage.completion_tokens - 1, `${deltas.length} chunks for ${usage.completion_tokens} tokens`);
  const text = deltas.map((c) => c.choices[0].text).join('');
  assert.ok(deltas.some((c) => c.choices[0].text === ''), 'some token added no text');
  assert.equal(usage.completion_tokens, 80);
});
