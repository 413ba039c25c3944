// CudaKnobs.prefillRopeQ: the prefill kernels turn their prompt rows' q from the QKV projection's
// bf16 output (rope.cuh, as the RoPE kernel turns it) and the RoPE kernel leaves those rows' q
// unwritten. The same logits to the bit as with the knob off: whole prompts of 1-300 tokens, a
// prompt continued in chunks after cached context, and a mixed step whose generated tokens still
// take the RoPE kernel's q (the decode kernel), then decode-only steps (a captured CUDA graph), at head_dim 16, 64 (the default model) and 128, with a
// QKV bias (Qwen2), on every cache type. A row left unturned or unwritten changes the logits.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { Runtime, type RuntimeOptions } from '../../native/index.js';
import { blockRange, makeBatch } from '../helpers/batch.js';
import { gpuSkipReason } from '../helpers/gpu.js';

const skip = gpuSkipReason();
const LLAMA_128 = {
  architectures: ['LlamaForCausalLM'], vocab_size: 512, hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 1, max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 500000,
};
const QWEN2_64 = {
  architectures: ['Qwen2ForCausalLM'], vocab_size: 512, hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 2,
  num_attention_heads: 8, num_key_value_heads: 2, max_position_embeddings: 1024, rms_norm_eps: 1e-6, rope_theta: 1000000,
};
// head_dim 16: a rotation pair's halves share a q fragment (attention_parts.cuh), as in the
// parity fixtures' models.
const LLAMA_16 = { ...LLAMA_128, hidden_size: 128, num_attention_heads: 8, num_key_value_heads: 2 };
const ALL_CACHES = ['auto', 'fp8', 'int8'] as const;
const SOURCES: Array<{ name: string; source: Partial<RuntimeOptions>; caches: readonly (typeof ALL_CACHES)[number][] }> = [
  { name: 'default model (head_dim 64)', source: { modelDir: DEFAULT_MODEL_DIR }, caches: ALL_CACHES },
  // (an INT8 cache needs head_dim 32 or more)
  { name: 'head_dim 16', source: { dummy: { config: LLAMA_16, seed: 4 } }, caches: ['auto', 'fp8'] },
  { name: 'head_dim 128', source: { dummy: { config: LLAMA_128, seed: 3 } }, caches: ALL_CACHES },
  { name: 'Qwen2, QKV bias', source: { dummy: { config: QWEN2_64, seed: 5 } }, caches: ALL_CACHES },
];

for (const { name, source, caches } of SOURCES)
  for (const kvCacheDtype of caches)
    describe(`prompt rows' q turned in the prefill kernel (${name}, KV ${kvCacheDtype})`, { skip }, () => {
      test('gives the RoPE kernel\'s logits to the bit', { timeout: 120_000 }, async () => {
        const lengths = Array.from({ length: 12 }, (_, k) => 1 + ((k * 97) % 300));
        const outputs: Float32Array[][] = [];
        for (const prefillRopeQ of [false, true]) {
          const rt = await Runtime.load({
            ...source, device: 'cuda', kvCacheBytes: 256 << 20, maxNumTokens: 8192, maxNumSeqs: 64, kvCacheDtype,
            cuda: { batchInvariant: true, prefillRopeQ },
          } as RuntimeOptions);
          try {
            const V = rt.info.vocabSize;
            const blocks = (k: number) => blockRange(k * 40, 40);
            const prompt = (k: number, n: number) => Array.from({ length: n }, (_, j) => 3 + ((k * 29 + j * 11) % (V - 3)));
            const out: Float32Array[] = [];
            // Whole prompts, one step.
            out.push((await rt.step(makeBatch(lengths.map((n, k) => ({ tokens: prompt(k, n), start: 0, blocks: blocks(k), promptLength: n })), true))).logits!);
            // A 600-token prompt in chunks of 250, 1 and 349 after its cached start (rows whose tiles reach back).
            const long = prompt(20, 600);
            for (const [from, to] of [[0, 250], [250, 251], [251, 600]])
              out.push((await rt.step(makeBatch([{ tokens: long.slice(from, to), start: from, blocks: blocks(20), promptLength: 600 }], true))).logits!);
            // Generated tokens of the first prompts beside a new 90-token prompt (a mixed step).
            const decode = lengths.slice(0, 6).map((n, k) => ({ tokens: [7 + k], start: n, blocks: blocks(k), promptLength: n }));
            out.push((await rt.step(makeBatch([...decode, { tokens: prompt(21, 90), start: 0, blocks: blocks(21), promptLength: 90 }], true))).logits!);
            // Then generated tokens alone, twice: a CUDA graph captured and replayed right after
            // steps with prompt rows, whose q the RoPE kernel must write again.
            for (const step of [1, 2])
              out.push((await rt.step(makeBatch(lengths.slice(0, 6).map((n, k) => ({ tokens: [9 + k], start: n + step, blocks: blocks(k), promptLength: n })), true))).logits!);
            outputs.push(out);
          } finally {
            await rt.close();
          }
        }
        outputs[0].forEach((a, i) => {
          assert.ok(a.every(Number.isFinite), `step ${i}: finite logits`);
          assert.deepEqual(Array.from(outputs[1][i]), Array.from(a), `step ${i}`);
        });
      });
    });
