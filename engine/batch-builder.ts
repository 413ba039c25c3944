import type { StepBatch } from '../native/index.js';
import type { ScheduledChunk } from './scheduler.js';

/** A bias that bans a token: finite (the runtime checks), and far below any logit. */
export const BAN = -1e30;

const NO_BANS = new Int32Array(0);

/** Tokens banned for this sequence this step: its min_tokens bans until that many tokens are out. */
function bansOf(seq: ScheduledChunk): Int32Array {
  return seq.numOutputTokens < (seq.stop.minTokens ?? 0) ? seq.sampling.minTokensBans : NO_BANS;
}

/**
 * Builds each step's flat typed arrays in buffers that are reused step to
 * step (they grow, never shrink), so a step allocates only the views.
 */
export class BatchBuilder {
  private tokenIds = new Int32Array(0);
  private positions = new Int32Array(0);
  private queryLens = new Int32Array(0);
  private blockTables = new Int32Array(0);
  private sample = new Uint8Array(0);
  private temperature = new Float32Array(0);
  private topK = new Int32Array(0);
  private topP = new Float32Array(0);
  private minP = new Float32Array(0);
  private seed = new BigUint64Array(0);
  private numLogprobs = new Int32Array(0);
  private biasStart = new Int32Array(0);
  private biasIds = new Int32Array(0);
  private biasValues = new Float32Array(0);

  build(chunks: ScheduledChunk[]): StepBatch {
    const S = chunks.length;
    let T = 0;
    let stride = 1;
    let B = 0;
    for (const seq of chunks) {
      T += seq.chunkTokens;
      if (seq.blockTable.length > stride) stride = seq.blockTable.length;
      B += seq.sampling.biasIds.length + bansOf(seq).length;
    }
    this.reserve(T, S, stride);
    if (B > 0) this.reserveBias(S, B);
    let k = 0;
    let t = 0;
    for (let s = 0; s < S; s++) {
      const seq = chunks[s];
      const numTokens = seq.chunkTokens;
      const start = seq.numComputedTokens;
      for (let i = 0; i < numTokens; i++, t++) {
        this.tokenIds[t] = seq.tokens[start + i];
        this.positions[t] = start + i;
      }
      this.queryLens[s] = numTokens;
      const table = seq.blockTable;
      const row = s * stride;
      for (let b = 0; b < table.length; b++) this.blockTables[row + b] = table[b];
      for (let b = table.length; b < stride; b++) this.blockTables[row + b] = -1;
      this.sample[s] = start + numTokens === seq.numTokens ? 1 : 0;
      const p = seq.sampling;
      this.temperature[s] = p.temperature;
      this.topK[s] = p.topK;
      this.topP[s] = p.topP;
      this.minP[s] = p.minP;
      this.seed[s] = p.seed;
      this.numLogprobs[s] = Math.max(0, p.numLogprobs);
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
    }
    if (B > 0) this.biasStart[S] = k;
    const bias = B > 0 ? { biasStart: this.biasStart.subarray(0, S + 1), biasIds: this.biasIds.subarray(0, B), biasValues: this.biasValues.subarray(0, B) } : {};
    return {
      ...bias,
      tokenIds: this.tokenIds.subarray(0, T),
      positions: this.positions.subarray(0, T),
      queryLens: this.queryLens.subarray(0, S),
      blockTables: this.blockTables.subarray(0, S * stride),
      blockTableStride: stride,
      sample: this.sample.subarray(0, S),
      temperature: this.temperature.subarray(0, S),
      topK: this.topK.subarray(0, S),
      topP: this.topP.subarray(0, S),
      minP: this.minP.subarray(0, S),
      seed: this.seed.subarray(0, S),
      numLogprobs: this.numLogprobs.subarray(0, S),
    };
  }

  private reserveBias(S: number, B: number): void {
    if (this.biasStart.length < S + 1) this.biasStart = new Int32Array((S + 1) * 2);
    if (this.biasIds.length < B) {
      this.biasIds = new Int32Array(B * 2);
      this.biasValues = new Float32Array(B * 2);
    }
  }

  private reserve(T: number, S: number, stride: number): void {
    if (this.tokenIds.length < T) {
      this.tokenIds = new Int32Array(T * 2);
      this.positions = new Int32Array(T * 2);
    }
    if (this.blockTables.length < S * stride) this.blockTables = new Int32Array(S * stride * 2);
    if (this.queryLens.length < S) {
      const n = S * 2;
      this.queryLens = new Int32Array(n);
      this.sample = new Uint8Array(n);
      this.temperature = new Float32Array(n);
      this.topK = new Int32Array(n);
      this.topP = new Float32Array(n);
      this.minP = new Float32Array(n);
      this.seed = new BigUint64Array(n);
      this.numLogprobs = new Int32Array(n);
    }
  }
}
