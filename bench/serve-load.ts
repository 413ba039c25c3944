// The serving benchmark's load discipline, shared by the HTTP run and the
// engine-only run: requests start at their arrival offsets, but never more
// than `concurrency` at once (a request that arrives while all slots are
// taken starts when one frees).

import type { RequestRecord } from './serve-stats.js';

export interface LoadShape {
  /** Most requests in flight; Infinity for no cap. */
  concurrency: number;
  /** Arrival offset of each request in milliseconds from the start (poissonOffsets); its length is the request count. */
  offsetsMs: number[];
}

export interface LoadResult {
  records: RequestRecord[];
  /** performance.now() milliseconds: the first send and the last completion. */
  startMs: number;
  endMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Sends request i with send(i) for every i in order and waits for all.
 * A send that throws counts as a failed request. After stop() aborts, no
 * further request starts; the result holds only those that did.
 */
export async function driveLoad(shape: LoadShape, send: (i: number) => Promise<RequestRecord>, signal?: AbortSignal): Promise<LoadResult> {
  const n = shape.offsetsMs.length;
  const records: RequestRecord[] = [];
  const pending: Promise<void>[] = [];
  let inFlight = 0;
  let slotFreed: (() => void) | null = null;
  const startMs = performance.now();
  for (let i = 0; i < n && !signal?.aborted; i++) {
    const wait = startMs + shape.offsetsMs[i] - performance.now();
    if (wait > 0) await sleep(wait);
    while (inFlight >= shape.concurrency) await new Promise<void>((r) => (slotFreed = r));
    if (signal?.aborted) break;
    inFlight++;
    const sentAt = performance.now();
    pending.push(
      send(i)
        .catch((e: unknown): RequestRecord => {
          const now = performance.now();
          return { ok: false, error: (e as Error)?.message ?? String(e), start: sentAt, end: now, tokenTimes: [], completionTokens: 0, promptTokens: 0, streamed: false };
        })
        .then((r) => {
          records.push(r);
          inFlight--;
          const wake = slotFreed;
          slotFreed = null;
          wake?.();
        }),
    );
  }
  await Promise.all(pending);
  let endMs = startMs;
  for (const r of records) endMs = Math.max(endMs, r.end);
  return { records, startMs, endMs };
}
