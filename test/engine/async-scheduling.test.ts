// Async scheduling: the engine launches step N + 1 before step N's result is in,
// feeding its decode tokens from step N's samples. Every request must come out
// exactly as with one step at a time: tokens, text, stop rules, preemption,
// cancellation and runtime errors, and every KV block must come back.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Engine, type EngineConfig } from '../../engine/engine.js';
import type { EngineRequest } from '../../engine/types.js';
import { collect, request, run, testTokenizer, type Collected } from '../helpers/engine.js';
import { FAKE_INFO, FakeRuntime } from '../helpers/fake-runtime.js';

const tokenizer = testTokenizer();
const prompt = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => (seed * 97 + i * 13) % 1000);

/** A device that runs one step at a time, ms each, in launch order: a step's result (or failure) comes after the next is launched. */
class SerialRuntime extends FakeRuntime {
  private busy: Promise<unknown> = Promise.resolve();
  constructor(info: typeof FAKE_INFO, options: { pipelined?: boolean }, private readonly ms: number) {
    super(info, options);
  }
  override step(b: Parameters<FakeRuntime['step']>[0]) {
    // A refused batch never reaches the device: it rejects at once, as Runtime.step does.
    if (this.refuseNextStep) return super.step(b);
    const result = super.step(b);
    result.catch(() => undefined); // handled by whoever awaits done
    const done = this.busy.then(() => new Promise((r) => setTimeout(r, this.ms))).then(() => result);
    this.busy = done.catch(() => undefined);
    return done;
  }
}

/** The requests through a one-step-at-a-time engine and a pipelined one; both runtimes and outputs. */
async function bothWays(requests: () => EngineRequest[], info = FAKE_INFO, config: EngineConfig = {}) {
  const go = async (pipelined: boolean) => {
    const rt = new FakeRuntime(info, { pipelined });
    const engine = new Engine(rt, tokenizer, config);
    const outs = await Promise.all(requests().map((r) => run(engine, r)));
    assert.equal(engine.stats().kvBlocksUsed, 0, 'every block comes back');
    return { rt, engine, outs };
  };
  return { sync: await go(false), pipelined: await go(true) };
}

const summary = (o: Collected) => ({ tokens: o.tokens, text: o.text, finish: o.last.finish?.reason, stopReason: o.last.finish?.stopReason, completion: o.last.finish?.completionTokens });

test('requests of every length come out as one step at a time gives them, and steps were fed', async () => {
  const { sync, pipelined } = await bothWays(() => Array.from({ length: 24 }, (_, i) => request(prompt(5 + 11 * i, i), 1 + ((i * 7) % 30))), FAKE_INFO, { maxNumBatchedTokens: 64, maxNumSeqs: 8 });
  assert.deepEqual(pipelined.outs.map(summary), sync.outs.map(summary));
  assert.ok(pipelined.rt.steps.filter((s) => s.fed > 0).length > 20, 'decode tokens were fed by the runtime');
  assert.equal(sync.rt.steps.filter((s) => s.fed > 0).length, 0);
  for (const s of pipelined.rt.steps) assert.ok(s.numTokens <= 64 && s.queryLens.length <= 8);
});

test('stop strings, stop token ids and max tokens end requests where they would; the extra step carrying them is dropped', async () => {
  const tokens = FakeRuntime.expected([5, 77, 300], 40, 1000);
  const text = tokenizer.decode(tokens, { skipSpecialTokens: true });
  const reqs = () => [
    request([5, 77, 300], 40, { stop: { maxTokens: 40, stop: [text.slice(20, 27)], ignoreEos: true } }),
    request([5, 77, 300], 40, { stop: { maxTokens: 40, stopTokenIds: [tokens[9]], ignoreEos: true } }),
    request([5, 77, 300], 40, { stop: { maxTokens: 40, stopTokenIds: [tokens[9]], includeStopStr: true, ignoreEos: true } }),
    request(prompt(30, 3), 17),
    request(prompt(3, 4), 1),
  ];
  const { sync, pipelined } = await bothWays(reqs);
  assert.deepEqual(pipelined.outs.map(summary), sync.outs.map(summary));
  assert.equal(pipelined.outs[0].last.finish?.reason, 'stop');
  assert.equal(pipelined.outs[1].last.finish?.stopReason, tokens[9]);
  assert.deepEqual(pipelined.outs[3].tokens, FakeRuntime.expected(prompt(30, 3), 17, 1000));
});

test('min_tokens bans cover the same sampled tokens when the last token is still pending', async () => {
  const reqs = () => [request([5, 77, 300], 12, { stop: { maxTokens: 12, minTokens: 5, stopTokenIds: [3], ignoreEos: true } })];
  const { sync, pipelined } = await bothWays(reqs);
  const banned = (rt: FakeRuntime) => rt.steps.filter((s) => s.biases > 0).length;
  assert.equal(banned(sync.rt), 5);
  assert.equal(banned(pipelined.rt), 5);
});

