import type { Sequence } from './sequence.js';

/**
 * The runtime's penalty slots: rows of per-token counts it keeps on the
 * device for presence, frequency and repetition penalties, one per sequence a
 * step may carry. A running sequence with penalties holds one; it is given
 * back when the sequence finishes or is preempted, and a sequence that gets
 * one (again) sends its history once so the runtime can restart the row.
 */
export class PenaltySlots {
  private readonly free: number[];

  constructor(readonly size: number) {
    this.free = Array.from({ length: size }, (_, i) => size - 1 - i);
  }

  get numFree(): number {
    return this.free.length;
  }

  /** Gives seq a slot if its sampling needs one and it has none. */
  take(seq: Sequence): void {
    if (seq.penaltySlot >= 0 || !seq.sampling.penalized) return;
    const slot = this.free.pop();
    // The scheduler runs at most size sequences at once, so this is a bug, not a busy server.
    if (slot === undefined) throw new Error(`no free penalty slot among ${this.size}: more sequences run than a step carries`);
    seq.penaltySlot = slot;
    seq.penaltyRestart = true;
  }

  release(seq: Sequence): void {
    if (seq.penaltySlot < 0) return;
    this.free.push(seq.penaltySlot);
    seq.penaltySlot = -1;
    seq.penaltyRestart = false;
  }
}
