import type { StepBatch } from '../../native/index.js';

/** One sequence's part of a step, in the shape tests think in. */
export interface Chunk {
  tokens: number[];
  /** Position of tokens[0]. */
  start: number;
  blocks: number[];
  sample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  seed?: bigint;
  numLogprobs?: number;
  /** logit_bias: [token id, bias] pairs. */
  bias?: [number, number][];
}

/** Flattens chunks into the typed arrays the runtime takes. */
export function makeBatch(chunks: Chunk[], returnLogits = false): StepBatch {
  const stride = Math.max(1, ...chunks.map((c) => c.blocks.length));
  const S = chunks.length;
  const tokens = chunks.flatMap((c) => c.tokens);
  const positions = chunks.flatMap((c) => c.tokens.map((_, i) => c.start + i));
  const tables = new Int32Array(S * stride).fill(-1);
  chunks.forEach((c, s) => tables.set(c.blocks, s * stride));
  return {
    tokenIds: Int32Array.from(tokens),
    positions: Int32Array.from(positions),
    queryLens: Int32Array.from(chunks.map((c) => c.tokens.length)),
    blockTables: tables,
    blockTableStride: stride,
    sample: Uint8Array.from(chunks.map((c) => (c.sample ?? true ? 1 : 0))),
    temperature: Float32Array.from(chunks.map((c) => c.temperature ?? 0)),
    topK: Int32Array.from(chunks.map((c) => c.topK ?? 0)),
    topP: Float32Array.from(chunks.map((c) => c.topP ?? 1)),
    minP: Float32Array.from(chunks.map((c) => c.minP ?? 0)),
    seed: BigUint64Array.from(chunks.map((c) => c.seed ?? 0n)),
    numLogprobs: Int32Array.from(chunks.map((c) => c.numLogprobs ?? 0)),
    ...biasArrays(chunks),
    returnLogits,
  };
}

/** The CSR logit-bias arrays, or nothing when no chunk has biases. */
function biasArrays(chunks: Chunk[]): Pick<StepBatch, 'biasStart' | 'biasIds' | 'biasValues'> {
  if (!chunks.some((c) => c.bias?.length)) return {};
  const start = [0];
  for (const c of chunks) start.push(start[start.length - 1] + (c.bias?.length ?? 0));
  const all = chunks.flatMap((c) => c.bias ?? []);
  return { biasStart: Int32Array.from(start), biasIds: Int32Array.from(all.map(([id]) => id)), biasValues: Float32Array.from(all.map(([, b]) => b)) };
}

/** Blocks [first, first + n) for a sequence. */
export function blockRange(first: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => first + i);
}

/** ‖a − b‖ / ‖b‖ */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
