import { randomBytes } from 'node:crypto';

import { IncrementalDetokenizer } from '../tokenizers/incremental-detokenizer.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { MaskFiller, StepBatch, StepResult } from '../native/index.js';
import { BatchBuilder } from './batch-builder.js';
import { BlockManager } from './block-manager.js';
import { OutputStream } from './output-stream.js';
import { COLUMN_DEFAULTS } from './sampling-columns.js';
import { Scheduler, type ScheduledChunk } from './scheduler.js';
import { Sequence, type ResolvedSampling } from './sequence.js';
import { StopChecker } from './stop-checker.js';
import { EngineError, type EngineRequest, type StopOptions, type FinishReason, type RequestDelta, type StepRuntime, type TokenLogprob } from './types.js';

export interface EngineConfig {
  /** Token budget of one step. Default: the runtime's maxNumTokens. */
  maxNumBatchedTokens?: number;
  /** Sequences per step. Default: the runtime's maxNumSeqs. */
  maxNumSeqs?: number;
  /** Longest prompt chunk per sequence per step. Default: the token budget. */
  maxPrefillChunk?: number;
  /** Most prompt tokens in a step that also carries decodes. Default: the token budget. */
  maxPrefillTokensWithDecodes?: number;
  /** Requests waiting for admission before submit refuses (queue_full). Default unbounded. */
  maxWaiting?: number;
  enablePrefixCache?: boolean;
  /**
   * Whether the prefix cache keeps blocks of generated tokens for later prompts (multi-turn reuse).
   * Default: on where the runtime is not CUDA (the CPU's kernels compute every row alike); off on CUDA, whose batch-invariant
   * default computes generated tokens with the decode kernel and prompt rows with the prefill
   * kernel, so a reused block would give a request other bits than computing it (the server turns
   * it on with --no-batch-invariant).
   */
  cacheGeneratedBlocks?: boolean;
  /**
   * Async scheduling (vLLM's --async-scheduling): step N + 1 is scheduled and launched while the
   * runtime runs step N, its decode tokens fed on the runtime from step N's samples, so the host's
   * work between steps overlaps the device's. Needs a pipelined runtime; steps run one at a time
   * while a grammar-guided request is live or KV blocks are short. Default true.
   */
  asyncScheduling?: boolean;
}

/** A step on the runtime: its sequences, how far each is computed once it is done, and its result. */
interface LaunchedStep {
  chunks: ScheduledChunk[];
  computedAfter: Int32Array;
  sampled: Uint8Array;
  masked: boolean;
  tokens: number;
  launchedAt: number;
  result: Promise<StepResult>;
  /** Its result has rejected (a refused batch rejects at once): the next step must not feed from it. */
  failed: boolean;
}

/** Gauges and counters for metrics. */
export interface EngineStats {
  waiting: number;
  running: number;
  kvBlocksUsed: number;
  kvBlocksFree: number;
  kvBlocksTotal: number;
  prefixCacheHitTokens: number;
  preemptions: number;
  steps: number;
}

/**
 * The in-flight batching engine: owns every request from submit to its last
 * token and drives the runtime one step at a time while anything is waiting
 * or running. Pure TypeScript; the only I/O is the runtime's step().
 */
export class Engine {
  readonly blocks: BlockManager;
  private readonly scheduler: Scheduler;
  private readonly builder = new BatchBuilder();
  private readonly live = new Map<string, Sequence>();
  private readonly eosIds: Set<number>;
  private loop: Promise<void> | null = null;
  private steps = 0;
  private readonly maxWaiting: number;
  /** Steps are launched one ahead (EngineConfig.asyncScheduling, on a pipelined runtime). */
  readonly asyncScheduling: boolean;
  /** Live requests under a grammar: their masks need the last token on the host, so steps run one at a time. */
  private guidedLive = 0;
  private lastResultAt = 0;
  /**
   * Called after each step (metrics): runtime milliseconds (from its launch, or from the previous
   * step's result when it was launched while that one ran), sequences and tokens it carried.
   */
  onStep: ((runtimeMs: number, seqs: number, tokens: number) => void) | null = null;
  /**
   * Engine-side milliseconds of the last step by phase, excluding the runtime. text: detokenizing
   * and streaming the previous step's tokens, which runs while this step is on the device.
   */
  lastPhaseMs = { schedule: 0, build: 0, process: 0, text: 0 };
  /** Tokens of the last step whose text is not out yet (deferredText). */
  private deferred: { seq: Sequence; token: number; delta: RequestDelta }[] = [];

