// The batch-1 bound's numerator (bench/RESULTS.md quotes it as 8.0 GB for Llama-3-8B FP8).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { weightBytesPerToken } from '../../bench/weight-bytes.js';
import { DUMMY_SHAPES } from '../../native/dummy-shapes.js';

test('Llama-3-8B reads 8.04 GB per token in FP8 (BF16 LM head) and 16.06 GB in BF16', () => {
  // 32 x (6144x4096 + 4096x4096 + 28672x4096 + 4096x14336) weights, 32 x 43,008 scales, 65 norms, 128256x4096 LM head.
  assert.equal(weightBytesPerToken(DUMMY_SHAPES['llama-3-8b'], 'fp8'), 6_979_321_856 + 5_505_024 + 1_064_960 + 1_050_673_152);
  assert.equal(weightBytesPerToken(DUMMY_SHAPES['llama-3-8b'], 'bf16'), 2 * 6_979_321_856 + 1_064_960 + 1_050_673_152);
});

test('without GQA the QKV projection is three square matrices', () => {
  const fp8 = weightBytesPerToken(DUMMY_SHAPES['llama-2-7b'], 'fp8');
  const perLayer = 3 * 4096 * 4096 + 4096 * 4096 + 2 * 11008 * 4096 + 4096 * 11008 + 4 * (3 * 4096 + 4096 + 2 * 11008 + 4096);
  assert.equal(fp8, 32 * perLayer + 65 * 4096 * 4 + 2 * 32000 * 4096);
});
