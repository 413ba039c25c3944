import type { IncrementalDetokenizer } from '../tokenizers/incremental-detokenizer.js';
import type { BlockOwner } from './block-manager.js';
import type { OutputStream } from './output-stream.js';
import type { StopChecker } from './stop-checker.js';
import type { SamplingRow } from './sampling-columns.js';
import type { RequestDelta, RequestTiming, StopOptions, TokenGuide } from './types.js';

/** A request's sampling settings as the runtime takes them; penaltySlot and maskRow are the step's. */
export interface ResolvedSampling extends Omit<SamplingRow, 'penaltySlot' | 'maskRow'> {
  /** -1: no logprobs; 0..20: the chosen token's logprob plus this many top ones. */
  numLogprobs: number;
  /** Any penalty is on: the sequence needs a penalty slot while it runs. */
  penalized: boolean;
  /** logit_bias: token ids and the biases added to their logits; empty: none. */
  biasIds: Int32Array;
  biasValues: Float32Array;
  /** Banned until min_tokens are out: EOS (unless ignored) and the stop token ids; empty without min_tokens. */
  minTokensBans: Int32Array;
}

export type SequenceStatus = 'waiting' | 'running' | 'finished';

/**
 * One request inside the engine. numComputedTokens counts tokens whose KV is
 * in the cache; the scheduler feeds a sequence tokens until it catches up
 * with numTokens, which covers prefill, chunked prefill, decode and prefix hits.
 */
export class Sequence implements BlockOwner {
  readonly tokens: number[];
  readonly promptLength: number;
  numComputedTokens = 0;
  blockTable: number[] = [];
  numHashedBlocks = 0;
  lastBlockHash: number | null = null;
  status: SequenceStatus = 'waiting';
  /** Admission order among running sequences; the newest is preempted first. */
  admittedAt = 0;
  cachedPromptTokens = 0;
  cancelled = false;
  /** Why the server (not the client) cancelled it; reaches the client as an error. */
  cancelReason: string | undefined = undefined;
  /** Steps on the runtime that carry it (two under async scheduling). */
  inFlight = 0;
  /**
   * Tokens sampled by steps still on the runtime, not yet in tokens: async scheduling plans the
   * next step as if they were there, and the runtime feeds them to it (StepBatch.feed).
   */
  pending = 0;
  /** The pending token is its last (max tokens, the context): nothing to schedule after it. */
  finalPending = false;
  /** Its index in the last step launched, where that step samples for it; the next step's feed. */
  feedIndex = -1;
  /** Tokens this sequence contributes to the current step, and which step that is. */
  chunkTokens = 0;
  scheduledStep = 0;
  /** The runtime's penalty row this sequence holds while running (engine/penalty-slots.ts); -1 = none. */
  penaltySlot = -1;
  /** The slot was just taken: the next step sends the history to restart it. */
  penaltyRestart = false;
  /** Its grammar refused the last token (found while filling masks); the step's result ends it with an error. */
  guideRefused = false;
  /** Each delta carries the logits its token was sampled from (EngineRequest.returnLogits). */
  returnLogits = false;
  readonly timing: RequestTiming;

  constructor(
    readonly id: string,
    prompt: number[],
    readonly sampling: ResolvedSampling,
    readonly stop: StopOptions,
    readonly stopIds: Set<number>,
    readonly detokenizer: IncrementalDetokenizer,
    readonly stopChecker: StopChecker,
    readonly stream: OutputStream<RequestDelta>,
    now: number,
    readonly guide?: TokenGuide,
  ) {
    this.tokens = prompt.slice();
    this.promptLength = prompt.length;
    this.timing = { arrival: now, firstScheduled: null, firstToken: null, finished: now };
  }

  get numTokens(): number {
    return this.tokens.length;
  }

  get numOutputTokens(): number {
    return this.tokens.length - this.promptLength;
  }

  /** Tokens there will be once the steps on the runtime are in: tokens plus pending ones. */
  get numPlannedTokens(): number {
    return this.tokens.length + this.pending;
  }

  /** Whether, at numTokens tokens, it has reached its length limit: max tokens out, or the context. */
  atLengthLimit(numTokens: number, maxPositions: number): boolean {
    return numTokens - this.promptLength >= this.stop.maxTokens || numTokens >= maxPositions;
  }

  /** Tokens still to feed the runtime before the next sample (a pending one included). */
  get numUncomputed(): number {
    return this.tokens.length + this.pending - this.numComputedTokens;
  }

  get isDecoding(): boolean {
    return this.numComputedTokens >= this.promptLength;
  }
}
