// CudaKnobs.rowGemmPrefetchMiB (0 by default): the few-row GEMM (gemm_rows.cu, decode steps of up to
// 64 tokens) asks its weight rows past the stages it copies before its PDL wait into L2 as well
// (cp.async.bulk.prefetch.L2), a row's share of N MiB. A prefetch moves no value, so a decode token's
// logits must be the same bits with it as without it, alone and beside others, replayed from the
// decode graphs and eager. The prologue copies 14 stages of 128 bytes (1,792 bytes of each row), so
// the rows must be longer than that for the prefetch to run at all: hidden 2,048 and intermediate
// 4,096 (QKV, O and gate/up rows of 2,048 bytes, down's of 4,096). 1,024 MiB prefetches every row
// to its end; 1 MiB a few atoms of some. The tuning lines must show the row GEMM chosen somewhere,
// or the knob would reach no kernel. CudaKnobs.rowGemmNextMiB (0 by default) likewise: QKV, O and
// down ask the next projection's weights into L2 as they run (1 MiB, and 1,024: all of each).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { gpuSkipReason } from '../helpers/gpu.js';
import { ROW_GEMM_AT_ONE, runRowGemmModel } from '../helpers/row-gemm-model.js';

const skip = gpuSkipReason();

test('the row GEMM\'s L2 prefetches (its own weights, the next projection\'s) leave a decode token\'s logits the same bits, alone and beside 20 others', { skip, timeout: 400_000 }, async () => {
  const { decode: plain, info: { gemmTuning: tuning } } = await runRowGemmModel({});
  assert.ok(plain[0].every(Number.isFinite));
  assert.deepEqual(plain[1], plain[0], 'the replayed step');
  assert.deepEqual(plain[2], plain[0], 'beside 20 others');
  assert.ok(/ row-gemm/.test(tuning), `no shape tuned to the row GEMM, so the knob reaches no kernel:\n${tuning}`);
  // rowGemmNextMiB reaches only QKV (3,072 x 2,048), O (2,048 x 2,048) and down (2,048 x 4,096).
  assert.ok(ROW_GEMM_AT_ONE.test(tuning),
    `neither QKV, O nor down tuned to the row GEMM at one token, so rowGemmNextMiB reaches no kernel:\n${tuning}`);
  for (const knobs of [{ rowGemmPrefetchMiB: 1 }, { rowGemmPrefetchMiB: 1024 }, { rowGemmNextMiB: 1 }, { rowGemmNextMiB: 1024 },
    { rowGemmPrefetchMiB: 16, rowGemmNextMiB: 16 }]) {
    const { decode } = await runRowGemmModel(knobs);
    decode.forEach((l, i) => assert.deepEqual(l, plain[i], `${JSON.stringify(knobs)}, step ${i}`));
  }
});
