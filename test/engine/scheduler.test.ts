// The step loop against a fake runtime: budgets, chunked prefill, decode
// priority, preemption and resume.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Engine } from '../../engine/engine.js';
import { collect, request, run, testTokenizer } from '../helpers/engine.js';
import { FAKE_INFO, FakeRuntime } from '../helpers/fake-runtime.js';

const tokenizer = testTokenizer();
const prompt = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => (seed * 97 + i * 13) % 1000);

test('every step stays within the token and sequence budgets', async () => {
  const rt = new FakeRuntime(FAKE_INFO);
  const engine = new Engine(rt, tokenizer, { maxNumBatchedTokens: 64, maxNumSeqs: 8 });
  const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => run(engine, request(prompt(10 + 7 * i, i), 12))));
  for (const s of rt.steps) {
    assert.ok(s.numTokens <= 64, `step of ${s.numTokens} tokens`);
    assert.ok(s.queryLens.length <= 8, `step of ${s.queryLens.length} sequences`);
  }
  outs.forEach((o, i) => assert.deepEqual(o.tokens, FakeRuntime.expected(prompt(10 + 7 * i, i), 12, 1000)));
});

test('a long prompt is split into chunks of the configured size', async () => {
  const rt = new FakeRuntime(FAKE_INFO);
  const engine = new Engine(rt, tokenizer, { maxNumBatchedTokens: 256, maxPrefillChunk: 32 });
  await run(engine, request(prompt(100), 2));
  assert.deepEqual(rt.steps.map((s) => s.queryLens[0]), [32, 32, 32, 4, 1]);
  assert.deepEqual(rt.steps.map((s) => s.sample[0]), [0, 0, 0, 1, 1]);
});

test('decodes are never starved behind a long prompt', async () => {
  const rt = new FakeRuntime(FAKE_INFO);
  const engine = new Engine(rt, tokenizer, { maxNumBatchedTokens: 48 });
  const decoder = engine.submit(request(prompt(5), 40));
  const it = decoder[Symbol.asyncIterator]();
  await it.next(); // the short request is decoding now
  const stepsBefore = rt.steps.length;
  const long = run(engine, request(prompt(1000, 2), 1));
  const rest = collect({ [Symbol.asyncIterator]: () => it });
  await Promise.all([long, rest]);
  // While the long prompt was prefilled (1000 tokens at 48 per step), the decoder got a token every step.
  const during = rt.steps.slice(stepsBefore).filter((s) => s.queryLens.length === 2);
  assert.ok(during.length >= 20);
  for (const s of during) assert.equal(s.queryLens[0], 1, 'decode first, one token');
  for (const s of during.slice(0, -1)) assert.equal(s.numTokens, 48, 'the prompt takes the rest of the budget');
});

