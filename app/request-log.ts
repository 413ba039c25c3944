/**
 * The access log: one JSON line per finished request, at info level (successful probes at debug).
 *
 * Contract (app.ts installs accessLog() right after the request-id middleware):
 *
 * - Every request gets one line when its response is complete: request_id,
 *   method, path, status, duration_ms, and for an error response the error's
 *   status, code and message. Successful /health, /ready and /metrics lines
 *   are at debug (probes and scrapes every few seconds); all others at info.
 * - A generation route reports what it learned with noteOutcome(c, outcome),
 *   exactly once per request: model, prompt_tokens, completion_tokens, ttft_ms,
 *   finish_reasons, and an error event that ended a stream. The outcome also
 *   feeds tachyon_requests_finished_total / tachyon_requests_aborted_total.
 * - A response whose body is produced after the handler returns (a stream)
 *   must call deferAccessLog(c) BEFORE returning the response; the line is then
 *   written when noteOutcome() arrives (the stream's end), not when the headers
 *   go out. Call noteOutcome() from a `finally` around the stream's work so it
 *   also runs when the client disconnects or the work throws: a deferred
 *   request whose outcome never comes writes no line. A handler that throws
 *   after deferAccessLog() (so no stream starts) is logged at once.
 * - Without deferAccessLog(), the line is written when the handler returns; an
 *   outcome noted before then (a non-streamed generation) is included.
 * - Prompt and output text are logged only when config.logRequests is true,
 *   whatever the outcome carries.
 */
import type { Context, Next } from 'hono';

import type { ServerDeps } from './deps.js';
import { ApiError } from './errors.js';
import { withBindings, type Log } from './logger.js';

/**
 * What a generation route learned about its request, for the access log line
 * and the metrics. Routes call noteOutcome() when the response is complete
 * (for a stream: when it has ended), once.
 */
export interface RequestOutcome {
  model: string;
  promptTokens: number;
  completionTokens: number;
  /** Milliseconds from arrival to the first generated token; null if none came. */
  ttftMs: number | null;
  /** One per choice: stop, length, abort (client gone or server shut down), error. */
  finishReasons: string[];
  /** For a stream that ended with an error event: its status and message (the HTTP status was already 200). */
  error?: { status: number; message: string; code: string | null };
  /** Prompt and output text, only when --log-requests asks for them. */
  promptText?: string;
  outputText?: string[];
}

/** Per-request access-log state, kept on the context. */
interface AccessState {
  deferred: boolean;
  note(o: RequestOutcome): void;
}

declare module 'hono' {
  interface ContextVariableMap {
    /** The request's id: the client's x-request-id when sane, else a new UUID. */
    requestId: string;
    /** The server's log with request_id bound. */
    requestLog: Log;
    accessLog: AccessState;
  }
}

/** Reports a generation's outcome to the access log (a no-op where no middleware listens). Call once. */
export function noteOutcome(c: Context, outcome: RequestOutcome): void {
  c.get('accessLog')?.note(outcome);
}

/** Tells the access log that an outcome will follow after the handler returns (a stream). */
export function deferAccessLog(c: Context): void {
  const state = c.get('accessLog');
  if (state) state.deferred = true;
}

/** The request's id ('' outside the middleware). */
export function requestIdOf(c: Context): string {
  return c.get('requestId') ?? '';
}

/** A log whose lines carry the request's id (the given log, unbound, outside the middleware). */
export function requestLogOf(c: Context, fallback: Log): Log {
  return c.get('requestLog') ?? fallback;
}

/**
 * An error's message as logs may show it: a JSON parse error quotes a piece
 * of the body (V8: `Unexpected token 's', "secret words" is not valid JSON`),
 * which only --log-requests may log.
 */
export function loggableMessage(err: ApiError, logRequests: boolean): string {
  if (logRequests || err.code !== 'invalid_json') return err.message;
  const colon = err.message.indexOf(':');
  return colon < 0 ? err.message : err.message.slice(0, colon);
}

const PROBES = new Set(['/health', '/ready', '/metrics']);
const round = (ms: number) => Math.round(ms * 10) / 10;

/**
 * Writes the access line of each request (see the contract above). Runs
 * inside the request-id middleware, outside everything else, so it sees the
 * final status of errors, 404s and 413s too.
 */
export function accessLog(deps: ServerDeps, log: Log) {
  return async function accessLogMiddleware(c: Context, next: Next) {
    const start = performance.now();
    const reqLog = withBindings(log, { request_id: requestIdOf(c) });
    c.set('requestLog', reqLog);
    let outcome: RequestOutcome | null = null;
    let handlerDone = false;
    let logged = false;

    const write = () => {
      if (logged) return;
      logged = true;
      const status = c.res.status;
      const line: Record<string, unknown> = { method: c.req.method, path: c.req.path, status, duration_ms: round(performance.now() - start) };
      const err = c.error;
      if (err instanceof ApiError) line.error = { status: err.status, code: err.code, message: loggableMessage(err, deps.config.logRequests) };
      else if (err) line.error = { status, code: 'internal_error', message: err.message };
      if (outcome) {
        line.model = outcome.model;
        line.prompt_tokens = outcome.promptTokens;
        line.completion_tokens = outcome.completionTokens;
        line.ttft_ms = outcome.ttftMs === null ? null : round(outcome.ttftMs);
        line.finish_reasons = outcome.finishReasons;
        if (outcome.error && !line.error) line.error = { ...outcome.error };
        if (deps.config.logRequests) {
          if (outcome.promptText !== undefined) line.prompt = outcome.promptText;
          if (outcome.outputText !== undefined) line.output = outcome.outputText;
        }
      }
      // Probes and scrapes that succeed come every few seconds: debug, so they do not drown the requests.
      const level = status < 400 && PROBES.has(c.req.path) ? 'debug' : 'info';
      reqLog[level](`${c.req.method} ${c.req.path} ${status} ${line.duration_ms} ms`, line);
    };

    c.set('accessLog', {
      deferred: false,
      note(o) {
        if (outcome) return;
        outcome = o;
        deps.metrics.observeOutcome(o);
        if (handlerDone) write();
      },
    });
    try {
      await next();
    } finally {
      handlerDone = true;
      // Wait for the outcome only for a stream that started; anything that threw is logged now.
      if (!c.get('accessLog').deferred || outcome || c.error) write();
    }
  };
}
