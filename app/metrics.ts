import { Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { Engine } from '../engine/engine.js';

const LATENCY_BUCKETS = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60];

/** The server's Prometheus metrics; engine gauges are read at scrape time. */
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'tachyon_requests_total', help: 'HTTP requests by endpoint and status', labelNames: ['endpoint', 'status'], registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'tachyon_time_to_first_token_seconds', help: 'Time from arrival to the first generated token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly itl = new Histogram({ name: 'tachyon_inter_token_latency_seconds', help: 'Time between consecutive generated tokens of a request', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly e2e = new Histogram({ name: 'tachyon_e2e_request_latency_seconds', help: 'Time from arrival to the last token', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'tachyon_prompt_tokens_total', help: 'Prompt tokens processed', registers: [this.registry] });
  readonly generationTokens = new Counter({ name: 'tachyon_generation_tokens_total', help: 'Tokens generated', registers: [this.registry] });

  constructor(engine: Engine) {
    const stat = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
    stat('tachyon_requests_waiting', 'Requests waiting for a slot', () => engine.stats().waiting);
    stat('tachyon_requests_running', 'Requests being generated', () => engine.stats().running);
    stat('tachyon_kv_blocks_used', 'KV cache blocks in use', () => engine.stats().kvBlocksUsed);
    stat('tachyon_kv_blocks_total', 'KV cache blocks in the pool', () => engine.stats().kvBlocksTotal);
    stat('tachyon_prefix_cache_hit_tokens', 'Prompt tokens served from the prefix cache since start (a counter)', () => engine.stats().prefixCacheHitTokens);
    stat('tachyon_preemptions', 'Sequences preempted for lack of KV blocks since start (a counter)', () => engine.stats().preemptions);
  }
}
