import { ConfigSchema, type Config } from '../../config/schema.js';
import type { Log } from '../../app/logger.js';
import { startServer, type RunningServer } from '../../app/server.js';

export const quiet: Log = { debug() {}, info() {}, warn() {}, error() {} };

/** The real server with the embedded default model, on a free loopback port. */
export function startTestServer(overrides: Partial<Config> = {}): Promise<RunningServer> {
  const config = ConfigSchema.parse({ port: 0, kvCacheBytes: 64 * 1024 * 1024, tokenizerWorkers: 1, ...overrides });
  return startServer(config, quiet);
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}
