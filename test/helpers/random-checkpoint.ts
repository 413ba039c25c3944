import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { writeSafetensors, type RawTensor } from './safetensors-writer.js';

/** The HF config keys of a GPT-J shape (n_inner given: the MLP width). */
export interface GptjShape {
  vocab_size: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  rotary_dim: number;
  n_positions: number;
  n_inner: number;
}

/** float32 -> bf16 bits, round to nearest even. */
function toBf16(value: number): number {
  const x = new Uint32Array(Float32Array.of(value).buffer)[0];
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/**
 * A GPT-J checkpoint of seeded random BF16 weights in dir (config.json, model.safetensors), so that
 * the CPU and CUDA backends read the same values (their dummy weights come from different
 * generators). Uniform weights with std `gain / sqrt(fan_in)`, q and k at gain 1.5: scores
 * (q . k / sqrt(head_dim)) then have a standard deviation near 2 and a row's largest attention
 * weight averages 0.3-0.45, and attention is 40-45% of the residual. In a numpy model of the
 * head_dim 256 shape (up to 300 positions) that makes E4M3 K/V move the worst row's logits by 5.4%,
 * INT8 by 1.3% and bf16 activations by 0.7%, while a wrong half of V or a zeroed quarter of K moves
 * them by 84% and 54%. LayerNorms of ones, biases small and random.
 */
export function writeRandomGptj(dir: string, shape: GptjShape, seed: number): void {
  let state = seed >>> 0;
  const uniform = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const tensor = (dims: number[], std: number, mean = 0): RawTensor => {
    const n = dims.reduce((a, b) => a * b, 1);
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = toBf16(mean + (uniform() * 2 - 1) * Math.sqrt(3) * std);
    return { dtype: 'BF16', shape: dims, data: new Uint8Array(bits.buffer) };
  };
  const { vocab_size: V, n_embd: H, n_inner: I } = shape;
  const tensors: Record<string, RawTensor> = {
    'transformer.wte.weight': tensor([V, H], 1),
    'transformer.ln_f.weight': tensor([H], 0.05, 1),
    'transformer.ln_f.bias': tensor([H], 0.05),
    'lm_head.weight': tensor([V, H], 1 / Math.sqrt(H)),
    'lm_head.bias': tensor([V], 0.05),
  };
  for (let i = 0; i < shape.n_layer; i++) {
    const p = `transformer.h.${i}.`;
    Object.assign(tensors, {
      [`${p}ln_1.weight`]: tensor([H], 0.05, 1),
      [`${p}ln_1.bias`]: tensor([H], 0.05),
      [`${p}attn.q_proj.weight`]: tensor([H, H], 1.5 / Math.sqrt(H)),
      [`${p}attn.k_proj.weight`]: tensor([H, H], 1.5 / Math.sqrt(H)),
      [`${p}attn.v_proj.weight`]: tensor([H, H], 1 / Math.sqrt(H)),
      [`${p}attn.out_proj.weight`]: tensor([H, H], 1 / Math.sqrt(H)),
      [`${p}mlp.fc_in.weight`]: tensor([I, H], 1 / Math.sqrt(H)),
      [`${p}mlp.fc_in.bias`]: tensor([I], 0.05),
      [`${p}mlp.fc_out.weight`]: tensor([H, I], 1 / Math.sqrt(I)),
      [`${p}mlp.fc_out.bias`]: tensor([H], 0.05),
    });
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  const config = {
    architectures: ['GPTJForCausalLM'], model_type: 'gptj', ...shape, activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
}
