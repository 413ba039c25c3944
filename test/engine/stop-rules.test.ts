// Stop rules: stop strings across tokens (held back, trimmed), EOS, stop
// token ids, max tokens, the context limit, ignore_eos.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Engine } from '../../engine/engine.js';
import { StopChecker } from '../../engine/stop-checker.js';
import { request, run, testTokenizer } from '../helpers/engine.js';
import { FAKE_INFO, FakeRuntime } from '../helpers/fake-runtime.js';

const tokenizer = testTokenizer();
const PROMPT = [5, 77, 300];
const expected = (n: number, prompt = PROMPT) => FakeRuntime.expected(prompt, n, 1000);

test('a stop string spanning tokens ends the request; it and what follows are never sent', async () => {
  const tokens = expected(40);
  const text = tokenizer.decode(tokens, { skipSpecialTokens: true });
  // A stop string that starts inside one token's text and ends in a later one.
  const stop = text.slice(20, 27);
  const engine = new Engine(new FakeRuntime(FAKE_INFO), tokenizer);
  const out = await run(engine, request(PROMPT, 40, { stop: { maxTokens: 40, stop: ['never-there', stop], ignoreEos: true } }));
  assert.equal(out.text, text.slice(0, text.indexOf(stop)));
  assert.equal(out.last.finish?.reason, 'stop');
  assert.equal(out.last.finish?.stopReason, stop);
  assert.ok(out.tokens.length < 40);
});

test('a stop string found while the next step runs (text goes out during the step after its token) ends the request as it would between steps', async () => {
  // Steps that take 5 ms, so the text of step N is detokenized while step N + 1 is running.
  class SlowRuntime extends FakeRuntime {
    readonly carried: number[] = [];
    override async step(b: Parameters<FakeRuntime['step']>[0]) {
      this.carried.push(b.queryLens.length);
      await new Promise((r) => setTimeout(r, 5));
      return super.step(b);
    }
  }
  const tokens = expected(40);
  const text = tokenizer.decode(tokens, { skipSpecialTokens: true });
  const stop = text.slice(20, 27);
  const runtime = new SlowRuntime(FAKE_INFO);
  const engine = new Engine(runtime, tokenizer);
  const other = [9, 8, 7];
  const [a, b] = await Promise.all([
    run(engine, request(PROMPT, 40, { stop: { maxTokens: 40, stop: [stop], ignoreEos: true } })),
    run(engine, request(other, 60, { stop: { maxTokens: 60, ignoreEos: true } })),
  ]);
  assert.equal(a.text, text.slice(0, text.indexOf(stop)));
  assert.equal(a.last.finish?.reason, 'stop');
  // The tokens up to the one completing the stop string, not the one the running step made after it.
  const through = tokens.findIndex((_, i) => tokenizer.decode(tokens.slice(0, i + 1), { skipSpecialTokens: true }).includes(stop)) + 1;
  assert.equal(a.last.finish?.completionTokens, through);
  assert.deepEqual(a.tokens, tokens.slice(0, through));
  // The other request is untouched, and every block comes back.
  assert.deepEqual(b.tokens, expected(60, other));
  assert.equal(engine.stats().kvBlocksUsed, 0);
  // The step running when the stop string was found still carried the request; the one after did not.
  assert.ok(runtime.carried.filter((n) => n === 2).length === through + 1, JSON.stringify(runtime.carried));
});

test('the stop checker holds back a possible stop string until it is clearly not one', () => {
  const c = new StopChecker(['</end>']);
  assert.deepEqual(c.add('hello </e'), { send: 'hello ' });
  assert.deepEqual(c.add('x'), { send: '</ex' });
  assert.deepEqual(c.add('ok </en'), { send: 'ok ' });
  assert.deepEqual(c.add('d> tail'), { send: '', matched: '</end>' });
  const d = new StopChecker(['ab']);
  assert.deepEqual(d.add('xa'), { send: 'x' });
  assert.equal(d.flush(), 'a');
});

test('stop token ids end the request, and their text is not sent', async () => {
  const tokens = expected(30);
  const stopId = tokens[10];
  const engine = new Engine(new FakeRuntime(FAKE_INFO), tokenizer);
  const out = await run(engine, request(PROMPT, 30, { stop: { maxTokens: 30, stopTokenIds: [stopId], ignoreEos: true } }));
  const at = tokens.indexOf(stopId);
  assert.deepEqual(out.tokens, tokens.slice(0, at + 1));
  assert.equal(out.text, tokenizer.decode(tokens.slice(0, at), { skipSpecialTokens: true }));
  assert.deepEqual([out.last.finish?.reason, out.last.finish?.stopReason], ['stop', stopId]);
});

test('EOS ends the request unless ignore_eos', async () => {
  const eos = tokenizer.special.eos[0];
  // Find a prompt whose fake continuation reaches EOS.
  let prompt: number[] = [];
  for (let s = 0; s < 5000 && !expected(200, prompt).includes(eos); s++) prompt = [s % 1000, (s * 7) % 1000];
  const tokens = expected(200, prompt);
  assert.ok(tokens.includes(eos), 'no prompt reaches EOS');
  const engine = new Engine(new FakeRuntime(FAKE_INFO), tokenizer);
  const stopped = await run(engine, request(prompt, 200, { stop: { maxTokens: 200 } }));
  assert.deepEqual(stopped.tokens, tokens.slice(0, tokens.indexOf(eos) + 1));
  assert.equal(stopped.last.finish?.reason, 'stop');
  assert.equal(stopped.last.finish?.stopReason, undefined);
  const ignored = await run(engine, request(prompt, 200, { stop: { maxTokens: 200, ignoreEos: true } }));
  assert.deepEqual(ignored.tokens, tokens);
  assert.equal(ignored.last.finish?.reason, 'length');
});

test('max tokens and the context limit end with length; usage counts tokens', async () => {
  const engine = new Engine(new FakeRuntime({ ...FAKE_INFO, maxPositions: 64 }), tokenizer);
  const capped = await run(engine, request(PROMPT, 7));
  assert.equal(capped.tokens.length, 7);
  assert.deepEqual([capped.last.finish?.reason, capped.last.finish?.promptTokens, capped.last.finish?.completionTokens], ['length', 3, 7]);
  const long = Array.from({ length: 60 }, (_, i) => i + 1);
  const atContext = await run(engine, request(long, 50));
  assert.equal(atContext.tokens.length, 4);
  assert.equal(atContext.last.finish?.reason, 'length');
});

test('logprobs come with each token when asked for', async () => {
  const engine = new Engine(new FakeRuntime(FAKE_INFO), tokenizer);
  const out = await run(engine, request(PROMPT, 3, { sampling: { temperature: 0, logprobs: 0 } }));
  const lps = out.deltas.flatMap((d) => d.logprobs ?? []);
  assert.deepEqual(lps.map((l) => l.token), out.tokens);
  const none = await run(engine, request(PROMPT, 3));
  assert.ok(none.deltas.every((d) => d.logprobs === undefined));
});
