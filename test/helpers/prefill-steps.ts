// The steps the prefill kernels' bit-for-bit knob tests share (prefill-warp-specialized,
// prefill-rope-q): a runtime loaded once per knob setting, whole prompts of 1-300 tokens in one step
// (one to five 64-position tiles, query tiles cut mid-prompt; the 1-token one counts as generated),
// then a 600-token prompt in chunks of 250, 1 and 349 after its cached start (rows whose tiles
// reach back), then whatever else a test steps; every step's logits returned. The f16 scores unless
// a setting asks for FP8 ones (CudaKnobs.fp8PrefillScores, on by default, other bits by design; a
// setting of fp8PrefillScores true alone also gets FP8 P V, CudaKnobs.fp8PrefillValues, on by
// default): the knob tests compare kernels that compute the same f16 arithmetic.
import assert from 'node:assert/strict';

import { Runtime, type CudaKnobs, type RuntimeOptions } from '../../native/index.js';
import { blockRange, makeBatch } from './batch.js';

/** A Llama of head_dim 128 (4 heads, one KV head), two layers. */
export const HEAD_DIM_128 = {
  architectures: ['LlamaForCausalLM'], vocab_size: 512, hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 1, max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 500000,
};

export interface PrefillSteps {
  rt: Runtime;
  /** The whole prompts' lengths, sequences 0-11. */
  lengths: number[];
  /** Sequence k's first n prompt tokens. */
  prompt(k: number, n: number): number[];
  /** Sequence k's 40 blocks. */
  blocks(k: number): number[];
}

export async function prefillLogitsByKnobs(source: Partial<RuntimeOptions>, kvCacheDtype: RuntimeOptions['kvCacheDtype'],
  settings: Partial<CudaKnobs>[], more: (s: PrefillSteps) => Promise<Float32Array[]> = async () => []): Promise<Float32Array[][]> {
  const lengths = Array.from({ length: 12 }, (_, k) => 1 + ((k * 97) % 300));
  const outputs: Float32Array[][] = [];
  for (const knobs of settings) {
    const rt = await Runtime.load({
      ...source, device: 'cuda', kvCacheBytes: 256 << 20, maxNumTokens: 8192, maxNumSeqs: 64, kvCacheDtype,
      cuda: { batchInvariant: true, fp8PrefillScores: false, ...knobs },
    } as RuntimeOptions);
    try {
      const V = rt.info.vocabSize;
      const s: PrefillSteps = {
        rt, lengths,
        prompt: (k, n) => Array.from({ length: n }, (_, j) => 3 + ((k * 29 + j * 11) % (V - 3))),
        blocks: (k) => blockRange(k * 40, 40),
      };
      const out: Float32Array[] = [];
      out.push((await rt.step(makeBatch(lengths.map((n, k) => ({ tokens: s.prompt(k, n), start: 0, blocks: s.blocks(k) })), true))).logits!);
      const long = s.prompt(20, 600);
      for (const [from, to] of [[0, 250], [250, 251], [251, 600]])
        out.push((await rt.step(makeBatch([{ tokens: long.slice(from, to), start: from, blocks: s.blocks(20), promptLength: 600 }], true))).logits!);
      out.push(...(await more(s)));
      outputs.push(out);
    } finally {
      await rt.close();
    }
  }
  return outputs;
}

/** Every setting's logits finite and equal to the first's, step by step, to the bit. */
export function assertSameLogits(outputs: Float32Array[][]): void {
  outputs[0].forEach((a, i) => {
    assert.ok(a.every(Number.isFinite), `step ${i}: finite logits`);
    for (const other of outputs.slice(1)) assert.deepEqual(Array.from(other[i]), Array.from(a), `step ${i}`);
  });
}