  /** Rows of the model's logits (lm_head), which a grammar's masks cover. */
  get vocabSize(): number {
    return this.runtime.info.vocabSize;
  }

  /** Engine-side milliseconds of the last step between the runtime's steps (schedule + build + process). */
  get lastStepOverheadMs(): number {
    const p = this.lastPhaseMs;
    return p.schedule + p.build + p.process;
  }

  constructor(private readonly runtime: StepRuntime, private readonly tokenizer: Tokenizer, config: EngineConfig = {}) {
    const info = runtime.info;
    this.blocks = new BlockManager(info.numBlocks, info.blockSize, config.enablePrefixCache ?? true, config.cacheGeneratedBlocks ?? info.device !== 'cuda');
    const maxNumBatchedTokens = Math.min(config.maxNumBatchedTokens ?? info.maxNumTokens, info.maxNumTokens);
    this.scheduler = new Scheduler(this.blocks, {
      maxNumBatchedTokens,
      maxNumSeqs: Math.min(config.maxNumSeqs ?? info.maxNumSeqs, info.maxNumSeqs),
      maxPrefillChunk: config.maxPrefillChunk ?? maxNumBatchedTokens,
      maxPrefillTokensWithDecodes: config.maxPrefillTokensWithDecodes ?? maxNumBatchedTokens,
      penaltySlots: info.maxNumSeqs,
    });
    this.eosIds = new Set(tokenizer.special.eos);
    this.maxWaiting = config.maxWaiting ?? Infinity;
    this.asyncScheduling = (config.asyncScheduling ?? true) && runtime.pipelined === true;
  }

  /** Starts a request; iterate the result for its deltas. Throws EngineError for requests that can never run. */
  submit(req: EngineRequest): AsyncIterable<RequestDelta> {
    if (this.refusing !== null) throw new EngineError(this.refusing, 'shutdown');
    this.check(req);
    const stream = new OutputStream<RequestDelta>(() => this.cancel(req.id));
    const seq = new Sequence(
      req.id,
      req.promptTokens,
      resolveSampling(req.sampling, req.stop, this.eosIds),
      req.stop,
      new Set(req.stop.stopTokenIds ?? []),
      new IncrementalDetokenizer(this.tokenizer, { skipSpecialTokens: req.output?.skipSpecialTokens ?? true }, req.promptTokens),
      new StopChecker(req.stop.stop ?? []),
      stream,
      performance.now(),
      req.guide,
    );
    seq.returnLogits = req.returnLogits ?? false;
    if (seq.guide) this.guidedLive++;
    this.live.set(req.id, seq);
    this.scheduler.add(seq);
    this.kick();
    return stream;
  }

  private check(req: EngineRequest): void {
    const info = this.runtime.info;
    if (this.live.has(req.id)) throw new EngineError(`request id ${req.id} is already running`, 'duplicate_id');
    if (req.promptTokens.length === 0) throw new EngineError('the prompt is empty', 'bad_request');
    if (!(req.stop.maxTokens >= 1)) throw new EngineError('max tokens must be at least 1', 'bad_request');
    const checkIds = (ids: Iterable<number>, what: string) => {
      for (const t of ids)
        if (!Number.isInteger(t) || t < 0 || t >= info.vocabSize) throw new EngineError(`${what} ${t} is outside the vocabulary of ${info.vocabSize}`, 'bad_request');
    };
    checkIds(req.promptTokens, 'prompt token');
    checkIds((req.sampling?.logitBias ?? []).map(([t]) => t), 'logit bias token');
    checkIds(req.stop.stopTokenIds ?? [], 'stop token');
    const total = req.promptTokens.length + req.stop.maxTokens;
    if (req.promptTokens.length >= info.maxPositions)
      throw new EngineError(`the prompt has ${req.promptTokens.length} tokens; the model's context is ${info.maxPositions}`, 'prompt_too_long');
    const needed = this.blocks.blocksFor(Math.min(total, info.maxPositions));
    if (needed > info.numBlocks)
      throw new EngineError(`the request needs ${needed} KV blocks (${Math.min(total, info.maxPositions)} tokens) but the cache holds ${info.numBlocks}`, 'kv_cache_too_small');
    if (this.scheduler.waiting.length >= this.maxWaiting) throw new EngineError('the queue is full', 'queue_full');
  }

