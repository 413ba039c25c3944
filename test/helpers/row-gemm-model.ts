// The small FP8 Llama the row GEMM's GPU tests load (row-gemm-prefetch, weight-row-pad): two layers
// of hidden 2,048 and intermediate 4,096, so that its rows outlast the row GEMM's 14-stage prologue
// (QKV 3,072 x 2,048, O 2,048 x 2,048, gate/up 8,192 x 2,048, down 2,048 x 4,096), and the steps
// they compare: a 150-token prompt, then one token decoded alone twice (the second replays the graph
// the first captured) and beside 20 others.
import assert from 'node:assert/strict';

import { type CudaKnobs, Runtime, type RuntimeInfo } from '../../native/index.js';
import { blockRange, makeBatch } from './batch.js';

export const ROW_GEMM_CONFIG = {
  architectures: ['LlamaForCausalLM'], vocab_size: 512, hidden_size: 2048, intermediate_size: 4096, num_hidden_layers: 2,
  num_attention_heads: 16, num_key_value_heads: 4, max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 500000,
};

/** Tuning chose the row GEMM at one token for QKV, O or down (the shapes of ROW_GEMM_CONFIG). */
export const ROW_GEMM_AT_ONE = /fp8 (3072x2048|2048x2048|2048x4096) at 1 rows -> [^\n]* row-gemm/;

export interface RowGemmRun {
  /** The prompt's last logits (150 rows: cuBLASLt). */
  prompt: number[];
  /** The decode token's: alone, alone replayed, beside 20 others. */
  decode: number[][];
  info: RuntimeInfo;
}

/** Loads ROW_GEMM_CONFIG in FP8 with these knobs and runs the prompt and decode steps. */
export async function runRowGemmModel(cuda: Partial<CudaKnobs>): Promise<RowGemmRun> {
  const rt = await Runtime.load({ dummy: { config: ROW_GEMM_CONFIG, seed: 5 }, device: 'cuda', dtype: 'fp8', kvCacheBytes: 256 << 20,
    maxNumTokens: 1024, maxNumSeqs: 64, cuda });
  try {
    assert.equal(rt.info.weightDtype, 'fp8');
    const logits = (r: { logits?: Float32Array }) => Array.from(r.logits!.subarray(0, rt.info.vocabSize));
    const prompt = Array.from({ length: 150 }, (_, i) => 3 + ((i * 37) % 500));
    const main = { start: 150, tokens: [77], blocks: blockRange(0, 10) };
    const first = logits(await rt.step(makeBatch([{ tokens: prompt, start: 0, blocks: main.blocks }], true)));
    const others = Array.from({ length: 20 }, (_, k) => ({ tokens: [5 + k], start: 0, blocks: [20 + k] }));
    const decode: number[][] = [];
    for (const batch of [[main], [main], [main, ...others]]) decode.push(logits(await rt.step(makeBatch(batch, true))));
    return { prompt: first, decode, info: rt.info };
  } finally {
    await rt.close();
  }
}
