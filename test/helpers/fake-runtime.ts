import type { StepRuntime } from '../../engine/types.js';
import type { StepBatch, StepResult } from '../../native/index.js';

/**
 * A runtime that answers at once with a token that depends only on the
 * sequence's last token and its position, so a request's output is the same
 * whatever batch it ran in and however often it was recomputed. Records each
 * step's batch shape for assertions.
 */
export class FakeRuntime implements StepRuntime {
  readonly steps: { numTokens: number; queryLens: number[]; sample: number[]; fed: number; biases: number }[] = [];
  /** The next step fails on the device: it rejects, and a step fed from it computes placeholders. */
  failNextStep: Error | null = null;
  /** The next step is refused before it is launched (a bad batch): it rejects, and the runtime stays as it was. */
  refuseNextStep: Error | null = null;
  private lastFailed = false;
  /** pipelined: feeds tokens from the last step's samples, as the native runtimes do (async scheduling). */
  readonly pipelined: boolean;
  private lastTokens: Int32Array | null = null;

  constructor(readonly info: StepRuntime['info'], options: { pipelined?: boolean } = {}) {
    this.pipelined = options.pipelined ?? false;
  }

  static nextToken(last: number, position: number, vocab: number): number {
    return (last * 31 + position * 7 + 3) % vocab;
  }

  async step(b: StepBatch): Promise<StepResult> {
    if (this.refuseNextStep) {
      const e = this.refuseNextStep;
      this.refuseNextStep = null;
      throw e;
    }
    const last = this.lastTokens;
    const lastFailed = this.lastFailed;
    this.lastTokens = null;
    this.lastFailed = false;
    if (this.failNextStep) {
      const e = this.failNextStep;
      this.failNextStep = null;
      this.lastFailed = true;
      throw e;
    }
    const ids = b.tokenIds.slice();
    let fed = 0;
    if (b.feed) {
      if (!this.pipelined) throw new Error('a feed given to a runtime that is not pipelined');
      b.feed.forEach((f, t) => {
        if (f < 0) return;
        // As the native runtimes: a token fed from a failed step is a placeholder (its sequence ended with that step).
        if (lastFailed) {
          ids[t] = 0;
          fed++;
          return;
        }
        if (!last || f >= last.length || last[f] < 0) throw new Error(`token ${t} takes the previous step's token of sequence ${f}, which it did not sample`);
        ids[t] = last[f];
        fed++;
      });
    }
    const S = b.queryLens.length;
    this.steps.push({ numTokens: b.tokenIds.length, queryLens: [...b.queryLens], sample: [...b.sample], fed, biases: b.biasIds?.length ?? 0 });
    const tokens = new Int32Array(S).fill(-1);
    const logprobs = new Float32Array(S).fill(NaN);
    let t = 0;
    for (let s = 0; s < S; s++) {
      t += b.queryLens[s];
      if (b.sample[s]) {
        tokens[s] = FakeRuntime.nextToken(ids[t - 1], b.positions[t - 1], this.info.vocabSize);
        logprobs[s] = -1;
      }
      const stride = b.blockTableStride;
      const needed = Math.floor(b.positions[t - 1] / this.info.blockSize) + 1;
      for (let j = 0; j < needed; j++) {
        const block = b.blockTables[s * stride + j];
        if (block < 0 || block >= this.info.numBlocks) throw new Error(`sequence ${s} has no valid block for position ${j * this.info.blockSize}`);
      }
    }
    this.lastTokens = tokens;
    return { tokens, logprobs, topN: 0, topIds: new Int32Array(0), topLogprobs: new Float32Array(0) };
  }

  /** What a request produces with no other requests around. */
  static expected(prompt: number[], maxTokens: number, vocab: number): number[] {
    const out: number[] = [];
    let last = prompt[prompt.length - 1];
    for (let i = 0; i < maxTokens; i++) {
      last = FakeRuntime.nextToken(last, prompt.length + i - 1, vocab);
      out.push(last);
    }
    return out;
  }
}

export const FAKE_INFO = { numBlocks: 256, blockSize: 16, maxPositions: 4096, vocabSize: 1000, maxNumTokens: 256, maxNumSeqs: 64 };
