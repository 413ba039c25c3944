// The engine with guided sequences on the CPU runtime: the grammar's masks
// hold beside unguided sequences, a complete grammar ends the output even with
// ignore_eos, and a guide that refuses its token ends only its request.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Engine } from '../../engine/engine.js';
import type { TokenGuide } from '../../engine/types.js';
import { GrammarService } from '../../guided/grammar-service.js';
import { Runtime } from '../../native/index.js';
import { collect, request, run, testTokenizer } from '../helpers/engine.js';
import { MODELS_DIR } from '../helpers/fixtures.js';

const tokenizer = testTokenizer();
let rt: Runtime;
let engine: Engine;
let grammars: GrammarService;

before(async () => {
  rt = await Runtime.load({ modelDir: join(MODELS_DIR, 'llama3-scaled'), kvCacheBytes: 4 * 1024 * 1024, maxNumSeqs: 16 });
  engine = new Engine(rt, tokenizer);
  grammars = await GrammarService.create(tokenizer, rt.info.vocabSize);
});
after(async () => {
  await rt.close();
  tokenizer.free();
});

const PATTERN = /^(yes|no) [0-9]{2,4}$/;

test('guided sequences beside unguided ones: each guided output matches, sampled and greedy, and ends on EOS even with ignore_eos', async () => {
  const guided = Array.from({ length: 6 }, async (_, i) => {
    const guide = await grammars.guide({ kind: 'regex', pattern: PATTERN.source.slice(1, -1) });
    const sampling = i % 2 ? { temperature: 1, seed: i } : { temperature: 0 };
    return run(engine, request([5 + i, 17, 40 + i], 50, { sampling, guide }));
  });
  const free = Array.from({ length: 4 }, (_, i) => run(engine, request([9, 8 + i], 20)));
  for (const out of await Promise.all(guided)) {
    assert.equal(out.last.finish?.reason, 'stop', out.text);
    assert.ok(tokenizer.special.eos.includes(out.tokens.at(-1)!));
    assert.match(tokenizer.decode(out.tokens.slice(0, -1)), PATTERN);
  }
  for (const out of await Promise.all(free)) assert.equal(out.tokens.length, 20);
  assert.equal(engine.stats().kvBlocksUsed, 0);
});

test('a guide that refuses its token ends its request with an error; the others finish', async () => {
  let fills = 0;
  const refusing: TokenGuide = {
    fillNextTokenBitmask: (row) => {
      if (++fills > 3) return false;
      row.fill(-1);
      return true;
    },
    advance: () => {},
    dispose: () => {},
  };
  const [bad, good] = await Promise.all([collect(engine.submit(request([3, 4, 5], 30, { guide: refusing }))), run(engine, request([6, 7], 12))]);
  assert.equal(bad.last.finish?.reason, 'error');
  assert.match(bad.last.finish?.error ?? '', /grammar refused/);
  assert.equal(bad.tokens.length, 3);
  assert.equal(good.tokens.length, 12);
  assert.equal(engine.stats().kvBlocksUsed, 0);
});
