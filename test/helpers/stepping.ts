import type { Runtime } from '../../native/index.js';
import { blockRange, makeBatch } from './batch.js';

/** Feeds the prompt one token per step and returns the logits at every position, [len, vocab]. */
export async function logitsAtEveryPosition(rt: Runtime, tokens: number[]): Promise<Float32Array> {
  const V = rt.info.vocabSize;
  const blocks = blockRange(0, Math.ceil(tokens.length / rt.info.blockSize));
  const out = new Float32Array(tokens.length * V);
  for (let i = 0; i < tokens.length; i++) {
    const r = await rt.step(makeBatch([{ tokens: [tokens[i]], start: i, blocks }], true));
    out.set(r.logits!, i * V);
  }
  return out;
}

/** Greedy continuation of n tokens, one sequence, straight on the runtime. */
export async function greedyContinuation(rt: Runtime, prompt: number[], n: number): Promise<number[]> {
  const blocks = blockRange(0, Math.ceil((prompt.length + n) / rt.info.blockSize));
  const out: number[] = [];
  let r = await rt.step(makeBatch([{ tokens: prompt, start: 0, blocks }]));
  for (let i = 0; i < n; i++) {
    out.push(r.tokens[0]);
    if (i + 1 < n) r = await rt.step(makeBatch([{ tokens: [r.tokens[0]], start: prompt.length + i, blocks }]));
  }
  return out;
}
