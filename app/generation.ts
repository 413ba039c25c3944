import { randomUUID } from 'node:crypto';

import { EngineError, type OutputOptions, type RequestDelta, type RequestFinish, type SamplingOptions, type StopOptions, type TokenGuide } from '../engine/types.js';
import type { ServerDeps } from './deps.js';
import { ApiError, badRequest } from './errors.js';

/** One choice: an engine request and which prompt it answers. */
export interface Choice {
  index: number;
  promptIndex: number;
  requestId: string;
  deltas: AsyncIterable<RequestDelta>;
}

export interface GenerationParams {
  sampling: SamplingOptions;
  stop: Omit<StopOptions, 'maxTokens'>;
  output: OutputOptions;
  /** Per prompt. */
  maxTokens: number[];
  n: number;
  /** One per choice (index order) when the output is guided; the engine owns each once its request is submitted. */
  guides?: TokenGuide[];
}

export function newId(prefix: string): string {
  return `${prefix}-${randomUUID().replace(/-/g, '')}`;
}

/** An engine refusal as the API error a client gets (429 queue full, 503 shutdown, else 400); anything else as it is. */
export function toApiError(e: unknown): unknown {
  if (!(e instanceof EngineError)) return e;
  switch (e.code) {
    case 'queue_full':
      return new ApiError(429, 'the server is busy: too many requests are waiting; retry shortly', 'rate_limit_error', null, 'queue_full', { 'Retry-After': '1' });
    case 'shutdown':
      return new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    default:
      return badRequest(e.message, null, e.code);
  }
}

/** Submits n choices per prompt; if any cannot start, the ones started are cancelled. */
export function startChoices(deps: ServerDeps, id: string, prompts: number[][], params: GenerationParams): Choice[] {
  const total = prompts.length * params.n;
  if (total > deps.config.maxQueue) {
    params.guides?.forEach((g) => g.dispose());
    throw badRequest(
      `this request needs ${total} sequences (${prompts.length} prompts x n=${params.n}) but the server queues at most ${deps.config.maxQueue} (--max-queue); split it into smaller requests`,
      prompts.length > 1 ? 'prompt' : 'n',
      'too_many_sequences',
    );
  }
  const choices: Choice[] = [];
  try {
    prompts.forEach((prompt, p) => {
      for (let i = 0; i < params.n; i++) {
        const index = p * params.n + i;
        const requestId = `${id}-${index}`;
        const seed = params.sampling.seed === undefined ? undefined : BigInt(params.sampling.seed) + BigInt(index);
        const deltas = deps.engine.submit({
          id: requestId,
          promptTokens: prompt,
          sampling: { ...params.sampling, seed },
          stop: { ...params.stop, maxTokens: params.maxTokens[p] },
          output: params.output,
          guide: params.guides?.[index],
        });
        choices.push({ index, promptIndex: p, requestId, deltas });
      }
    });
  } catch (e) {
    cancelAll(deps, choices);
    params.guides?.slice(choices.length).forEach((g) => g.dispose());
    throw toApiError(e);
  }
  return choices;
}

/** Cancels every choice; why (when the server, not the client, ends them) reaches the client as an error. */
export function cancelAll(deps: ServerDeps, choices: Choice[], why?: string): void {
  for (const c of choices) deps.engine.cancel(c.requestId, why);
}

/** Observes a choice's deltas for the latency metrics; returns the deltas unchanged. */
export async function* observed(deps: ServerDeps, deltas: AsyncIterable<RequestDelta>): AsyncIterable<RequestDelta> {
  let last: number | null = null;
  for await (const d of deltas) {
    const now = performance.now();
    if (d.tokenIds.length > 0) {
      if (last !== null) deps.metrics.itl.observe((now - last) / 1000);
      last = now;
      deps.metrics.generationTokens.inc(d.tokenIds.length);
    }
    if (d.finish) record(deps, d.finish);
    yield d;
  }
}

function record(deps: ServerDeps, f: RequestFinish): void {
  if (f.timing.firstToken !== null) deps.metrics.ttft.observe((f.timing.firstToken - f.timing.arrival) / 1000);
  if (f.reason !== 'abort' && f.reason !== 'error') deps.metrics.e2e.observe((f.timing.finished - f.timing.arrival) / 1000);
}

/** The finish_reason clients see; only stop and length reach them (see failureOf for the rest). */
export function finishReason(f: RequestFinish): 'stop' | 'length' {
  return f.reason === 'length' ? 'length' : 'stop';
}

/**
 * The error a choice that did not finish gets instead of a finish_reason: a
 * failed step is a 500; a request the server cut off (shutdown) a 503.
 */
export function failureOf(f: RequestFinish): ApiError | null {
  if (f.reason === 'error') return new ApiError(500, `generation failed: ${f.error ?? 'unknown error'}`, 'server_error', null, 'generation_failed');
  if (f.reason === 'abort') return new ApiError(503, f.error ?? 'the request was cancelled before it finished', 'server_error', null, 'request_cancelled');
  return null;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/** Prompt tokens count once per prompt, completion tokens once per choice. */
export function usageOf(prompts: number[][], finishes: RequestFinish[], choices: Choice[]): Usage {
  const prompt = prompts.reduce((s, p) => s + p.length, 0);
  const completion = finishes.reduce((s, f) => s + f.completionTokens, 0);
  const cached = finishes.filter((_, i) => choices[i].index % (choices.length / prompts.length) === 0).reduce((s, f) => s + f.cachedPromptTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
}
