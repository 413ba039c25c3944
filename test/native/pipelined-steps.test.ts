// Async scheduling at the runtime: step N + 1 launched before step N's result
// is in, its decode tokens fed from step N's samples, gives the tokens that
// stepping one at a time gives; misuse is a clear error, not a wrong token.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Runtime } from '../../native/index.js';
import { makeBatch } from '../helpers/batch.js';
import { loadReference, MODELS_DIR } from '../helpers/fixtures.js';
import { decodeBothWays } from '../helpers/pipelined.js';

let rt: Runtime;
let prompts: [number[], number[]];

before(async () => {
  rt = await Runtime.load({ modelDir: join(MODELS_DIR, 'llama3-scaled'), kvCacheBytes: 8 << 20, blockSize: 16 });
  const ref = loadReference('llama3-scaled');
  prompts = [ref[0].tokens, ref[1].tokens];
});
after(() => rt.close());

test('pipelined steps with fed tokens give the tokens of one step at a time (greedy and seeded sampling)', async () => {
  const greedy = await decodeBothWays(rt, prompts, 6);
  assert.deepEqual(greedy.fed, greedy.known);
  const ref = loadReference('llama3-scaled');
  assert.deepEqual(greedy.known[0], ref[0].greedy.slice(0, 6), 'the greedy tokens are transformers');
  const sampled = await decodeBothWays(rt, prompts, 6, { temperature: 0.9, topK: 20 });
  assert.deepEqual(sampled.fed, sampled.known);
});

test('a feed into a sequence the previous step did not sample, or past its sequences, is an error', async () => {
  const one = { tokens: prompts[0], start: 0, blocks: [0, 1, 2] };
  // The previous step's only sequence does not sample.
  const first = rt.step(makeBatch([{ ...one, sample: false }]));
  const bad = makeBatch([{ tokens: [0], start: prompts[0].length, blocks: [0, 1, 2] }]);
  bad.feed = Int32Array.from([0]);
  await assert.rejects(rt.step(bad), /did not sample|does not sample/);
  await first;
  // A feed index past the previous step's sequences.
  const c = rt.step(makeBatch([one]));
  const past = makeBatch([{ tokens: [0], start: prompts[0].length, blocks: [0, 1, 2] }]);
  past.feed = Int32Array.from([3]);
  await assert.rejects(rt.step(past), /did not sample|does not sample/);
  await c;
  // The runtime still steps normally afterwards.
  const r = await rt.step(makeBatch([one]));
  assert.ok(r.tokens[0] >= 0);
});
