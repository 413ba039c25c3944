import { join } from 'node:path';

import { packageRoot } from '../../native/binding.js';
import { readSafetensorsHeader, readTensorBytes } from '../../native/safetensors.js';

/** Parity fixtures made by test/parity/make_fixtures.py (see there to regenerate). */
export const MODELS_DIR = join(packageRoot(), 'test', 'fixtures', 'models');
export const PARITY_MODELS = ['llama-gqa-tied', 'llama3-scaled', 'qwen2-bias', 'mistral-tp'] as const;
/** Every fixture runs on both backends: the Llama family, GPT-2 and GPT-J (issue 17). */
export const CUDA_PARITY_MODELS = [...PARITY_MODELS, 'gpt2-tiny', 'gptj-tiny'] as const;
export const CPU_PARITY_MODELS = CUDA_PARITY_MODELS;

export interface ReferencePrompt {
  tokens: number[];
  /** [len, vocab], transformers on the F32 checkpoint */
  logits: Float32Array;
  /** [len, vocab], transformers on the BF16 checkpoint in BF16 */
  logitsBf16: Float32Array;
  /** transformers' greedy continuation on the F32 checkpoint */
  greedy: number[];
}

function f32(bytes: Buffer): Float32Array {
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

function i32(bytes: Buffer): number[] {
  return [...new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length))];
}

export function loadReference(model: string): ReferencePrompt[] {
  const h = readSafetensorsHeader(join(MODELS_DIR, `${model}.reference.safetensors`));
  const prompts: ReferencePrompt[] = [];
  for (let p = 0; h.tensors.has(`p${p}.tokens`); p++) {
    prompts.push({
      tokens: i32(readTensorBytes(h, `p${p}.tokens`)),
      logits: f32(readTensorBytes(h, `p${p}.logits`)),
      logitsBf16: f32(readTensorBytes(h, `p${p}.logits_bf16`)),
      greedy: i32(readTensorBytes(h, `p${p}.greedy`)),
    });
  }
  return prompts;
}
