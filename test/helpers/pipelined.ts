import assert from 'node:assert/strict';

import type { Runtime } from '../../native/index.js';
import { blockRange, makeBatch, type Chunk } from './batch.js';

/**
 * Decodes two sequences `steps` tokens each, twice: one step at a time with
 * every token known, and pipelined (async scheduling), step N + 1 launched
 * before step N's result is in, its tokens fed from step N's samples. The
 * sequences swap places every step so a feed index must follow its sequence.
 * Returns both runs' tokens per sequence; they must be equal.
 */
export async function decodeBothWays(rt: Runtime, prompts: [number[], number[]], steps: number, sampling: Partial<Chunk> = {}) {
  const bs = rt.info.blockSize;
  const blocksOf = (i: number, offset: number) => blockRange(offset + i * 16, Math.ceil((prompts[i].length + steps + 1) / bs));
  const chunk = (i: number, tokens: number[], start: number, offset: number): Chunk => ({ tokens, start, blocks: blocksOf(i, offset), ...sampling, seed: BigInt(7 + i) });

  // One step at a time; the order of the pair flips each step.
  const known: number[][] = [[], []];
  let r = await rt.step(makeBatch([chunk(0, prompts[0], 0, 0), chunk(1, prompts[1], 0, 0)]));
  known[0].push(r.tokens[0]);
  known[1].push(r.tokens[1]);
  for (let k = 1; k < steps; k++) {
    const order = k % 2 === 1 ? [1, 0] : [0, 1];
    r = await rt.step(makeBatch(order.map((i) => chunk(i, [known[i][k - 1]], prompts[i].length + k - 1, 0))));
    order.forEach((i, s) => known[i].push(r.tokens[s]));
  }

  // Pipelined, in other blocks: step k's tokens are fed from step k - 1 (where sequence i sat at index prevOrder.indexOf(i)).
  const fed: number[][] = [[], []];
  let running = rt.step(makeBatch([chunk(0, prompts[0], 0, 64), chunk(1, prompts[1], 0, 64)]));
  let prevOrder = [0, 1];
  for (let k = 1; k <= steps; k++) {
    let next: ReturnType<Runtime['step']> | null = null;
    const order = k % 2 === 1 ? [1, 0] : [0, 1];
    if (k < steps) {
      const batch = makeBatch(order.map((i) => chunk(i, [0], prompts[i].length + k - 1, 64)));
      batch.feed = Int32Array.from(order.map((i) => prevOrder.indexOf(i)));
      next = rt.step(batch);
    }
    const done = await running;
    prevOrder.forEach((i, s) => fed[i].push(done.tokens[s]));
    prevOrder = order;
    if (next) running = next;
  }
  assert.equal(fed[0].length, steps);
  return { known, fed };
}
