// The embedded default model (models/tiny-shakespeare): it loads, its
// tokenizer and the runtime reproduce what transformers computed when it was
// trained (models/train_default_model.py wrote training.json).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { Engine } from '../../engine/engine.js';
import { Runtime } from '../../native/index.js';
import { loadTokenizer } from '../../tokenizers/tokenizer.js';
import { request, run } from '../helpers/engine.js';

const training = JSON.parse(readFileSync(join(DEFAULT_MODEL_DIR, 'training.json'), 'utf8'));

test('the greedy continuation matches transformers on the same weights', async () => {
  const rt = await Runtime.load({ modelDir: DEFAULT_MODEL_DIR, kvCacheBytes: 16 << 20 });
  const tok = loadTokenizer(DEFAULT_MODEL_DIR);
  try {
    assert.deepEqual(tok.encode('ROMEO:\nBut soft, what light'), training.reference_prompt);
    const engine = new Engine(rt, tok);
    const n = training.reference_greedy.length;
    const out = await run(engine, request(training.reference_prompt, n, { stop: { maxTokens: n, ignoreEos: true } }));
    assert.deepEqual(out.tokens, training.reference_greedy);
    assert.equal(tok.decode([...training.reference_prompt, ...out.tokens], { skipSpecialTokens: false }), training.reference_text);
  } finally {
    await rt.close();
    tok.free();
  }
});