  /**
   * Ends a request; its blocks are free by the next step. Unknown ids are
   * ignored. why, when the server (not the client) cut it off, reaches the
   * client as the finish's error.
   */
  cancel(id: string, why?: string): void {
    const seq = this.live.get(id);
    if (!seq || seq.status === 'finished') return;
    seq.cancelled = true;
    seq.cancelReason ??= why;
    if (seq.inFlight === 0) this.finish(seq, 'abort', seq.cancelReason);
  }

  private refusing: string | null = null;

  /** From now on submit() throws EngineError('shutdown') with this message (the server is going away). */
  stopAccepting(why: string): void {
    this.refusing = why;
  }

  /** Ends every live request (shutdown after the grace period), saying why. */
  cancelAll(why: string): void {
    for (const id of [...this.live.keys()]) this.cancel(id, why);
  }

  stats(): EngineStats {
    return {
      waiting: this.scheduler.waiting.length,
      running: this.scheduler.running.filter((s) => s.status === 'running').length,
      kvBlocksUsed: this.blocks.numUsedBlocks,
      kvBlocksFree: this.blocks.numFreeBlocks,
      kvBlocksTotal: this.blocks.numBlocks,
      prefixCacheHitTokens: this.blocks.prefixCacheHitTokens,
      preemptions: this.scheduler.preemptions,
      steps: this.steps,
    };
  }

  /** Resolves when nothing is waiting or running. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /**
   * Starts the step loop if it is idle. The first step waits one turn of the
   * event loop: requests that arrive together (a burst of connections read in
   * one poll) then share it, instead of the first running alone while the
   * others are parsed and the device waits for them.
   */
  private kick(): void {
    if (this.loop) return;
    this.loop = new Promise<void>((r) => setImmediate(r))
      .then(() => this.run())
      .finally(() => {
        this.loop = null;
        // A request submitted after run() found no work but before this line saw a live loop and did not kick.
        if (this.scheduler.hasWork) this.kick();
      });
  }

  /**
   * The step loop. Under async scheduling the next step is scheduled and launched before the
   * last one's result is awaited: the host's scheduling, batch building and result processing
   * run while the device computes. Otherwise (and whenever mayScheduleAhead says no) each step
   * is scheduled after the last one's result is processed.
   */
  private async run(): Promise<void> {
    let running: LaunchedStep | null = null;
    while (running || this.scheduler.hasWork) {
      let next: LaunchedStep | null = null;
      if (running === null || this.mayScheduleAhead(running)) {
        const t0 = performance.now();
        const chunks = this.scheduler.schedule(running !== null);
        if (chunks.length > 0) next = this.launch(chunks, t0);
        else if (running === null) {
          this.flushDeferredText();
          // Nothing fits even with every running sequence preempted: the head request can never run.
          const head = this.scheduler.waiting[0];
          if (head) this.finish(head, 'error', 'the request does not fit in the KV cache');
          continue;
        }
      }
      // The last step's text goes out while the device runs: detokenizing is off the path between steps.
      const t = performance.now();
      this.flushDeferredText();
      this.lastPhaseMs.text = performance.now() - t;
      if (running) await this.complete(running);
      running = next;
    }
    this.flushDeferredText();
  }

