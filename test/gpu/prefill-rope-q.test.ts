// CudaKnobs.prefillRopeQ: the prefill kernels turn their prompt rows' q from the QKV projection's
// bf16 output (rope.cuh, as the RoPE kernel turns it) and the RoPE kernel leaves those rows' q
// unwritten. The same logits to the bit as with the knob off: whole prompts of 1-300 tokens and a
// prompt continued in chunks after cached context (helpers/prefill-steps.ts), then a mixed step
// whose generated tokens still take the RoPE kernel's q (the decode kernel), then decode-only
// steps (a captured CUDA graph), at head_dim 16, 64 (the default model) and 128, with a QKV bias
// (Qwen2), on every cache type. A row left unturned or unwritten changes the logits.
import { describe, test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import type { RuntimeOptions } from '../../native/index.js';
import { makeBatch } from '../helpers/batch.js';
import { gpuSkipReason } from '../helpers/gpu.js';
import { HEAD_DIM_128, type PrefillSteps, assertSameLogits, prefillLogitsByKnobs } from '../helpers/prefill-steps.js';

const skip = gpuSkipReason();
const QWEN2_64 = {
  architectures: ['Qwen2ForCausalLM'], vocab_size: 512, hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 2,
  num_attention_heads: 8, num_key_value_heads: 2, max_position_embeddings: 1024, rms_norm_eps: 1e-6, rope_theta: 1000000,
};
// head_dim 16: a rotation pair's halves share a q fragment (attention_parts.cuh), as in the
// parity fixtures' models.
const LLAMA_16 = { ...HEAD_DIM_128, hidden_size: 128, num_attention_heads: 8, num_key_value_heads: 2 };
const ALL_CACHES = ['auto', 'fp8', 'int8'] as const;
const SOURCES: Array<{ name: string; source: Partial<RuntimeOptions>; caches: readonly (typeof ALL_CACHES)[number][] }> = [
  { name: 'default model (head_dim 64)', source: { modelDir: DEFAULT_MODEL_DIR }, caches: ALL_CACHES },
  // (an INT8 cache needs head_dim 32 or more)
  { name: 'head_dim 16', source: { dummy: { config: LLAMA_16, seed: 4 } }, caches: ['auto', 'fp8'] },
  { name: 'head_dim 128', source: { dummy: { config: HEAD_DIM_128, seed: 3 } }, caches: ALL_CACHES },
  { name: 'Qwen2, QKV bias', source: { dummy: { config: QWEN2_64, seed: 5 } }, caches: ALL_CACHES },
];

// After the shared prompt steps: generated tokens of the first prompts beside a new 90-token prompt
// (a mixed step), then generated tokens alone, twice: a CUDA graph captured and replayed right after
// steps with prompt rows, whose q the RoPE kernel must write again.
async function mixedThenDecode({ rt, lengths, prompt, blocks }: PrefillSteps): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  const decode = lengths.slice(0, 6).map((n, k) => ({ tokens: [7 + k], start: n, blocks: blocks(k), promptLength: n }));
  out.push((await rt.step(makeBatch([...decode, { tokens: prompt(21, 90), start: 0, blocks: blocks(21), promptLength: 90 }], true))).logits!);
  for (const step of [1, 2])
    out.push((await rt.step(makeBatch(lengths.slice(0, 6).map((n, k) => ({ tokens: [9 + k], start: n + step, blocks: blocks(k), promptLength: n })), true))).logits!);
  return out;
}

for (const { name, source, caches } of SOURCES)
  for (const kvCacheDtype of caches)
    describe(`prompt rows' q turned in the prefill kernel (${name}, KV ${kvCacheDtype})`, { skip }, () => {
      test('gives the RoPE kernel\'s logits to the bit', { timeout: 120_000 }, async () => {
        assertSameLogits(await prefillLogitsByKnobs(source, kvCacheDtype, [{ prefillRopeQ: false }, { prefillRopeQ: true }], mixedThenDecode));
      });
    });
