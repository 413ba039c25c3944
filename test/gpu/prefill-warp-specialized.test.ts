// The warp-specialized Hopper prefill kernel (attention_prefill_sm90_ws.cu, the knob
// warpSpecializedPrefill) computes what attention_prefill_sm90.cu computes, to the bit: the same
// tiles, softmax and order of arithmetic, with a producer warpgroup staging the tiles instead of
// every warp. Prompts of 1-300 tokens (one to five 64-position tiles, query tiles cut mid-prompt),
// a prompt continued in chunks after cached context (helpers/prefill-steps.ts), at head_dim 64 (the
// default model) and 128, on every cache type. The kernel is persistent (a block walks its
// (query tile, KV head) items in turn, the K/V ring running on across them): these steps have fewer
// items than the H200 has SMs, so it also runs with CudaKnobs.prefillBlocks 3, where each block
// takes many items (short and long, the last round's partly empty). A producer/consumer hand-over
// that deadlocks fails the test's timeout.
import { describe, test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import type { RuntimeOptions } from '../../native/index.js';
import { gpuSkipReason } from '../helpers/gpu.js';
import { HEAD_DIM_128, assertSameLogits, prefillLogitsByKnobs } from '../helpers/prefill-steps.js';

const skip = gpuSkipReason();
const SOURCES: Array<{ name: string; source: Partial<RuntimeOptions> }> = [
  { name: 'default model (head_dim 64)', source: { modelDir: DEFAULT_MODEL_DIR } },
  { name: 'head_dim 128', source: { dummy: { config: HEAD_DIM_128, seed: 3 } } },
];

for (const { name, source } of SOURCES)
  for (const kvCacheDtype of ['auto', 'fp8', 'int8'] as const)
    describe(`warp-specialized prefill kernel (${name}, KV ${kvCacheDtype})`, { skip }, () => {
      test('gives attention_prefill_sm90.cu\'s logits to the bit', { timeout: 120_000 }, async () => {
        assertSameLogits(await prefillLogitsByKnobs(source, kvCacheDtype, [{ warpSpecializedPrefill: false }, { warpSpecializedPrefill: true },
          { warpSpecializedPrefill: true, prefillBlocks: 3 }]));
      });
    });
