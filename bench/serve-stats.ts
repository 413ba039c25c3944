// Per-request latency figures and their aggregation for the serving benchmark
// (bench/serve.ts). Pure arithmetic: no I/O, no clocks.

/** What one request's client saw. Times are performance.now() milliseconds. */
export interface RequestRecord {
  ok: boolean;
  /** The first failure's message when !ok. */
  error?: string;
  /** When the request was sent (HTTP) or submitted (engine). */
  start: number;
  /** When its last byte (HTTP) or its finishing delta (engine) arrived. */
  end: number;
  /** Arrival time of each event that carried at least one token; empty when not streamed. */
  tokenTimes: number[];
  /** Exact output tokens (the usage chunk, or the engine's counted token ids); events counted when unknown. */
  completionTokens: number;
  promptTokens: number;
  streamed: boolean;
}

/** One request's latencies in milliseconds; undefined where the request gives no such figure. */
export interface RequestLatency {
  ttft: number;
  e2e: number;
  /** (e2e - ttft) / (tokens - 1); undefined with fewer than two tokens. */
  tpot: number | undefined;
  itls: number[];
}

export interface Summary {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  count: number;
}

/**
 * The p-th percentile (0..100) of ascending values, interpolating linearly
 * between the two nearest ranks (rank = p/100 * (n-1)); NaN for no values.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = (Math.min(Math.max(p, 0), 100) / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

export function percentile(values: ArrayLike<number>, p: number): number {
  return percentileSorted(Float64Array.from(values).sort(), p);
}

/** Mean and p50/p90/p99; NaN fields for no values (JSON writes them as null). */
export function summarize(values: ArrayLike<number>): Summary {
  // A typed array sorts numerically and copies once, without boxing half a million ITLs.
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i];
  return {
    mean: sorted.length ? sum / sorted.length : NaN,
    p50: percentileSorted(sorted, 50),
    p90: percentileSorted(sorted, 90),
    p99: percentileSorted(sorted, 99),
    count: sorted.length,
  };
}

/**
 * TTFT is send to the first token event; ITLs are the gaps between token
 * events (an event carrying several tokens counts as one gap); TPOT spreads
 * the time after the first token over the remaining tokens. A request that
 * was not streamed knows only its end: TTFT = E2E and no ITLs.
 */
export function requestLatency(r: RequestRecord): RequestLatency {
  const e2e = r.end - r.start;
  const t = r.tokenTimes;
  const ttft = r.streamed && t.length > 0 ? t[0] - r.start : e2e;
  const itls: number[] = [];
  for (let i = 1; i < t.length; i++) itls.push(t[i] - t[i - 1]);
  const tokens = r.completionTokens > 0 ? r.completionTokens : t.length;
  const tpot = r.streamed && tokens > 1 ? (e2e - ttft) / (tokens - 1) : undefined;
  return { ttft, e2e, tpot, itls };
}

export interface RunStats {
  completed: number;
  failed: number;
  firstError: string | null;
  /** Seconds from the first send to the last completion. */
  durationS: number;
  requestsPerS: number;
  outputTokPerS: number;
  totalTokPerS: number;
  promptTokens: number;
  outputTokens: number;
  /** Milliseconds. */
  ttft: Summary;
  tpot: Summary;
  itl: Summary;
  e2e: Summary;
  /** ITL p99 of the gaps ending in each tenth of the run: shows whether the tail is the start-up burst or steady. */
  itlP99ByTenth: number[];
}

/** Aggregates a run's records; only completed requests count toward tokens and latencies. */
export function runStats(records: RequestRecord[], durationMs: number): RunStats {
  const ttft: number[] = [];
  const tpot: number[] = [];
  const itl: number[] = [];
  const e2e: number[] = [];
  let completed = 0;
  let promptTokens = 0;
  let outputTokens = 0;
  let firstError: string | null = null;
  for (const r of records) {
    if (!r.ok) {
      firstError ??= r.error ?? 'unknown error';
      continue;
    }
    completed++;
    promptTokens += r.promptTokens;
    outputTokens += r.completionTokens;
    const l = requestLatency(r);
    ttft.push(l.ttft);
    e2e.push(l.e2e);
    if (l.tpot !== undefined) tpot.push(l.tpot);
    for (const g of l.itls) itl.push(g);
  }
  const s = durationMs / 1000;
  let t0 = Infinity;
  for (const r of records) if (r.ok) t0 = Math.min(t0, r.start);
  const tenths: number[][] = Array.from({ length: 10 }, () => []);
  for (const r of records) {
    if (!r.ok) continue;
    for (let i = 1; i < r.tokenTimes.length; i++) {
      const k = Math.min(9, Math.max(0, Math.floor(((r.tokenTimes[i] - t0) / durationMs) * 10)));
      tenths[k].push(r.tokenTimes[i] - r.tokenTimes[i - 1]);
    }
  }
  return {
    itlP99ByTenth: tenths.map((t) => percentile(t, 99)),
    completed,
    failed: records.length - completed,
    firstError,
    durationS: s,
    requestsPerS: s > 0 ? completed / s : NaN,
    outputTokPerS: s > 0 ? outputTokens / s : NaN,
    totalTokPerS: s > 0 ? (promptTokens + outputTokens) / s : NaN,
    promptTokens,
    outputTokens,
    ttft: summarize(ttft),
    tpot: summarize(tpot),
    itl: summarize(itl),
    e2e: summarize(e2e),
  };
}
