// Logits and greedy continuations against transformers on the same weights.
// Fixtures: test/parity/make_fixtures.py.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Runtime } from '../../native/index.js';
import { blockRange, makeBatch, relativeError } from '../helpers/batch.js';
import { greedyContinuation, logitsAtEveryPosition } from '../helpers/stepping.js';
import { CPU_PARITY_MODELS, loadReference, MODELS_DIR, type ReferencePrompt } from '../helpers/fixtures.js';

const KV_BYTES = 8 * 1024 * 1024;

function rowErrors(ours: Float32Array, ref: Float32Array, vocab: number): number[] {
  const errs: number[] = [];
  for (let i = 0; i < ref.length / vocab; i++)
    errs.push(relativeError(ours.subarray(i * vocab, (i + 1) * vocab), ref.subarray(i * vocab, (i + 1) * vocab)));
  return errs;
}

for (const model of CPU_PARITY_MODELS) {
  describe(`parity with transformers: ${model}`, () => {
    let f32: Runtime;
    let bf16: Runtime;
    let reference: ReferencePrompt[];
    before(async () => {
      reference = loadReference(model);
      f32 = await Runtime.load({ modelDir: join(MODELS_DIR, model), kvCacheBytes: KV_BYTES });
      bf16 = await Runtime.load({ modelDir: join(MODELS_DIR, `${model}-bf16`), kvCacheBytes: KV_BYTES });
    });
    after(async () => {
      await f32.close();
      await bf16.close();
    });

    test('F32 logits at every prompt position are within 1e-4 relative error', async () => {
      for (const p of reference) {
        const errs = rowErrors(await logitsAtEveryPosition(f32, p.tokens), p.logits, f32.info.vocabSize);
        assert.ok(Math.max(...errs) < 1e-4, `worst row error ${Math.max(...errs)}`);
      }
    });

    test('BF16 checkpoint logits are within 2e-2 of transformers in BF16', async () => {
      for (const p of reference) {
        const errs = rowErrors(await logitsAtEveryPosition(bf16, p.tokens), p.logitsBf16, bf16.info.vocabSize);
        assert.ok(Math.max(...errs) < 2e-2, `worst row error ${Math.max(...errs)}`);
      }
    });

    test('greedy continuation of 32 tokens is identical', async () => {
      for (const p of reference) assert.deepEqual(await greedyContinuation(f32, p.tokens, p.greedy.length), p.greedy);
    });
  });
}