test('when blocks run out the newest sequence is preempted, and every output is unchanged', async () => {
  // 24 blocks of 16 tokens; 8 requests that each grow to 5 blocks.
  const rt = new FakeRuntime({ ...FAKE_INFO, numBlocks: 24 });
  const engine = new Engine(rt, tokenizer, { maxNumBatchedTokens: 256 });
  const outs = await Promise.all(Array.from({ length: 8 }, (_, i) => run(engine, request(prompt(20, i), 60))));
  assert.ok(engine.stats().preemptions > 0, 'the pool was meant to be too small');
  outs.forEach((o, i) => assert.deepEqual(o.tokens, FakeRuntime.expected(prompt(20, i), 60, 1000)));
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('a request that cannot fit even alone is refused up front', () => {
  const engine = new Engine(new FakeRuntime({ ...FAKE_INFO, numBlocks: 4 }), tokenizer);
  assert.throws(() => engine.submit(request(prompt(40), 40)), { code: 'kv_cache_too_small', message: /needs 5 KV blocks \(80 tokens\) but the cache holds 4/ });
  assert.throws(() => engine.submit(request(prompt(4096), 1)), { code: 'prompt_too_long' });
  assert.throws(() => engine.submit(request([], 1)), { code: 'bad_request' });
  assert.throws(() => engine.submit(request([5000], 1)), { code: 'bad_request', message: /outside the vocabulary/ });
});

test('a full queue refuses new requests', async () => {
  const engine = new Engine(new FakeRuntime(FAKE_INFO), tokenizer, { maxWaiting: 2, maxNumSeqs: 1 });
  const a = engine.submit(request(prompt(5), 3)); // both wait for the first step, a turn of the event loop away
  const b = engine.submit(request(prompt(5), 3));
  assert.equal(engine.stats().waiting, 2);
  assert.throws(() => engine.submit(request(prompt(5), 3)), { code: 'queue_full' });
  await Promise.all([collect(a), collect(b)]);
});

test('a runtime error fails the requests of that step, frees them, and the loop carries on', async () => {
  const rt = new FakeRuntime(FAKE_INFO);
  const engine = new Engine(rt, tokenizer);
  rt.failNextStep = new Error('device lost');
  const failed = await run(engine, request(prompt(5), 3));
  assert.equal(failed.last.finish?.reason, 'error');
  assert.match(failed.last.finish?.error ?? '', /device lost/);
  const ok = await run(engine, request(prompt(5), 3));
  assert.equal(ok.last.finish?.reason, 'length');
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('a consumer that stops iterating cancels its request and frees its blocks', async () => {
  const engine = new Engine(new FakeRuntime(FAKE_INFO), tokenizer);
  const stream = engine.submit(request(prompt(40), 1000));
  for await (const d of stream) {
    assert.equal(d.tokenIds.length, 1);
    break;
  }
  await engine.idle();
  assert.equal(engine.stats().kvBlocksUsed, 0);
  assert.equal(engine.stats().running, 0);
});

test('while decodes run, a step carries at most the prefill budget of prompt tokens; alone, a prompt takes the whole step', async () => {
  const rt = new FakeRuntime(FAKE_INFO);
  const engine = new Engine(rt, tokenizer, { maxNumBatchedTokens: 256, maxPrefillTokensWithDecodes: 40 });
  const decoders = [0, 1, 2].map((i) => engine.submit(request(prompt(5, i), 60)));
  const its = decoders.map((d) => d[Symbol.asyncIterator]());
  await Promise.all(its.map((it) => it.next())); // three requests decoding now
  const stepsBefore = rt.steps.length;
  const longs = [run(engine, request(prompt(300, 7), 2)), run(engine, request(prompt(90, 8), 2))];
  await Promise.all([...longs, ...its.map((it) => collect({ [Symbol.asyncIterator]: () => it }))]);
  const withDecodes = rt.steps.slice(stepsBefore).filter((s) => s.sample.some((x, k) => x === 1 && s.queryLens[k] === 1));
  assert.ok(withDecodes.length > 5);
  for (const s of withDecodes) {
    const prefill = s.queryLens.filter((q) => q > 1).reduce((a, b) => a + b, 0);
    assert.ok(prefill <= 40, `a step with decodes carried ${prefill} prompt tokens`);
  }
  // With nothing decoding, one prompt fills the step budget.
  const alone = new FakeRuntime(FAKE_INFO);
  await run(new Engine(alone, tokenizer, { maxNumBatchedTokens: 256, maxPrefillTokensWithDecodes: 40 }), request(prompt(300, 9), 1));
  assert.equal(alone.steps[0].numTokens, 256);
});

test('a request submitted the moment the last one finishes still runs (the loop was winding down)', async () => {
  const engine = new Engine(new FakeRuntime(FAKE_INFO), tokenizer);
  let second: Promise<unknown> | null = null;
  for await (const d of engine.submit(request(prompt(5), 2))) if (d.finish) second = run(engine, request(prompt(6), 2));
  const out = (await Promise.race([second!, new Promise((r) => setTimeout(() => r('stranded'), 2000))])) as { last: { finish?: { reason: string } } } | string;
  assert.notEqual(out, 'stranded');
  assert.equal((out as { last: { finish?: { reason: string } } }).last.finish?.reason, 'length');
});
