import { COLUMN_DEFAULTS, SAMPLING_COLUMNS, SAMPLING_COLUMN_NAMES, type SamplingColumn, type SamplingColumns, type SamplingRow } from '../../engine/sampling-columns.js';
import type { StepBatch } from '../../native/index.js';

/** One sequence's part of a step, in the shape tests think in. */
export interface Chunk extends Partial<SamplingRow> {
  tokens: number[];
  /** Position of tokens[0]. */
  start: number;
  blocks: number[];
  sample?: boolean;
  /** logit_bias: [token id, bias] pairs. */
  bias?: [number, number][];
  /** Restarts the penalty slot from these tokens, the first promptLength of them the prompt. */
  history?: { tokens: number[]; promptLength: number };
  /** Positions below it hold the sequence's prompt (StepBatch.promptLens); every chunk gives it or none does. */
  promptLength?: number;
}

/** Every sampling column from the chunks, off where a chunk leaves it out (temperature: greedy). */
function columnsOf(chunks: Chunk[]): SamplingColumns {
  const out = {} as Record<SamplingColumn, unknown>;
  for (const c of SAMPLING_COLUMN_NAMES) {
    const fallback = c === 'temperature' ? 0 : COLUMN_DEFAULTS[c];
    out[c] = (SAMPLING_COLUMNS[c] as unknown as { from(v: unknown[]): unknown }).from(chunks.map((ch) => ch[c] ?? fallback));
  }
  return out as SamplingColumns;
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
    ...columnsOf(chunks),
    ...biasArrays(chunks),
    ...historyArrays(chunks),
    ...promptLengths(chunks),
    returnLogits,
  };
}

function promptLengths(chunks: Chunk[]): Pick<StepBatch, 'promptLens'> {
  const given = chunks.filter((c) => c.promptLength !== undefined).length;
  if (given === 0) return {};
  if (given !== chunks.length) throw new Error('makeBatch: give promptLength for every chunk or for none');
  return { promptLens: Int32Array.from(chunks.map((c) => c.promptLength!)) };
}

/** The CSR logit-bias arrays, or nothing when no chunk has biases. */
function biasArrays(chunks: Chunk[]): Pick<StepBatch, 'biasStart' | 'biasIds' | 'biasValues'> {
  if (!chunks.some((c) => c.bias?.length)) return {};
  const start = [0];
  for (const c of chunks) start.push(start[start.length - 1] + (c.bias?.length ?? 0));
  const all = chunks.flatMap((c) => c.bias ?? []);
  return { biasStart: Int32Array.from(start), biasIds: Int32Array.from(all.map(([id]) => id)), biasValues: Float32Array.from(all.map(([, b]) => b)) };
}

/** The CSR penalty-history arrays, or nothing when no chunk restarts its slot. */
function historyArrays(chunks: Chunk[]): Pick<StepBatch, 'historyStart' | 'historyTokens' | 'historyPrompt'> {
  if (!chunks.some((c) => c.history)) return {};
  const start = [0];
  for (const c of chunks) start.push(start[start.length - 1] + (c.history?.tokens.length ?? 0));
  return {
    historyStart: Int32Array.from(start),
    historyTokens: Int32Array.from(chunks.flatMap((c) => c.history?.tokens ?? [])),
    historyPrompt: Int32Array.from(chunks.map((c) => c.history?.promptLength ?? 0)),
  };
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

/** The largest relativeError of a row, rows of V values. */
export function worstRowError(a: Float32Array, b: Float32Array, V: number): number {
  let worst = 0;
  for (let i = 0; i < b.length / V; i++) worst = Math.max(worst, relativeError(a.subarray(i * V, (i + 1) * V), b.subarray(i * V, (i + 1) * V)));
  return worst;
}
