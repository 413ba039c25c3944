// The serving benchmark's engine-only run: the same model, flags and
// workload through Engine.submit() in this process, no HTTP, so the HTTP
// figures can be read as a share of what the engine alone delivers.

import type { LoadedModel } from '../app/load-model.js';
import type { RequestRecord } from './serve-stats.js';

export interface EngineWorkload {
  maxTokens: number;
  temperature: number;
  seed: number;
}

/** Runtime step times in milliseconds, recorded while installed. */
export interface StepTimes {
  all: number[];
  /** Steps where every sequence decoded one token (no prompt chunk). */
  decode: number[];
  uninstall(): void;
}

/** Times each runtime step through the engine's onStep hook (the one the server's step metrics use). */
export function timeSteps(model: LoadedModel): StepTimes {
  const engine = model.engine;
  const previous = engine.onStep;
  const times: StepTimes = {
    all: [],
    decode: [],
    uninstall: () => {
      engine.onStep = previous;
    },
  };
  engine.onStep = (runtimeMs, seqs, tokens) => {
    previous?.(runtimeMs, seqs, tokens);
    times.all.push(runtimeMs);
    if (tokens === seqs) times.decode.push(runtimeMs);
  };
  return times;
}

/**
 * Submits one request and records it as the HTTP client would: TTFT from
 * submit to the first delta with token ids, one token time per such delta.
 * Refusals (EngineError, e.g. a full queue) and error finishes fail it.
 */
export async function sendToEngine(model: LoadedModel, id: string, prompt: number[], w: EngineWorkload, signal?: AbortSignal): Promise<RequestRecord> {
  const rec: RequestRecord = { ok: false, start: performance.now(), end: 0, tokenTimes: [], completionTokens: 0, promptTokens: prompt.length, streamed: true };
  try {
    const deltas = model.engine.submit({
      id,
      promptTokens: prompt,
      sampling: { temperature: w.temperature, seed: w.seed },
      stop: { maxTokens: w.maxTokens, ignoreEos: true },
    });
    for await (const d of deltas) {
      if (d.tokenIds.length > 0) {
        rec.tokenTimes.push(performance.now());
        rec.completionTokens += d.tokenIds.length;
      }
      if (d.finish?.reason === 'error' || d.finish?.reason === 'abort') rec.error = `${d.finish.reason}: ${d.finish.error ?? 'no reason given'}`;
      if (signal?.aborted) {
        rec.error ??= 'aborted';
        break;
      }
    }
    rec.ok = rec.error === undefined;
  } catch (e) {
    rec.error = (e as Error).message;
  }
  rec.end = performance.now();
  return rec;
}
