// The serving benchmark's output: a readable summary per run, an optional
// Markdown section for bench/RESULTS.md, and the JSON line scripts read.

import type { RunStats, Summary } from './serve-stats.js';

export interface RunReport {
  name: string;
  stats: RunStats;
  streamed: boolean;
  /** Server CPU seconds per wall second over the measured window; null when unknown. */
  serverCores: number | null;
  /** This process's CPU seconds per wall second (the client, or the whole engine-only process). */
  clientCores: number;
  /** Median runtime step and median all-decode step in ms (engine-only); null when not measured. */
  stepMedianMs?: number | null;
  decodeStepMedianMs?: number | null;
  steps?: number;
  /** The server's event-loop delay over the run (its /metrics), HTTP runs only. */
  eventLoopDelayMs?: { p99: number; max: number } | null;
  clientEventLoopDelayMs?: { p99: number; max: number };
  /** The server's own ITL histogram over the run, cumulative [le seconds, count]: ITL before the network and the client. */
  serverItlBuckets?: [number, number][] | null;
}

export interface BenchReport {
  command: string;
  date: string;
  host: string;
  device: string | null;
  workload: Record<string, unknown>;
  http: RunReport | null;
  engine: RunReport | null;
  /** HTTP output tok/s over engine-only output tok/s. */
  httpEngineOutputRatio: number | null;
  /** A signal stopped the run early. */
  interrupted: boolean;
}

const fmt = (v: number | null | undefined, digits = 2) => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));

function serverItlShares(b: [number, number][]): string {
  const total = b[b.length - 1][1];
  if (!(total > 0)) return 'n/a';
  return b.filter(([le]) => le >= 0.02 && le <= 0.2).map(([le, n]) => `${le * 1000} ms ${((100 * n) / total).toFixed(1)}%`).join(', ');
}

export function formatRun(r: RunReport): string {
  const s = r.stats;
  const row = (label: string, x: string) => `${label.padEnd(34)}${x}`;
  const lat = (label: string, m: Summary) =>
    `${label.padEnd(6)}${[m.mean, m.p50, m.p90, m.p99].map((v) => fmt(v).padStart(11)).join('')}`;
  const lines = [
    `==== ${r.name} ====`,
    row('requests completed / failed:', `${s.completed} / ${s.failed}`),
    ...(s.firstError === null ? [] : [row('first error:', s.firstError)]),
    row('duration (s):', fmt(s.durationS)),
    row('request throughput (req/s):', fmt(s.requestsPerS)),
    row('output token throughput (tok/s):', fmt(s.outputTokPerS, 1)),
    row('total token throughput (tok/s):', fmt(s.totalTokPerS, 1)),
    row('prompt / output tokens:', `${s.promptTokens} / ${s.outputTokens}`),
    row(r.name.startsWith('engine') ? 'process CPU (cores):' : 'server CPU (cores):', fmt(r.serverCores)),
    ...(r.name.startsWith('engine') ? [] : [row('client CPU (cores):', fmt(r.clientCores))]),
    ...(r.clientEventLoopDelayMs ? [row('client event-loop delay p99 / max (ms):', `${fmt(r.clientEventLoopDelayMs.p99, 1)} / ${fmt(r.clientEventLoopDelayMs.max, 1)}`)] : []),
    ...(r.serverItlBuckets ? [row('server-side ITL, share <= le:', serverItlShares(r.serverItlBuckets))] : []),
    ...(r.eventLoopDelayMs ? [row('server event-loop delay p99 / max (ms):', `${fmt(r.eventLoopDelayMs.p99, 1)} / ${fmt(r.eventLoopDelayMs.max, 1)}`)] : []),
    ...(r.stepMedianMs === undefined
      ? []
      : [row('median step / decode step (ms):', `${fmt(r.stepMedianMs, 3)} / ${fmt(r.decodeStepMedianMs, 3)} (${r.steps ?? 0} steps)`)]),
    `${'(ms)'.padEnd(6)}${['mean', 'p50', 'p90', 'p99'].map((h) => h.padStart(11)).join('')}`,
    lat('TTFT', s.ttft),
    lat('TPOT', s.tpot),
    lat('ITL', s.itl),
    lat('E2E', s.e2e),
  ];
  if (r.streamed) lines.push(`ITL p99 by tenth of the run (ms): ${s.itlP99ByTenth.map((v) => fmt(v, 1)).join(' ')}`);
  if (!r.streamed) lines.push('(not streamed: only E2E is measured; TTFT is reported as E2E, TPOT and ITL are n/a)');
  return lines.join('\n');
}

export function formatMarkdown(b: BenchReport): string {
  const runs = [b.http, b.engine].filter((r): r is RunReport => r !== null);
  const cells = (f: (r: RunReport) => string) => `| ${runs.map(f).join(' | ')} |`;
  const lat = (label: string, pick: (s: RunStats) => Summary) =>
    `| ${label} mean / p50 / p99 (ms) ${cells((r) => [pick(r.stats).mean, pick(r.stats).p50, pick(r.stats).p99].map((v) => fmt(v)).join(' / '))}`;
  const w = b.workload;
  return [
    `## HTTP serving benchmark — ${b.date.slice(0, 10)}`,
    '',
    `Machine: ${b.host}${b.device ? `, ${b.device}` : ''}, Node ${process.version}.`,
    `Command: \`${b.command}\``,
    `Workload: ${w.numPrompts} requests, ${w.inputLen} prompt tokens (${w.promptKind}) / ${w.outputLen} output tokens (ignore_eos, temperature ${w.temperature}), ` +
      `concurrency ${w.concurrency ?? 'unbounded'}, request rate ${w.requestRate == null ? 'unbounded' : `${w.requestRate}/s`}, ${w.stream ? 'streamed' : 'not streamed'}.`,
    '',
    `| measure | ${runs.map((r) => r.name).join(' | ')} |`,
    `| --- | ${runs.map(() => '---:').join(' | ')} |`,
    `| completed / failed ${cells((r) => `${r.stats.completed} / ${r.stats.failed}`)}`,
    `| duration (s) ${cells((r) => fmt(r.stats.durationS))}`,
    `| requests/s ${cells((r) => fmt(r.stats.requestsPerS))}`,
    `| output tok/s ${cells((r) => fmt(r.stats.outputTokPerS, 1))}`,
    `| total tok/s ${cells((r) => fmt(r.stats.totalTokPerS, 1))}`,
    lat('TTFT', (s) => s.ttft),
    lat('TPOT', (s) => s.tpot),
    lat('ITL', (s) => s.itl),
    lat('E2E', (s) => s.e2e),
    `| CPU cores (server; engine-only: whole process) ${cells((r) => fmt(r.serverCores))}`,
    `| median step / decode step (ms) ${cells((r) => (r.stepMedianMs === undefined ? '' : `${fmt(r.stepMedianMs, 3)} / ${fmt(r.decodeStepMedianMs, 3)}`))}`,
    ...(b.httpEngineOutputRatio === null ? [] : ['', `HTTP / engine-only output tok/s: ${fmt(b.httpEngineOutputRatio, 3)}.`]),
  ].join('\n');
}