  /** Whether the next step may be scheduled while `running` is on the runtime. */
  private mayScheduleAhead(running: LaunchedStep): boolean {
    return this.asyncScheduling && !running.masked && !running.failed && this.guidedLive === 0 && !this.scheduler.lackedRoom;
  }

  /**
   * Builds and launches a step. Its sequences count as computed through it from here on, and a
   * sequence it samples for holds a pending token, so the next step can be scheduled before its result.
   */
  private launch(chunks: ScheduledChunk[], t0: number): LaunchedStep | null {
    for (const seq of chunks) seq.timing.firstScheduled ??= t0;
    const tb = performance.now();
    let batch: StepBatch;
    let result: Promise<StepResult>;
    try {
      batch = this.builder.build(chunks);
      result = this.runtime.step(batch, batch.numMaskRows ? this.maskFiller(chunks, batch) : undefined);
    } catch (e) {
      for (const seq of chunks) this.finish(seq, 'error', `the runtime refused this step: ${(e as Error).message}`);
      return null;
    }
    const t1 = performance.now();
    this.lastPhaseMs.schedule = tb - t0;
    this.lastPhaseMs.build = t1 - tb;
    const computedAfter = new Int32Array(chunks.length);
    const maxPositions = this.runtime.info.maxPositions;
    for (let s = 0; s < chunks.length; s++) {
      const seq = chunks[s];
      seq.inFlight++;
      seq.numComputedTokens += seq.chunkTokens;
      computedAfter[s] = seq.numComputedTokens;
      if (batch.sample[s]) {
        seq.pending++;
        seq.feedIndex = s;
        seq.finalPending = seq.atLengthLimit(seq.numPlannedTokens, maxPositions);
      } else seq.feedIndex = -1;
    }
    const step: LaunchedStep = {
      chunks,
      computedAfter,
      sampled: batch.sample.slice(),
      masked: (batch.numMaskRows ?? 0) > 0,
      tokens: batch.tokenIds.length,
      launchedAt: t1,
      result,
      failed: false,
    };
    // Its rejection is handled in complete(); until then it must not count as unhandled.
    result.then(
      () => undefined,
      () => (step.failed = true),
    );
    return step;
  }

  /** Awaits a launched step's result and hands each sequence its token. */
  private async complete(step: LaunchedStep): Promise<void> {
    let result: StepResult;
    try {
      result = await step.result;
    } catch (e) {
      this.lastResultAt = performance.now();
      // A step launched behind it may carry these sequences' fed tokens; the runtime computes those
      // rows on a placeholder and process() skips them (finished), while its other sequences go on.
      for (const seq of step.chunks) {
        seq.inFlight--;
        this.finish(seq, 'error', `the runtime failed this step: ${(e as Error).message}`);
      }
      return;
    }
    const t2 = performance.now();
    // Its own time on the runtime: from its launch, or from the result before it if it was launched while that ran.
    const runtimeMs = t2 - Math.max(step.launchedAt, this.lastResultAt);
    this.lastResultAt = t2;
    try {
      this.process(step, result, t2);
    } catch (e) {
      // A bug on the host side (detokenizer, stop rules) fails this step's requests, never the loop.
      for (const seq of step.chunks) this.finish(seq, 'error', `the engine failed processing this step: ${(e as Error).message}`);
    }
    this.steps++;
    this.lastPhaseMs.process = performance.now() - t2;
    try {
      this.onStep?.(runtimeMs, step.chunks.length, step.tokens);
    } catch {
      // Metrics must not stop generation.
    }
  }

  /**
   * Detokenizes and streams the tokens process() deferred (the steps' common case: no stop token,
   * no length limit). A stop string found here ends the request at once; if a step on the runtime
   * carries it, that step's token for it is dropped (process() skips finished sequences). Its freed
   * blocks may go to the next step while that step still writes them: the runtime runs steps in
   * launch order, and a step writes only blocks not yet registered in the prefix cache.
   */
  private flushDeferredText(): void {
    const pending = this.deferred;
    this.deferred = [];
    for (const { seq, token, delta } of pending) {
      if (seq.status === 'finished') continue;
      try {
        this.emitText(seq, token, delta);
      } catch (e) {
        this.finish(seq, 'error', `the engine failed processing this step: ${(e as Error).message}`);
      }
    }
  }

