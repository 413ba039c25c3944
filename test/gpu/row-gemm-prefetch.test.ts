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

import { Runtime } from '../../native/index.js';
import { blockRange, makeBatch } from '../helpers/batch.js';
import { gpuSkipReason } from '../helpers/gpu.js';

const skip = gpuSkipReason();

const CONFIG = {
  architectures: ['LlamaForCausalLM'], vocab_size: 512, hidden_size: 2048, intermediate_size: 4096, num_hidden_layers: 2,
  num_attention_heads: 16, num_key_value_heads: 4, max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 500000,
};

/** A decode token's logits alone (two steps: the second replays the graph the first captured) and beside 20 others. */
async function decodeWith(knobs: { rowGemmPrefetchMiB?: number; rowGemmNextMiB?: number }): Promise<{ logits: number[][]; tuning: string }> {
  const rt = await Runtime.load({ dummy: { config: CONFIG, seed: 5 }, device: 'cuda', dtype: 'fp8', kvCacheBytes: 256 << 20,
    maxNumTokens: 1024, maxNumSeqs: 64, cuda: knobs });
  try {
    assert.equal(rt.info.weightDtype, 'fp8');
    const prompt = Array.from({ length: 150 }, (_, i) => 3 + ((i * 37) % 500));
    const main = { start: 150, tokens: [77], blocks: blockRange(0, 10) };
    await rt.step(makeBatch([{ tokens: prompt, start: 0, blocks: main.blocks }]));
    const others = Array.from({ length: 20 }, (_, k) => ({ tokens: [5 + k], start: 0, blocks: [20 + k] }));
    const out: number[][] = [];
    for (const batch of [[main], [main], [main, ...others]]) {
      const r = await rt.step(makeBatch(batch, true));
      out.push(Array.from(r.logits!.subarray(0, rt.info.vocabSize)));
    }
    return { logits: out, tuning: rt.info.gemmTuning };
  } finally {
    await rt.close();
  }
}

test('the row GEMM\'s L2 prefetches (its own weights, the next projection\'s) leave a decode token\'s logits the same bits, alone and beside 20 others', { skip, timeout: 400_000 }, async () => {
  const { logits: plain, tuning } = await decodeWith({});
  assert.ok(plain[0].every(Number.isFinite));
  assert.deepEqual(plain[1], plain[0], 'the replayed step');
  assert.deepEqual(plain[2], plain[0], 'beside 20 others');
  assert.ok(/ row-gemm/.test(tuning), `no shape tuned to the row GEMM, so the knob reaches no kernel:\n${tuning}`);
  // rowGemmNextMiB reaches only QKV (3,072 x 2,048), O (2,048 x 2,048) and down (2,048 x 4,096).
  assert.ok(/fp8 (3072x2048|2048x2048|2048x4096) at 1 rows -> [^\n]* row-gemm/.test(tuning),
    `neither QKV, O nor down tuned to the row GEMM at one token, so rowGemmNextMiB reaches no kernel:\n${tuning}`);
  for (const knobs of [{ rowGemmPrefetchMiB: 1 }, { rowGemmPrefetchMiB: 1024 }, { rowGemmNextMiB: 1 }, { rowGemmNextMiB: 1024 },
    { rowGemmPrefetchMiB: 16, rowGemmNextMiB: 16 }]) {
    const { logits } = await decodeWith(knobs);
    logits.forEach((l, i) => assert.deepEqual(l, plain[i], `${JSON.stringify(knobs)}, step ${i}`));
  }
});
