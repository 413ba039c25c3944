/** What the engine needs from a runtime: native/index.ts's Runtime satisfies it; tests use fakes. */
export interface StepRuntime {
  readonly info: {
    numBlocks: number;
    blockSize: number;
    maxPositions: number;
    vocabSize: number;
    maxNumTokens: number;
    maxNumSeqs: number;
    /** Where it runs (the prefix cache's default for generated tokens' blocks depends on it); fakes may leave it out. */
    device?: 'cpu' | 'cuda';
  };
  step(batch: import('../native/index.js').StepBatch, fillMasks?: import('../native/index.js').MaskFiller): Promise<import('../native/index.js').StepResult>;
  /**
   * step() may be called again before the last step's result is in, and understands
   * StepBatch.feed (async scheduling). Runtimes without it run one step at a time.
   */
  readonly pipelined?: boolean;
}

export interface SamplingOptions {
  /** 0 = greedy. Default 1. */
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  /** Same seed, same tokens, under any load. Without one the engine draws a random seed. */
  seed?: number | bigint;
  /** Top logprobs per token (0..20); undefined = no logprobs at all. */
  logprobs?: number;
  /** Added to these tokens' logits before sampling: [token id, bias] pairs. */
  logitBias?: [number, number][];
  /** OpenAI's, over generated tokens: subtracted once from each token already generated. Default 0. */
  presencePenalty?: number;
  /** OpenAI's, over generated tokens: subtracted per occurrence. Default 0. */
  frequencyPenalty?: number;
  /** vLLM's, over prompt and generated tokens: > 1 discourages repeats. Default 1. */
  repetitionPenalty?: number;
}

export interface StopOptions {
  /** Most tokens to generate. */
  maxTokens: number;
  /** Text that ends generation; never streamed and trimmed from the output. */
  stop?: string[];
  /** Token ids that end generation (beside the model's EOS ids). */
  stopTokenIds?: number[];
  /** Generate past EOS (benchmarks). */
  ignoreEos?: boolean;
  /** Keep the matched stop string at the end of the output (vLLM's include_stop_str_in_output). */
  includeStopStr?: boolean;
  /** Until this many tokens are out, EOS and stop token ids are never sampled and stop strings do not match (vLLM's min_tokens). */
  minTokens?: number;
}

/** How generated tokens become text. */
export interface OutputOptions {
  /** Leave special tokens (say <|im_end|> generated past EOS) out of the text. Default true. */
  skipSpecialTokens?: boolean;
}

/**
 * Constrains what a sequence may generate (guided decoding): a grammar
 * matcher that says which tokens may come next and follows the tokens chosen.
 * The engine owns it from submit and disposes of it when the request ends.
 * The sampled token is taken by the grammar at the next fill, which runs
 * while the forward pass does, so following the grammar adds nothing to the
 * step between two forward passes.
 */
export interface TokenGuide {
  /**
   * Takes the token advance() recorded, then writes the tokens allowed next
   * into row: bit (id % 32) of word (id >> 5) set = allowed; row has
   * ceil(vocab / 32) words. False when the grammar refused the recorded token
   * (the request cannot go on); row is then not written.
   */
  fillNextTokenBitmask(row: Int32Array): boolean;
  /** The token sampled for this sequence. A stop token sampled under a mask ends the grammar: the engine stops there. */
  advance(token: number): void;
  dispose(): void;
}

export interface EngineRequest {
  /** Caller's id; must be unique among live requests. */
  id: string;
  promptTokens: number[];
  sampling?: SamplingOptions;
  stop: StopOptions;
  output?: OutputOptions;
  /** Guided decoding: only tokens this allows are sampled. */
  guide?: TokenGuide;
  /** Each delta carries the raw logits its token was sampled from: the first, those after the last prompt token (KServe's infer). */
  returnLogits?: boolean;
}

export interface TokenLogprob {
  token: number;
  logprob: number;
  top: { token: number; logprob: number }[];
}

export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

/** One step's news for a request. */
export interface RequestDelta {
  tokenIds: number[];
  text: string;
  logprobs?: TokenLogprob[];
  /** [vocab] raw logits the token was sampled from, when the request asked (returnLogits). */
  logits?: Float32Array;
  /** Set on the last delta. */
  finish?: RequestFinish;
}

export interface RequestFinish {
  reason: FinishReason;
  /** The stop string or stop token id that matched, when reason is 'stop' because of one. */
  stopReason?: string | number;
  error?: string;
  promptTokens: number;
  completionTokens: number;
  cachedPromptTokens: number;
  timing: RequestTiming;
}

/** Milliseconds since the engine's clock origin (performance.now()). */
export interface RequestTiming {
  arrival: number;
  firstScheduled: number | null;
  firstToken: number | null;
  finished: number;
}

export class EngineError extends Error {
  constructor(message: string, readonly code: 'prompt_too_long' | 'kv_cache_too_small' | 'duplicate_id' | 'queue_full' | 'bad_request' | 'shutdown') {
    super(message);
  }
}