test('when KV blocks run short the engine preempts (after the step on the runtime is in) and every output is unchanged', async () => {
  const reqs = () => Array.from({ length: 8 }, (_, i) => request(prompt(20, i), 60));
  const { sync, pipelined } = await bothWays(reqs, { ...FAKE_INFO, numBlocks: 24 }, { maxNumBatchedTokens: 256 });
  assert.ok(pipelined.engine.stats().preemptions > 0, 'the pool was meant to be too small');
  assert.deepEqual(pipelined.outs.map((o) => o.tokens), sync.outs.map((o) => o.tokens));
  pipelined.outs.forEach((o, i) => assert.deepEqual(o.tokens, FakeRuntime.expected(prompt(20, i), 60, 1000)));
});

test('a runtime error fails that step and the fed step behind it; later requests run, and blocks come back', async () => {
  const rt = new FakeRuntime(FAKE_INFO, { pipelined: true });
  const engine = new Engine(rt, tokenizer);
  const victim = engine.submit(request(prompt(5), 30));
  const it = victim[Symbol.asyncIterator]();
  await it.next();
  await it.next();
  rt.failNextStep = new Error('device lost');
  const rest = await collect({ [Symbol.asyncIterator]: () => it });
  assert.equal(rest.last.finish?.reason, 'error');
  assert.match(rest.last.finish?.error ?? '', /device lost/);
  const ok = await run(engine, request(prompt(5), 3));
  assert.deepEqual(ok.tokens, FakeRuntime.expected(prompt(5), 3, 1000));
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('a consumer that stops mid-stream cancels its request with two steps in flight; its blocks come back', async () => {
  const rt = new FakeRuntime(FAKE_INFO, { pipelined: true });
  const engine = new Engine(rt, tokenizer);
  const other = run(engine, request(prompt(9, 2), 40));
  const stream = engine.submit(request(prompt(40), 1000));
  let n = 0;
  for await (const d of stream) if (++n === 5 || d.finish) break;
  assert.deepEqual((await other).tokens, FakeRuntime.expected(prompt(9, 2), 40, 1000));
  await engine.idle();
  assert.equal(engine.stats().kvBlocksUsed, 0);
  assert.equal(engine.stats().running, 0);
});

test('asyncScheduling: false runs one step at a time on a pipelined runtime', async () => {
  const rt = new FakeRuntime(FAKE_INFO, { pipelined: true });
  const out = await run(new Engine(rt, tokenizer, { asyncScheduling: false }), request(prompt(5), 10));
  assert.deepEqual(out.tokens, FakeRuntime.expected(prompt(5), 10, 1000));
  assert.equal(rt.steps.filter((s) => s.fed > 0).length, 0);
});

test("a step's runtime time (the step metrics) counts from its launch or the previous result, so steps launched ahead are not counted twice", async () => {
  const engine = new Engine(new SerialRuntime(FAKE_INFO, { pipelined: true }, 4), tokenizer);
  let counted = 0;
  let steps = 0;
  engine.onStep = (ms) => {
    counted += ms;
    steps++;
  };
  const start = performance.now();
  await run(engine, request(prompt(5), 30));
  const wall = performance.now() - start;
  assert.ok(steps >= 30);
  assert.ok(counted <= wall * 1.1, `steps counted ${counted.toFixed(1)} ms of ${wall.toFixed(1)} ms`);
  assert.ok(counted >= steps * 3.5, `each step took at least its 4 ms: ${counted.toFixed(1)} ms for ${steps}`);
});

/** Submits a new request at every step while stepping, so each step admits one; steps fail or are refused on cue. */
async function steadyArrivals(trouble: 'fail' | 'refuse', pipelined: boolean) {
  const rt = new SerialRuntime(FAKE_INFO, { pipelined }, 1);
  const engine = new Engine(rt, tokenizer);
  const runs: Promise<Collected>[] = [];
  const original = rt.step.bind(rt);
  let n = 0;
  rt.step = (b) => {
    n++;
    if (n === 10) rt[trouble === 'fail' ? 'failNextStep' : 'refuseNextStep'] = new Error('device trouble');
    if (runs.length < 40) runs.push(run(engine, request(prompt(4 + (runs.length % 7), runs.length), 12)));
    return original(b);
  };
  runs.push(run(engine, request(prompt(5), 12)));
  await engine.idle();
  const outs = await Promise.all(runs);
  assert.equal(engine.stats().kvBlocksUsed, 0);
  return outs;
}

test('a failed or refused step fails its own requests only: new requests in the fed step behind it, and every later one, run', async () => {
  for (const trouble of ['fail', 'refuse'] as const) {
    const sync = await steadyArrivals(trouble, false);
    const pipelined = await steadyArrivals(trouble, true);
    const failed = (outs: Collected[]) => outs.filter((o) => o.last.finish?.reason === 'error').length;
    assert.ok(failed(sync) > 0 && failed(sync) <= 10, `${trouble}, one step at a time: ${failed(sync)} failed`);
    // The failing step carried at most 10 running requests (one admitted a step, 12 tokens each).
    assert.ok(failed(pipelined) > 0 && failed(pipelined) <= 12, `${trouble}, pipelined: ${failed(pipelined)} of ${pipelined.length} failed`);
    for (const [i, o] of pipelined.entries())
      if (o.last.finish?.reason !== 'error') assert.equal(o.tokens.length, 12, `request ${i}`);
  }
});