  /** Writes the grammar masks of the step's guided sequences, in mask-row order; runs while the forward pass does. */
  private maskFiller(chunks: ScheduledChunk[], batch: StepBatch): MaskFiller {
    const words = Math.ceil(this.runtime.info.vocabSize / 32);
    return (masks) => {
      for (let s = 0; s < chunks.length; s++) {
        const row = batch.maskRow[s];
        if (row < 0) continue;
        const mask = masks.subarray(row * words, (row + 1) * words);
        if (chunks[s].guide!.fillNextTokenBitmask(mask)) continue;
        // Its last token was refused: any token will do for this step, whose result process() discards.
        chunks[s].guideRefused = true;
        mask.fill(-1);
      }
    };
  }

  private process(step: LaunchedStep, result: StepResult, now: number): void {
    const chunks = step.chunks;
    for (let i = 0; i < chunks.length; i++) {
      const seq = chunks[i];
      seq.inFlight--;
      if (seq.status === 'finished') continue;
      if (step.sampled[i]) seq.pending--;
      this.blocks.registerComputed(seq, step.computedAfter[i]);
      if (seq.cancelled) {
        this.finish(seq, 'abort', seq.cancelReason);
        continue;
      }
      if (seq.guideRefused) {
        this.finish(seq, 'error', `guided decoding: the grammar refused token ${seq.tokens.at(-1)}`);
        continue;
      }
      const token = result.tokens[i];
      const V = this.runtime.info.vocabSize;
      const logits = seq.returnLogits && result.logits ? result.logits.slice(i * V, (i + 1) * V) : undefined;
      if (token >= 0) this.accept(seq, token, this.logprobsAt(seq, result, i), now, logits);
    }
  }

  private logprobsAt(seq: Sequence, r: StepResult, i: number): TokenLogprob | undefined {
    if (seq.sampling.numLogprobs < 0) return undefined;
    const top: { token: number; logprob: number }[] = [];
    for (let k = 0; k < seq.sampling.numLogprobs; k++)
      top.push({ token: r.topIds[i * r.topN + k], logprob: r.topLogprobs[i * r.topN + k] });
    return { token: r.tokens[i], logprob: r.logprobs[i], top };
  }

  /** A sampled token: append it, run the stop rules, stream the text. */
  private accept(seq: Sequence, token: number, logprob: TokenLogprob | undefined, now: number, logits?: Float32Array): void {
    seq.guide?.advance(token);
    seq.tokens.push(token);
    seq.timing.firstToken ??= now;
    const delta: RequestDelta = { tokenIds: [token], text: '' };
    if (logprob) delta.logprobs = [logprob];
    if (logits) delta.logits = logits;
    let reason: FinishReason | null = null;
    let stopReason: string | number | undefined;
    // Under a grammar, EOS is allowed only where the grammar is complete, and nothing may follow it, ignore_eos or not.
    const stopToken = this.eosIds.has(token) && (!seq.stop.ignoreEos || seq.guide) ? 'eos' : seq.stopIds.has(token) ? 'id' : null;
    if (stopToken !== null) {
      [reason, stopReason] = ['stop', stopToken === 'id' ? token : undefined];
      // vLLM shows the stop token's own text only with include_stop_str_in_output (and special tokens unskipped).
      if (seq.stop.includeStopStr) delta.text = this.passStopChecker(seq, seq.detokenizer.push(token));
    } else {
      if (seq.atLengthLimit(seq.numTokens, this.runtime.info.maxPositions)) reason = 'length';
      // Nothing but a stop string can end it now: its text waits for the next step's launch.
      if (reason === null) {
        this.deferred.push({ seq, token, delta });
        return;
      }
      stopReason = this.textOf(seq, token, delta);
      if (stopReason !== undefined) reason = 'stop';
    }
    // Text held back (a possible stop string, an incomplete character) is released, unless a stop string matched.
    if (typeof stopReason !== 'string') delta.text += this.passStopChecker(seq, seq.detokenizer.flush()) + seq.stopChecker.flush();
    this.finish(seq, reason, undefined, delta, stopReason);
  }

