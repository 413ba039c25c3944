// The warp-specialized Hopper prefill kernel (attention_prefill_sm90_ws.cu, the knob
// warpSpecializedPrefill) computes what attention_prefill_sm90.cu computes, to the bit: the same
// tiles, softmax and order of arithmetic, with a producer warpgroup staging the tiles instead of
// every warp. Prompts of 1-300 tokens (one to five 64-position tiles, query tiles cut mid-prompt),
// a prompt continued in chunks after cached context, at head_dim 64 (the default model) and 128, on
// every cache type. A producer/consumer hand-over that deadlocks fails the test's timeout.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { Runtime, type RuntimeOptions } from '../../native/index.js';
import { blockRange, makeBatch } from '../helpers/batch.js';
import { gpuSkipReason } from '../helpers/gpu.js';

const skip = gpuSkipReason();
const HEAD_DIM_128 = {
  architectures: ['LlamaForCausalLM'], vocab_size: 512, hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 1, max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 500000,
};
const SOURCES: Array<{ name: string; source: Partial<RuntimeOptions> }> = [
  { name: 'default model (head_dim 64)', source: { modelDir: DEFAULT_MODEL_DIR } },
  { name: 'head_dim 128', source: { dummy: { config: HEAD_DIM_128, seed: 3 } } },
];

for (const { name, source } of SOURCES)
  for (const kvCacheDtype of ['auto', 'fp8', 'int8'] as const)
    describe(`warp-specialized prefill kernel (${name}, KV ${kvCacheDtype})`, { skip }, () => {
      test('gives attention_prefill_sm90.cu\'s logits to the bit', { timeout: 120_000 }, async () => {
        const lengths = Array.from({ length: 12 }, (_, k) => 1 + ((k * 97) % 300));
        const outputs: Float32Array[][] = [];
        for (const warpSpecializedPrefill of [false, true]) {
          const rt = await Runtime.load({
            ...source, device: 'cuda', kvCacheBytes: 256 << 20, maxNumTokens: 8192, maxNumSeqs: 64, kvCacheDtype,
            cuda: { batchInvariant: true, warpSpecializedPrefill },
          } as RuntimeOptions);
          try {
            const V = rt.info.vocabSize;
            const blocks = (k: number) => blockRange(k * 40, 40);
            const prompt = (k: number, n: number) => Array.from({ length: n }, (_, j) => 3 + ((k * 29 + j * 11) % (V - 3)));
            const out: Float32Array[] = [];
            // Whole prompts, one step.
            out.push((await rt.step(makeBatch(lengths.map((n, k) => ({ tokens: prompt(k, n), start: 0, blocks: blocks(k) })), true))).logits!);
            // A 600-token prompt in chunks of 250, 1 and 349 after its cached start (rows whose tiles reach back).
            const long = prompt(20, 600);
            for (const [from, to] of [[0, 250], [250, 251], [251, 600]])
              out.push((await rt.step(makeBatch([{ tokens: long.slice(from, to), start: from, blocks: blocks(20), promptLength: 600 }], true))).logits!);
            outputs.push(out);
          } finally {
            await rt.close();
          }
        }
        outputs[0].forEach((a, i) => assert.deepEqual(Array.from(outputs[1][i]), Array.from(a), `step ${i}`));
      });
    });
