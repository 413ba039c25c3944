// The serving benchmark's HTTP client: node:http on one keep-alive agent with
// no socket cap, bodies serialized before the run, SSE scanned by string
// search (serve-sse.ts), so the client stays cheap at thousands of streams.

import http from 'node:http';

import { SseScanner, classifyEvent, errorMessage } from './serve-sse.js';
import type { RequestRecord } from './serve-stats.js';

export interface HttpClient {
  base: URL;
  agent: http.Agent;
  headers: Record<string, string>;
}

export function httpClient(url: string, apiKey?: string): HttpClient {
  return {
    base: new URL(url),
    agent: new http.Agent({ keepAlive: true, maxSockets: Infinity }),
    headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
  };
}

/** One plain request: status and body text. */
export function call(client: HttpClient, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 10_000): Promise<{ status: number; text: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, client.base),
      {
        method,
        agent: client.agent,
        headers: { ...client.headers, ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
        timeout: timeoutMs,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export interface GenerationTarget {
  client: HttpClient;
  /** /v1/completions (token-id prompts) or /v1/chat/completions (text prompts). */
  path: string;
  stream: boolean;
}

/**
 * Sends one prepared JSON body and records what came back. TTFT and ITLs
 * are taken from the arrival of each network chunk that held a token event
 * (events of one chunk arrived together); a non-200 status, an error event
 * or a stream without [DONE] fails the request.
 */
export function sendGeneration(t: GenerationTarget, body: string, promptTokens: number, signal?: AbortSignal): Promise<RequestRecord> {
  const field = t.path.includes('chat') ? 'content' : 'text';
  return new Promise((resolve) => {
    const rec: RequestRecord = { ok: false, start: performance.now(), end: 0, tokenTimes: [], completionTokens: 0, promptTokens, streamed: t.stream };
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      rec.end = performance.now();
      signal?.removeEventListener('abort', onAbort);
      rec.ok = error === undefined;
      if (error !== undefined) rec.error = error;
      resolve(rec);
    };
    const req = http.request(
      new URL(t.path, t.client.base),
      {
        method: 'POST',
        agent: t.client.agent,
        headers: { ...t.client.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.setEncoding('utf8');
        res.on('error', (e) => finish(e.message));
        res.on('close', () => finish('the connection closed before the response ended'));
        if (res.statusCode !== 200 || !t.stream) {
          let text = '';
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            if (res.statusCode !== 200) return finish(`HTTP ${res.statusCode}: ${errorMessage(text)}`);
            try {
              const usage = (JSON.parse(text) as { usage?: { prompt_tokens?: number; completion_tokens?: number } }).usage;
              rec.completionTokens = usage?.completion_tokens ?? 0;
              rec.promptTokens = usage?.prompt_tokens ?? promptTokens;
              finish();
            } catch (e) {
              finish(`unreadable response body: ${(e as Error).message}`);
            }
          });
          return;
        }
        const sse = new SseScanner();
        let failure: string | undefined;
        let done = false;
        let events = 0;
        let now = 0;
        const onData = (data: string) => {
          const ev = classifyEvent(data, field);
          if (ev.kind === 'token') {
            rec.tokenTimes.push(now);
            events++;
          } else if (ev.kind === 'usage') {
            rec.completionTokens = ev.completionTokens;
            rec.promptTokens = ev.promptTokens;
          } else if (ev.kind === 'error') failure ??= ev.message;
          else if (ev.kind === 'done') done = true;
        };
        res.on('data', (chunk: string) => {
          now = performance.now();
          sse.push(chunk, onData);
        });
        res.on('end', () => {
          sse.end(onData);
          if (failure !== undefined) return finish(failure);
          if (!done) return finish('the stream ended without [DONE]');
          if (rec.completionTokens === 0) rec.completionTokens = events;
          finish();
        });
      },
    );
    const onAbort = () => req.destroy(new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (e) => finish(e.message));
    req.end(body);
  });
}

/** The served model's name, from GET /v1/models. */
export async function servedModel(client: HttpClient): Promise<{ id: string; maxModelLen?: number }> {
  const r = await call(client, 'GET', '/v1/models');
  if (r.status !== 200) throw new Error(`GET /v1/models: HTTP ${r.status}: ${errorMessage(r.text)}`);
  const card = (JSON.parse(r.text) as { data: { id: string; max_model_len?: number }[] }).data[0];
  if (!card) throw new Error('GET /v1/models lists no model');
  return { id: card.id, maxModelLen: card.max_model_len };
}

/**
 * The tokenizer's vocabulary size as the server reveals it: the smallest id
 * POST /detokenize refuses, found by bisection below `upTo` (ids past the
 * probe bound are never drawn anyway). null when the server has no /detokenize.
 */
export async function probeVocab(client: HttpClient, model: string, upTo: number): Promise<number | null> {
  const ok = async (id: number) => {
    const r = await call(client, 'POST', '/detokenize', { model, tokens: [id] });
    if (r.status === 404) throw new Error('no /detokenize');
    return r.status === 200;
  };
  try {
    if (!(await ok(0))) return null;
    if (await ok(upTo - 1)) return upTo;
  } catch {
    return null;
  }
  let lo = 0;
  let hi = upTo - 1;
  // Invariant: lo is accepted, hi is refused.
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (await ok(mid)) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** Prompt tokens the server counts for one chat message (POST /tokenize, chat template applied). */
export async function chatTokenCount(client: HttpClient, model: string, content: string): Promise<number> {
  const r = await call(client, 'POST', '/tokenize', { model, messages: [{ role: 'user', content }] });
  if (r.status !== 200) throw new Error(`POST /tokenize: HTTP ${r.status}: ${errorMessage(r.text)}`);
  return (JSON.parse(r.text) as { count: number }).count;
}

/** process_cpu_seconds_total from GET /metrics, or null when the server does not export it. */
export async function scrapeCpuSeconds(client: HttpClient): Promise<number | null> {
  return (await scrapeMetrics(client, ['process_cpu_seconds_total']))[0];
}

/** Unlabelled sample values from GET /metrics, null for each one the server does not export. */
export async function scrapeMetrics(client: HttpClient, names: string[]): Promise<(number | null)[]> {
  try {
    const r = await call(client, 'GET', '/metrics');
    if (r.status !== 200) return names.map(() => null);
    return names.map((name) => {
      const m = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm').exec(r.text);
      return m ? Number(m[1]) : null;
    });
  } catch {
    return names.map(() => null);
  }
}

/** A histogram's cumulative buckets [le seconds, count] from GET /metrics, or null. */
export async function scrapeBuckets(client: HttpClient, name: string): Promise<[number, number][] | null> {
  try {
    const r = await call(client, 'GET', '/metrics');
    if (r.status !== 200) return null;
    const out: [number, number][] = [];
    for (const m of r.text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\}\\s+(\\S+)`, 'gm'))) out.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
    return out.length ? out : null;
  } catch {
    return null;
  }
}
