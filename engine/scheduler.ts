import type { BlockManager } from './block-manager.js';
import { PenaltySlots } from './penalty-slots.js';
import type { Sequence } from './sequence.js';

export interface SchedulerConfig {
  /** Token budget of one step (decode tokens plus prompt chunks). */
  maxNumBatchedTokens: number;
  /** Sequence budget of one step. */
  maxNumSeqs: number;
  /** Longest prompt chunk one sequence gets in a step. */
  maxPrefillChunk: number;
  /**
   * Most prompt tokens in a step that also carries decodes: a long prompt is
   * spread over several steps rather than stalling every running stream for
   * one long step (vLLM bounds it per request with its long-prefill threshold).
   */
  maxPrefillTokensWithDecodes: number;
  /** Penalty slots the runtime keeps (its per-step sequence limit, at least maxNumSeqs). Default maxNumSeqs. */
  penaltySlots?: number;
}

/** A scheduled sequence; its chunk size for this step is seq.chunkTokens. */
export type ScheduledChunk = Sequence;

/**
 * Fills each step under the two budgets: decode tokens of running sequences
 * first, then prompt chunks of running sequences, then new sequences from the
 * queue. When KV blocks run out the newest running sequence is preempted:
 * its blocks are freed and it waits at the head of the queue to be recomputed.
 */
export class Scheduler {
  readonly waiting: Sequence[] = [];
  running: Sequence[] = [];
  private admissions = 0;
  preemptions = 0;
  readonly penaltySlots: PenaltySlots;

  constructor(private readonly blocks: BlockManager, private readonly config: SchedulerConfig) {
    this.penaltySlots = new PenaltySlots(config.penaltySlots ?? config.maxNumSeqs);
  }

  add(seq: Sequence): void {
    this.waiting.push(seq);
  }

  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  /** Takes a sequence out of the queues and frees its blocks (the one place blocks are freed). */
  remove(seq: Sequence): void {
    if (seq.status === 'waiting') {
      const i = this.waiting.indexOf(seq);
      if (i >= 0) this.waiting.splice(i, 1);
    } else if (seq.status === 'running') this.leftRunning++;
    this.blocks.free(seq);
    this.penaltySlots.release(seq);
    seq.status = 'finished';
  }

  /** The last schedule(ahead) left a running sequence out for lack of KV blocks. */
  lackedRoom = false;
  private leftRunning = 0;
  private stepNumber = 0;

  /**
   * This step's sequences, decodes first; each with seq.chunkTokens set.
   * ahead: a step is still on the runtime (async scheduling). Sequences whose
   * last token is pending or that were cancelled are left out, and nothing is
   * preempted: a sequence that lacks room waits, no new request is admitted,
   * and lackedRoom tells the engine to schedule the next step after this one's
   * result instead (where preemption can run).
   */
  schedule(ahead = false): Sequence[] {
    this.lackedRoom = false;
    if (this.leftRunning > 0) {
      this.running = this.running.filter((s) => s.status === 'running');
      this.leftRunning = 0;
    }
    const step = ++this.stepNumber;
    const out: Sequence[] = [];
    let tokens = this.config.maxNumBatchedTokens;
    let prefill = Infinity;
    let preempted = false;
    for (const decoding of [true, false]) {
      if (!decoding && out.length > 0) prefill = this.config.maxPrefillTokensWithDecodes;
      for (let i = 0; i < this.running.length; i++) {
        const seq = this.running[i];
        if (seq.status !== 'running' || seq.isDecoding !== decoding || seq.scheduledStep === step) continue;
        if (ahead && (seq.finalPending || seq.cancelled)) continue;
        if (out.length >= this.config.maxNumSeqs || tokens === 0 || prefill === 0) break;
        const n = Math.min(seq.numUncomputed, tokens, this.config.maxPrefillChunk, prefill);
        if (ahead ? !this.blocks.canAppend(seq, seq.numComputedTokens + n) : !this.makeRoom(seq, seq.numComputedTokens + n, step)) {
          this.lackedRoom ||= ahead;
          preempted = true;
          continue;
        }
        this.blocks.append(seq, seq.numComputedTokens + n);
        seq.chunkTokens = n;
        seq.scheduledStep = step;
        out.push(seq);
        tokens -= n;
        if (!decoding) prefill -= n;
      }
    }
    if (preempted) return this.withSlots(out); // no new admissions while running sequences lack room
    // At most maxNumSeqs run at once (scheduled or not), so each can hold a penalty slot.
    let live = this.running.length - this.leftRunning;
    while (this.waiting.length > 0 && out.length < this.config.maxNumSeqs && live < this.config.maxNumSeqs && tokens > 0 && prefill > 0) {
      const seq = this.waiting[0];
      const chunkLimit = Math.min(tokens, this.config.maxPrefillChunk, prefill);
      if (!this.blocks.canAllocate(seq, chunkLimit)) break;
      const cached = this.blocks.allocate(seq, chunkLimit);
      seq.numComputedTokens = cached;
      if (seq.timing.firstScheduled === null) seq.cachedPromptTokens = Math.min(cached, seq.promptLength);
      const chunk = Math.min(seq.numUncomputed, chunkLimit);
      this.waiting.shift();
      seq.status = 'running';
      seq.admittedAt = this.admissions++;
      seq.chunkTokens = chunk;
      seq.scheduledStep = step;
      this.running.push(seq);
      live++;
      out.push(seq);
      tokens -= chunk;
      if (prefill !== Infinity) prefill -= chunk;
    }
    return this.withSlots(out);
  }

  private withSlots(out: Sequence[]): Sequence[] {
    for (const seq of out) this.penaltySlots.take(seq);
    return out;
  }

  /**
   * Preempts the newest running sequences until seq's table can cover
   * numTokens. False when seq itself had to be preempted.
   */
  private makeRoom(seq: Sequence, numTokens: number, step: number): boolean {
    while (!this.blocks.canAppend(seq, numTokens)) {
      const victim = this.newestPreemptible(step);
      if (!victim) return false;
      this.preempt(victim);
      if (victim === seq) return false;
    }
    return true;
  }

  private newestPreemptible(step: number): Sequence | undefined {
    for (let i = this.running.length - 1; i >= 0; i--) {
      const s = this.running[i];
      if (s.status === 'running' && s.scheduledStep !== step) return s;
    }
    return undefined;
  }

  private preempt(seq: Sequence): void {
    this.leftRunning++;
    this.blocks.free(seq);
    this.penaltySlots.release(seq);
    seq.numComputedTokens = 0;
    seq.status = 'waiting';
    this.waiting.unshift(seq);
    this.preemptions++;
  }
}
