// A sequence's logits must not depend on how its prompt is chunked, which
// blocks hold it, the block size, the thread count, or what else is in the batch.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Runtime, type RuntimeOptions } from '../../native/index.js';
import { blockRange, makeBatch, type Chunk } from '../helpers/batch.js';
import { loadReference, MODELS_DIR } from '../helpers/fixtures.js';

const MODEL = join(MODELS_DIR, 'llama3-scaled');
const BLOCKS_NEEDED = 8;

let rt: Runtime;
let prompt: number[];
let others: number[][];

before(async () => {
  rt = await Runtime.load({ modelDir: MODEL, kvCacheBytes: 4 * 1024 * 1024, blockSize: 16 });
  const ref = loadReference('llama3-scaled');
  prompt = [...ref[2].tokens, ...ref[2].greedy, ...ref[1].tokens]; // 62 tokens
  others = [ref[0].tokens.concat(ref[0].greedy), ref[1].tokens];
});
after(() => rt.close());

/** Feeds the prompt in chunks of `size`; returns the logits after the last token. */
async function logitsChunked(r: Runtime, size: number, blocks: number[]): Promise<Float32Array> {
  let logits: Float32Array | undefined;
  for (let i = 0; i < prompt.length; i += size) {
    const res = await r.step(makeBatch([{ tokens: prompt.slice(i, i + size), start: i, blocks }], true));
    logits = res.logits!;
  }
  return logits!;
}

function bitEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

test('prompt processed whole or in chunks of 1, 7 and 16 gives bit-identical logits', async () => {
  const whole = await logitsChunked(rt, prompt.length, blockRange(0, BLOCKS_NEEDED));
  for (const size of [1, 7, 16]) assert.ok(bitEqual(await logitsChunked(rt, size, blockRange(0, BLOCKS_NEEDED)), whole), `chunk ${size}`);
});

test('scattered, out-of-order blocks give the same logits as contiguous ones', async () => {
  const whole = await logitsChunked(rt, prompt.length, blockRange(0, BLOCKS_NEEDED));
  assert.ok(bitEqual(await logitsChunked(rt, 5, [40, 3, 77, 12, 100, 9, 55, 21]), whole));
});

test('interleaved with other sequences in one batch, logits are bit-identical', async () => {
  const V = rt.info.vocabSize;
  const alone = await logitsChunked(rt, prompt.length, blockRange(0, BLOCKS_NEEDED));
  // Two chunks of the prompt, each step shared with other prompts before and after it.
  const split = 30;
  const mine = blockRange(10, BLOCKS_NEEDED);
  const neighbour = (i: number, sample: boolean): Chunk => ({ tokens: others[i], start: 0, blocks: blockRange(30 + 10 * i, 4), sample, temperature: 0.7, seed: 5n });
  await rt.step(makeBatch([neighbour(0, true), { tokens: prompt.slice(0, split), start: 0, blocks: mine, sample: false }, neighbour(1, false)], true));
  const res = await rt.step(
    makeBatch([neighbour(1, true), { tokens: prompt.slice(split), start: split, blocks: mine }, { tokens: [others[0][0]], start: 0, blocks: [60] }], true),
  );
  assert.ok(bitEqual(res.logits!.subarray(V, 2 * V), alone));
  assert.equal(res.tokens.length, 3);
});

test('a chunk that does not end its sequence samples nothing', async () => {
  const res = await rt.step(makeBatch([{ tokens: prompt.slice(0, 10), start: 0, blocks: [0], sample: false }]));
  assert.equal(res.tokens[0], -1);
  assert.ok(Number.isNaN(res.logprobs[0]));
});

async function logitsWith(options: Partial<RuntimeOptions>): Promise<Float32Array> {
  const other = await Runtime.load({ modelDir: MODEL, kvCacheBytes: 4 * 1024 * 1024, ...options });
  try {
    const blocks = blockRange(0, Math.ceil(prompt.length / other.info.blockSize));
    return await logitsChunked(other, 13, blocks);
  } finally {
    await other.close();
  }
}

test('thread count and block size do not change a single bit', async () => {
  const reference = await logitsChunked(rt, 13, blockRange(0, BLOCKS_NEEDED));
  assert.ok(bitEqual(await logitsWith({ threads: 1 }), reference), 'threads 1');
  assert.ok(bitEqual(await logitsWith({ threads: 3 }), reference), 'threads 3');
  assert.ok(bitEqual(await logitsWith({ blockSize: 4 }), reference), 'block size 4');
  assert.ok(bitEqual(await logitsWith({ blockSize: 64 }), reference), 'block size 64');
});
