import type { StepBatch } from '../native/index.js';
import { SAMPLING_COLUMN_NAMES, allocateColumns, type SamplingColumn, type SamplingColumns } from './sampling-columns.js';
import type { ScheduledChunk } from './scheduler.js';

/** A bias that bans a token: finite (the runtime checks), and far below any logit. */
export const BAN = -1e30;

const NO_BANS = new Int32Array(0);

/** Columns copied as the request resolved them; the others are the step's (below). */
const REQUEST_COLUMNS = SAMPLING_COLUMN_NAMES.filter((c) => c !== 'numLogprobs' && c !== 'penaltySlot' && c !== 'maskRow') as Exclude<
  SamplingColumn,
  'numLogprobs' | 'penaltySlot' | 'maskRow'
>[];

/** Tokens banned for this sequence this step: its min_tokens bans until that many tokens are out (pending ones count). */
function bansOf(seq: ScheduledChunk): Int32Array {
  return seq.numOutputTokens + seq.pending < (seq.stop.minTokens ?? 0) ? seq.sampling.minTokensBans : NO_BANS;
}

/** Grows a typed array buffer to at least n entries (twice what is asked, so growth is rare). */
function grown<A extends Int32Array | Float32Array>(a: A, n: number, make: (n: number) => A): A {
  return a.length >= n ? a : make(n * 2);
}

/**
 * Builds each step's flat typed arrays in buffers that are reused step to
 * step (they grow, never shrink), so a step allocates only the views.
 */
export class BatchBuilder {
  private tokenIds = new Int32Array(0);
  private feed = new Int32Array(0);
  private positions = new Int32Array(0);
  private queryLens = new Int32Array(0);
  private blockTables = new Int32Array(0);
  private sample = new Uint8Array(0);
  private promptLens = new Int32Array(0);
  private columns: SamplingColumns = allocateColumns(0);
  private biasStart = new Int32Array(0);
  private biasIds = new Int32Array(0);
  private biasValues = new Float32Array(0);
  private historyStart = new Int32Array(0);
  private historyTokens = new Int32Array(0);
  private historyPrompt = new Int32Array(0);

  build(chunks: ScheduledChunk[]): StepBatch {
    const S = chunks.length;
    let T = 0;
    let stride = 1;
    let B = 0;
    let H = 0;
    for (const seq of chunks) {
      T += seq.chunkTokens;
      if (seq.blockTable.length > stride) stride = seq.blockTable.length;
      B += seq.sampling.biasIds.length + bansOf(seq).length;
      if (seq.penaltyRestart) H += seq.numTokens;
    }
    this.reserve(T, S, stride);
    if (B > 0) this.reserveBias(S, B);
    if (H > 0) this.reserveHistory(S, H);
    const cols = this.columns;
    let k = 0;
    let h = 0;
    let t = 0;
    let maskRows = 0;
    let fed = false;
    for (let s = 0; s < S; s++) {
      const seq = chunks[s];
      const numTokens = seq.chunkTokens;
      const start = seq.numComputedTokens;
      const known = seq.tokens.length;
      for (let i = 0; i < numTokens; i++, t++) {
        // A token the step on the runtime samples (async scheduling): the runtime feeds it.
        const pending = start + i >= known;
        this.tokenIds[t] = pending ? 0 : seq.tokens[start + i];
        this.feed[t] = pending ? seq.feedIndex : -1;
        if (pending && seq.feedIndex < 0) throw new Error(`sequence ${seq.id}: token ${start + i} is neither known nor sampled by the step before`);
        fed ||= pending;
        this.positions[t] = start + i;
      }
      this.queryLens[s] = numTokens;
      const table = seq.blockTable;
      const row = s * stride;
      for (let b = 0; b < table.length; b++) this.blockTables[row + b] = table[b];
      for (let b = table.length; b < stride; b++) this.blockTables[row + b] = -1;
      const samples = start + numTokens === seq.numPlannedTokens;
      this.sample[s] = samples ? 1 : 0;
      this.promptLens[s] = seq.promptLength;
      const p = seq.sampling;
      for (const c of REQUEST_COLUMNS) cols[c][s] = p[c] as never;
      cols.numLogprobs[s] = Math.max(0, p.numLogprobs);
      cols.penaltySlot[s] = seq.penaltySlot;
      cols.maskRow[s] = samples && seq.guide ? maskRows++ : -1;
      if (B > 0) {
        this.biasStart[s] = k;
        this.biasIds.set(p.biasIds, k);
        this.biasValues.set(p.biasValues, k);
        k += p.biasIds.length;
        const bans = bansOf(seq);
        this.biasIds.set(bans, k);
        this.biasValues.fill(BAN, k, k + bans.length);
        k += bans.length;
      }
      if (H > 0) {
        this.historyStart[s] = h;
        this.historyPrompt[s] = 0;
        if (seq.penaltyRestart) {
          // Everything so far; the token this step samples the runtime counts itself.
          for (const token of seq.tokens) this.historyTokens[h++] = token;
          this.historyPrompt[s] = seq.promptLength;
          seq.penaltyRestart = false;
        }
      }
    }
    if (B > 0) this.biasStart[S] = k;
    if (H > 0) this.historyStart[S] = h;
    const bias = B > 0 ? { biasStart: this.biasStart.subarray(0, S + 1), biasIds: this.biasIds.subarray(0, B), biasValues: this.biasValues.subarray(0, B) } : {};
    const history =
      H > 0 ? { historyStart: this.historyStart.subarray(0, S + 1), historyTokens: this.historyTokens.subarray(0, H), historyPrompt: this.historyPrompt.subarray(0, S) } : {};
    const views = {} as Record<SamplingColumn, unknown>;
    for (const c of SAMPLING_COLUMN_NAMES) views[c] = cols[c].subarray(0, S);
    return {
      ...bias,
      ...history,
      ...(views as SamplingColumns),
      numMaskRows: maskRows,
      returnLogits: chunks.some((c) => c.returnLogits),
      tokenIds: this.tokenIds.subarray(0, T),
      ...(fed ? { feed: this.feed.subarray(0, T) } : {}),
      positions: this.positions.subarray(0, T),
      queryLens: this.queryLens.subarray(0, S),
      blockTables: this.blockTables.subarray(0, S * stride),
      blockTableStride: stride,
      sample: this.sample.subarray(0, S),
      promptLens: this.promptLens.subarray(0, S),
    };
  }

  private reserveBias(S: number, B: number): void {
    this.biasStart = grown(this.biasStart, S + 1, (n) => new Int32Array(n));
    this.biasIds = grown(this.biasIds, B, (n) => new Int32Array(n));
    this.biasValues = grown(this.biasValues, B, (n) => new Float32Array(n));
  }

  private reserveHistory(S: number, H: number): void {
    this.historyStart = grown(this.historyStart, S + 1, (n) => new Int32Array(n));
    this.historyPrompt = grown(this.historyPrompt, S, (n) => new Int32Array(n));
    this.historyTokens = grown(this.historyTokens, H, (n) => new Int32Array(n));
  }

  private reserve(T: number, S: number, stride: number): void {
    if (this.tokenIds.length < T) {
      this.tokenIds = new Int32Array(T * 2);
      this.feed = new Int32Array(T * 2);
      this.positions = new Int32Array(T * 2);
    }
    if (this.blockTables.length < S * stride) this.blockTables = new Int32Array(S * stride * 2);
    if (this.queryLens.length < S) {
      this.queryLens = new Int32Array(S * 2);
      this.sample = new Uint8Array(S * 2);
      this.promptLens = new Int32Array(S * 2);
      this.columns = allocateColumns(S * 2);
    }
  }
}
