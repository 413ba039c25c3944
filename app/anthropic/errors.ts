import type { ApiError } from '../errors.js';

/** Anthropic's error types by status. */
const TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  503: 'overloaded_error',
};

/** The Anthropic paths answer errors in Anthropic's shape; the status stays the one the error carries. */
export function isAnthropicPath(path: string): boolean {
  return path === '/v1/messages' || path.startsWith('/v1/messages/');
}

/** {"type": "error", "error": {"type", "message"}}; the parameter a 400 names is in the message. */
export function anthropicErrorBody(e: ApiError): object {
  const message = e.param && !e.message.includes(e.param) ? `${e.param}: ${e.message}` : e.message;
  return { type: 'error', error: { type: TYPES[e.status] ?? 'api_error', message } };
}
