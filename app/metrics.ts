import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { Engine } from '../engine/engine.js';

/** Seconds; generation requests may run for many minutes, so the buckets go to an hour. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];
const STEP_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const powersOfTwo = (max: number) => Array.from({ length: Math.log2(max) + 1 }, (_, i) => 2 ** i);

/** What the access log knows about a finished generation (a subset of RequestOutcome). */
export interface FinishedGeneration {
  /** One per choice: stop, length, abort, error. */
  finishReasons: string[];
}

/**
 * The server's Prometheus metrics. Engine gauges and counters are read at
 * scrape time; request outcomes come from the access log (observeOutcome) and
 * step figures from the engine (observeStep).
 *
 * Process and Node.js metrics use prom-client's standard unprefixed names
 * (process_cpu_seconds_total, process_resident_memory_bytes, nodejs_eventloop_lag_seconds, ...)
 * so stock dashboards and the serving benchmark find them.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'tachyon_requests_total', help: 'HTTP requests by endpoint and status', labelNames: ['endpoint', 'status'], registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'tachyon_time_to_first_token_seconds', help: 'Time from arrival to the first generated token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly itl = new Histogram({ name: 'tachyon_inter_token_latency_seconds', help: 'Time between consecutive generated tokens of a request', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly e2e = new Histogram({ name: 'tachyon_e2e_request_latency_seconds', help: 'Time from arrival to the last token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'tachyon_prompt_tokens_total', help: 'Prompt tokens processed', registers: [this.registry] });
  readonly generationTokens = new Counter({ name: 'tachyon_generation_tokens_total', help: 'Tokens generated', registers: [this.registry] });
  readonly requestsFinished = new Counter({
    name: 'tachyon_requests_finished_total',
    help: 'Engine requests (one per choice) by how they ended: stop, length, abort (client gone or server cancelled), error',
    labelNames: ['finish_reason'],
    registers: [this.registry],
  });
  readonly requestsAborted = new Counter({
    name: 'tachyon_requests_aborted_total',
    help: 'Engine requests (one per choice) ended before finishing: client disconnects and server cancellations',
    registers: [this.registry],
  });
  readonly stepDuration = new Histogram({ name: 'tachyon_step_duration_seconds', help: 'Time the runtime took for one engine step (forward pass and sampling)', buckets: STEP_SECONDS_BUCKETS, registers: [this.registry] });
  readonly stepBatchSize = new Histogram({ name: 'tachyon_step_batch_size', help: 'Sequences in one engine step', buckets: powersOfTwo(1024), registers: [this.registry] });
  readonly stepTokens = new Histogram({ name: 'tachyon_step_tokens', help: 'Tokens (prompt chunks plus decodes) in one engine step', buckets: powersOfTwo(65536), registers: [this.registry] });

  constructor(engine: Pick<Engine, 'stats'>) {
    const registers = [this.registry];
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers, collect() { this.set(read()); } });
    /** A counter over one of the engine's running totals: increments by what it grew since the last scrape. */
    const total = (name: string, help: string, read: () => number) => {
      let seen = 0;
      return new Counter({
        name,
        help,
        registers,
        collect() {
          const now = read();
          if (now > seen) this.inc(now - seen);
          seen = now;
        },
      });
    };
    gauge('tachyon_requests_waiting', 'Requests waiting for a slot', () => engine.stats().waiting);
    gauge('tachyon_requests_running', 'Requests being generated', () => engine.stats().running);
    gauge('tachyon_kv_blocks_used', 'KV cache blocks in use', () => engine.stats().kvBlocksUsed);
    gauge('tachyon_kv_blocks_total', 'KV cache blocks in the pool', () => engine.stats().kvBlocksTotal);
    total('tachyon_prefix_cache_hit_tokens_total', 'Prompt tokens served from the prefix cache', () => engine.stats().prefixCacheHitTokens);
    total('tachyon_preemptions_total', 'Sequences preempted for lack of KV blocks', () => engine.stats().preemptions);
    for (const reason of ['stop', 'length', 'abort', 'error']) this.requestsFinished.inc({ finish_reason: reason }, 0);
    collectDefaultMetrics({ register: this.registry });
  }

  /** One finished generation request: counts each choice by its finish reason. */
  observeOutcome(o: FinishedGeneration): void {
    for (const reason of o.finishReasons) {
      this.requestsFinished.inc({ finish_reason: reason });
      if (reason === 'abort') this.requestsAborted.inc();
    }
  }

  /** One engine step: its wall time in milliseconds, its sequences and its tokens. */
  observeStep(ms: number, seqs: number, tokens: number): void {
    this.stepDuration.observe(ms / 1000);
    this.stepBatchSize.observe(seqs);
    this.stepTokens.observe(tokens);
  }
}
