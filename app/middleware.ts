import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';

import type { Context, Next } from 'hono';
import { bodyLimit } from 'hono/body-limit';

import type { ServerDeps } from './deps.js';
import { ApiError } from './errors.js';

/**
 * Requires one of the keys, as `Authorization: Bearer <key>` (OpenAI's
 * clients) or `x-api-key: <key>` (Anthropic's); no keys configured: open.
 */
export function apiKeyAuth(keys: string[]) {
  const accepted = keys.map((k) => Buffer.from(k));
  return async function apiKeyAuthMiddleware(c: Context, next: Next) {
    if (accepted.length === 0) return next();
    const header = c.req.header('authorization') ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7).trim() : (c.req.header('x-api-key') ?? '').trim());
    if (!accepted.some((k) => k.length === given.length && timingSafeEqual(k, given)))
      throw new ApiError(401, 'Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key');
    return next();
  };
}

/** While shutting down, new generation requests get 503. */
export function refuseWhileDraining(deps: ServerDeps) {
  return async function refuseWhileDrainingMiddleware(c: Context, next: Next) {
    if (deps.state.draining) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    // Counted from admission to the response's end, so a drain also waits for requests still
    // being read or tokenized, which the engine does not know about yet.
    deps.state.inFlight++;
    const res = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (res) {
      res.once('close', () => deps.state.inFlight--);
      return next();
    }
    try {
      return await next();
    } finally {
      deps.state.inFlight--;
    }
  };
}

/** Counts every response by endpoint and status. */
export function countRequests(deps: ServerDeps) {
  return async function countRequestsMiddleware(c: Context, next: Next) {
    await next();
    deps.metrics.requests.inc({ endpoint: c.req.routePath || c.req.path, status: String(c.res.status) });
  };
}

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's x-request-id when it is sane (1 to 128 of [A-Za-z0-9._:-]), otherwise a new UUID. */
export function requestIdFrom(header: string | undefined): string {
  return header !== undefined && SANE_REQUEST_ID.test(header) ? header : randomUUID();
}

/**
 * Gives every request an id (c.get('requestId')) and returns it as
 * x-request-id on every response: set before the handler runs, so responses
 * built from the context (errors, 404s, streams written straight to the
 * socket) carry it, and checked again after, for responses built elsewhere.
 */
export function assignRequestId() {
  return async function requestIdMiddleware(c: Context, next: Next) {
    const id = requestIdFrom(c.req.header('x-request-id'));
    c.set('requestId', id);
    c.header('x-request-id', id);
    await next();
    if (c.res.headers.get('x-request-id') !== id && !c.res.headers.has('x-hono-already-sent')) c.header('x-request-id', id);
  };
}

/**
 * 413 for bodies over maxBytes. A declared Content-Length is checked from the
 * header alone; only a chunked body goes through Hono's counting limiter,
 * which builds the whole Web Request (undici) to wrap its stream: at thousands
 * of requests a second that construction was the largest cost of taking one in.
 */
export function limitBody(maxBytes: number) {
  const tooLarge = () => {
    throw new ApiError(413, `the request body is larger than ${maxBytes} bytes`, 'invalid_request_error', null, 'request_too_large');
  };
  const counting = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return async function limitBodyMiddleware(c: Context, next: Next) {
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) return counting(c, next);
    if (!(Number(length) <= maxBytes)) tooLarge();
    return next();
  };
}
