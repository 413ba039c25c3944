// The engine over the real CPU runtime and a fixture model: batched,
// preempted and prefix-cached requests produce exactly what each produces alone.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Engine, type EngineConfig } from '../../engine/engine.js';
import { Runtime } from '../../native/index.js';
import { collect, request, run, testTokenizer } from '../helpers/engine.js';
import { MODELS_DIR } from '../helpers/fixtures.js';

const MODEL = join(MODELS_DIR, 'llama3-scaled');
const BYTES_PER_BLOCK = 2 * 3 * 2 * 16 * 16 * 4; // K and V, 3 layers, 2 KV heads, head_dim 16, 16 tokens, float32
const tokenizer = testTokenizer();

let rng = 12345;
const rand = (n: number) => {
  rng = (Math.imul(rng, 1103515245) + 12345) >>> 0;
  return rng % n;
};
const prompts = Array.from({ length: 16 }, () => Array.from({ length: 5 + rand(56) }, () => 3 + rand(397)));
const MAX_TOKENS = 24;

let solo: number[][];
before(async () => {
  const rt = await Runtime.load({ modelDir: MODEL, kvCacheBytes: 64 * BYTES_PER_BLOCK });
  const engine = new Engine(rt, tokenizer, { enablePrefixCache: false });
  solo = [];
  for (const p of prompts) solo.push((await run(engine, request(p, MAX_TOKENS, { stop: { maxTokens: MAX_TOKENS } }))).tokens);
  await rt.close();
});
after(() => tokenizer.free());

async function withEngine<T>(kvBlocks: number, config: EngineConfig, body: (e: Engine) => Promise<T>): Promise<T> {
  const rt = await Runtime.load({ modelDir: MODEL, kvCacheBytes: kvBlocks * BYTES_PER_BLOCK, maxNumTokens: 256, maxNumSeqs: 16 });
  try {
    return await body(new Engine(rt, tokenizer, config));
  } finally {
    await rt.close();
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('16 requests submitted at staggered times give exactly their solo tokens', async () => {
  await withEngine(128, { maxNumBatchedTokens: 64 }, async (engine) => {
    const outs = await Promise.all(prompts.map(async (p, i) => {
      await delay(3 * i);
      return run(engine, request(p, MAX_TOKENS, { stop: { maxTokens: MAX_TOKENS } }));
    }));
    outs.forEach((o, i) => assert.deepEqual(o.tokens, solo[i], `request ${i}`));
    assert.ok(engine.stats().steps < prompts.length * MAX_TOKENS, 'requests shared steps');
    assert.equal(engine.stats().kvBlocksUsed, 0);
  });
});

test('with a KV pool so small that preemption happens, outputs are unchanged', async () => {
  await withEngine(12, {}, async (engine) => {
    const outs = await Promise.all(prompts.map((p) => run(engine, request(p, MAX_TOKENS, { stop: { maxTokens: MAX_TOKENS } }))));
    assert.ok(engine.stats().preemptions > 0, 'expected preemptions');
    outs.forEach((o, i) => assert.deepEqual(o.tokens, solo[i], `request ${i}`));
    assert.equal(engine.stats().kvBlocksUsed, 0);
  });
});

test('shared prompt prefixes are served from the prefix cache and outputs are unchanged', async () => {
  const prefix = prompts[0].concat(prompts[1]).concat(prompts[2]).slice(0, 48);
  const shared = prompts.slice(3, 11).map((p) => prefix.concat(p.slice(0, 10)));
  const rt = await Runtime.load({ modelDir: MODEL, kvCacheBytes: 64 * BYTES_PER_BLOCK });
  const reference: number[][] = [];
  const plain = new Engine(rt, tokenizer, { enablePrefixCache: false });
  for (const p of shared) reference.push((await run(plain, request(p, 16, { stop: { maxTokens: 16 } }))).tokens);
  await rt.close();
  await withEngine(128, {}, async (engine) => {
    const first = await run(engine, request(shared[0], 16, { stop: { maxTokens: 16 } }));
    const rest = await Promise.all(shared.slice(1).map((p) => run(engine, request(p, 16, { stop: { maxTokens: 16 } }))));
    [first, ...rest].forEach((o, i) => assert.deepEqual(o.tokens, reference[i], `request ${i}`));
    assert.equal(engine.stats().prefixCacheHitTokens, 48 * rest.length);
    assert.deepEqual(rest.map((o) => o.last.finish?.cachedPromptTokens), rest.map(() => 48));
  });
});

test("a cancelled request's blocks are all back in the pool at the next step", async () => {
  await withEngine(128, {}, async (engine) => {
    const other = engine.submit(request(prompts[1], 200, { stop: { maxTokens: 200, ignoreEos: true } }));
    const victim = engine.submit(request(prompts[0], 200, { stop: { maxTokens: 200, ignoreEos: true } }));
    let otherReceived = 0;
    let wake: () => void = () => {};
    const otherDone = (async () => {
      for await (const d of other) {
        otherReceived += d.tokenIds.length;
        wake();
      }
    })();
    const otherGets = (n: number) => new Promise<void>((r) => (wake = () => otherReceived >= n && r()));
    let received = 0;
    for await (const d of victim) {
      received += d.tokenIds.length;
      if (received === 5) break; // stops iterating: cancels
    }
    // Two more steps for the other request: the cancelled one's step (if in flight) and the next.
    await otherGets(otherReceived + 2);
    const used = engine.stats().kvBlocksUsed;
    assert.ok(used <= Math.ceil((prompts[1].length + otherReceived + 1) / 16), `${used} blocks used`);
    engine.cancel('nonexistent');
    await otherDone;
    assert.equal(engine.stats().kvBlocksUsed, 0);
  });
});
