import OpenAI from 'openai';

import { ConfigSchema, type Config } from '../../config/schema.js';
import type { Log } from '../../app/logger.js';
import { startServer, type RunningServer } from '../../app/server.js';

export const quiet: Log = { debug() {}, info() {}, warn() {}, error() {} };

/** The real server with the embedded default model, on a free loopback port (quiet unless given a log). */
export function startTestServer(overrides: Partial<Config> = {}, log: Log = quiet): Promise<RunningServer> {
  const config = ConfigSchema.parse({ port: 0, kvCacheBytes: 64 * 1024 * 1024, tokenizerWorkers: 1, ...overrides });
  return startServer(config, log);
}

/** The openai SDK pointed at a test server; no retries, so a failure shows at once. */
export function openaiClientOf(server: { url: string }, apiKey = 'unused'): OpenAI {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey, maxRetries: 0 });
}

/** One call to a recording Log. */
export interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  detail: unknown;
}

/** A Log that keeps every call (no child(): request-scoped lines get their fields merged into detail). */
export function recordingLog(): Log & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at = (level: LogRecord['level']) => (message: string, detail?: unknown) => void records.push({ level, message, detail });
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}