  /** A deferred token's text: streamed, or the request ended by a stop string it completes. */
  private emitText(seq: Sequence, token: number, delta: RequestDelta): void {
    const matched = this.textOf(seq, token, delta);
    if (matched === undefined) seq.stream.push(delta);
    else this.finish(seq, 'stop', undefined, delta, matched);
  }

  /** Sets delta.text to the token's text (through the stop checker); returns the stop string it completes, if any. */
  private textOf(seq: Sequence, token: number, delta: RequestDelta): string | undefined {
    const piece = seq.detokenizer.push(token);
    // vLLM v1: stop strings count only in text after the first min_tokens tokens.
    if (!seq.stopChecker.active || seq.numOutputTokens <= (seq.stop.minTokens ?? 0)) {
      delta.text = piece;
      return undefined;
    }
    const { send, matched } = seq.stopChecker.add(piece);
    delta.text = send;
    if (matched !== undefined && seq.stop.includeStopStr) delta.text += matched;
    return matched;
  }

  /** Text through the stop checker when it is active (a stop token's own text can complete nothing). */
  private passStopChecker(seq: Sequence, text: string): string {
    return seq.stopChecker.active ? seq.stopChecker.add(text).send : text;
  }

  /** The one place a request ends, however it ends: blocks freed, last delta sent, stream closed. */
  private finish(seq: Sequence, reason: FinishReason, error?: string, last?: RequestDelta, stopReason?: string | number): void {
    if (seq.status === 'finished') return;
    if (seq.guide) this.guidedLive--;
    this.scheduler.remove(seq);
    seq.guide?.dispose();
    this.live.delete(seq.id);
    seq.timing.finished = performance.now();
    const delta = last ?? { tokenIds: [], text: '' };
    delta.finish = {
      reason,
      stopReason,
      error,
      promptTokens: seq.promptLength,
      completionTokens: seq.numOutputTokens,
      cachedPromptTokens: seq.cachedPromptTokens,
      timing: { ...seq.timing },
    };
    seq.stream.push(delta);
    seq.stream.close();
  }
}

function resolveSampling(s: EngineRequest['sampling'] = {}, stop: StopOptions, eosIds: Set<number>): ResolvedSampling {
  const seed = s.seed === undefined ? randomBytes(8).readBigUInt64LE(0) : BigInt.asUintN(64, BigInt(s.seed));
  // A setting left out is off: the column's default (engine/sampling-columns.ts).
  const off = COLUMN_DEFAULTS;
  const penalties = {
    presencePenalty: s.presencePenalty ?? off.presencePenalty,
    frequencyPenalty: s.frequencyPenalty ?? off.frequencyPenalty,
    repetitionPenalty: s.repetitionPenalty ?? off.repetitionPenalty,
  };
  return {
    temperature: s.temperature ?? off.temperature,
    topK: s.topK ?? off.topK,
    topP: s.topP ?? off.topP,
    minP: s.minP ?? off.minP,
    seed,
    numLogprobs: s.logprobs ?? -1,
    ...penalties,
    penalized:
      penalties.presencePenalty !== off.presencePenalty ||
      penalties.frequencyPenalty !== off.frequencyPenalty ||
      penalties.repetitionPenalty !== off.repetitionPenalty,
    biasIds: Int32Array.from((s.logitBias ?? []).map(([id]) => id)),
    biasValues: Float32Array.from((s.logitBias ?? []).map(([, b]) => b)),
    minTokensBans: (stop.minTokens ?? 0) > 0 ? Int32Array.from([...(stop.ignoreEos ? [] : eosIds), ...(stop.stopTokenIds ?? [])]) : new Int32Array(0),
  };
}
