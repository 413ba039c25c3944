import { timingSafeEqual } from 'node:crypto';

import type { Context, Next } from 'hono';

import type { ServerDeps } from './deps.js';
import { ApiError } from './errors.js';

/** Requires `Authorization: Bearer <key>` with one of the keys; no keys configured: open. */
export function apiKeyAuth(keys: string[]) {
  const accepted = keys.map((k) => Buffer.from(k));
  return async function apiKeyAuthMiddleware(c: Context, next: Next) {
    if (accepted.length === 0) return next();
    const header = c.req.header('authorization') ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7).trim() : '');
    if (!accepted.some((k) => k.length === given.length && timingSafeEqual(k, given)))
      throw new ApiError(401, 'Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key');
    return next();
  };
}

/** While shutting down, new generation requests get 503. */
export function refuseWhileDraining(deps: ServerDeps) {
  return async function refuseWhileDrainingMiddleware(_c: Context, next: Next) {
    if (deps.state.draining) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    return next();
  };
}

/** Counts every response by endpoint and status. */
export function countRequests(deps: ServerDeps) {
  return async function countRequestsMiddleware(c: Context, next: Next) {
    await next();
    deps.metrics.requests.inc({ endpoint: c.req.routePath || c.req.path, status: String(c.res.status) });
  };
}
