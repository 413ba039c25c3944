// CudaKnobs.weightRowPad (0 by default): each FP8 projection's weight rows lie K + N bytes apart on
// the device, and cuBLASLt (its leading dimension) and the row GEMM (its stride) read them so. The
// products are the same, so a prompt's last logits (150 rows: cuBLASLt) and a decode token's (one
// row: the row GEMM, alone, replayed from its graph, and beside 20 others) must be the same bits
// padded as packed, with the row GEMM's next-weights prefetch too (it reads the padded rows' stride).
// Two ways a broken stride could hide behind equal bits are closed: the padding must be there (the
// projections' bytes on the device grow by the pad of each of their 15,360 rows a layer), and the
// row GEMM must still be chosen at one token (tuning compares it with cuBLASLt on the padded weights
// and drops it where the bits differ).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Runtime } from '../../native/index.js';
import { gpuSkipReason } from '../helpers/gpu.js';
import { ROW_GEMM_AT_ONE, ROW_GEMM_CONFIG, runRowGemmModel } from '../helpers/row-gemm-model.js';

const skip = gpuSkipReason();

const ROWS = 2 * (3072 + 2048 + 8192 + 2048);  // QKV, O, gate/up and down rows of both layers
const PACKED_BYTES = 2 * (3072 * 2048 + 2048 * 2048 + 8192 * 2048 + 2048 * 4096);  // their E4M3 bytes

/** The prompt's last logits, then the decode token's (alone, replayed, beside 20 others), the projections' bytes and the tuning. */
async function logitsWith(knobs: { weightRowPad?: number; rowGemmNextMiB?: number }): Promise<{ logits: number[][]; bytes: number; tuning: string }> {
  const run = await runRowGemmModel(knobs);
  return { logits: [run.prompt, ...run.decode], bytes: run.info.projectionWeightBytes, tuning: run.info.gemmTuning };
}

test('FP8 weight rows padded past K give the same logits bits as packed rows, through cuBLASLt and the row GEMM', { skip, timeout: 300_000 }, async () => {
  const plain = await logitsWith({});
  assert.ok(plain.logits.every((l) => l.every(Number.isFinite)));
  assert.equal(plain.bytes, PACKED_BYTES);
  assert.ok(ROW_GEMM_AT_ONE.test(plain.tuning), `neither QKV, O nor down tuned to the row GEMM at one token:\n${plain.tuning}`);
  for (const knobs of [{ weightRowPad: 256 }, { weightRowPad: 128, rowGemmNextMiB: 16 }]) {
    const padded = await logitsWith(knobs);
    const what = JSON.stringify(knobs);
    assert.equal(padded.bytes, PACKED_BYTES + ROWS * knobs.weightRowPad, `${what}: the padded rows' bytes`);
    assert.ok(ROW_GEMM_AT_ONE.test(padded.tuning), `${what}: the row GEMM not chosen at one token:\n${padded.tuning}`);
    assert.ok(!/differs from cuBLASLt/.test(padded.tuning), `${what}: the row GEMM's bits differ on padded rows:\n${padded.tuning}`);
    padded.logits.forEach((l, i) => assert.deepEqual(l, plain.logits[i], `${what}, step ${i}`));
  }
});

test('weightRowPad takes whole 128-byte lines', { skip }, async () => {
  await assert.rejects(Runtime.load({ dummy: { config: ROW_GEMM_CONFIG, seed: 5 }, device: 'cuda', dtype: 'fp8', kvCacheBytes: 64 << 20,
    maxNumTokens: 256, maxNumSeqs: 8, cuda: { weightRowPad: 16 } }), /weightRowPad must be a multiple of 128/);
});
