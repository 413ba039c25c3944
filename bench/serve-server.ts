// A server the serving benchmark starts itself: node dist/app/main.js on a
// free port, its URL read from the log, /ready awaited, its CPU time read
// from /proc, and always stopped when the benchmark ends (also on error,
// Ctrl-C or an uncaught exception).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { packageRoot } from '../native/binding.js';
import { call, httpClient } from './serve-http.js';

const SERVING = /serving \S+ at (http:\/\/\S+)/;
const LOADED_ON = /loaded \S+ in [\d.]+ s: \d+ layers on (.+?), context/;
/** A warning or error line, in the plain log format (WARN, ERROR) or as JSON (pino's level labels or numbers). */
const WARNING = /\b(WARN|ERROR|FATAL)\b|"level":\s*("(warn|error|fatal)"|[456]0\b)/;

export interface SpawnedServer {
  url: string;
  pid: number;
  /** The device the server's load line names (a GPU's name, or "cpu"). */
  device: string | null;
  /** Stops the server: SIGTERM, then SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

let live: ChildProcess | null = null;
// A synchronous last resort: whatever way this process exits, its server goes too.
process.on('exit', () => {
  if (live && live.exitCode === null && live.signalCode === null) live.kill('SIGKILL');
});

/**
 * Starts the server with `--port 0` and the given flags; resolves when
 * GET /ready answers 200 (a model load may take minutes). Its log goes to
 * this process's stderr, prefixed.
 */
export async function spawnServer(flags: string[], signal?: AbortSignal, readyTimeoutMs = 30 * 60_000): Promise<SpawnedServer> {
  const child = spawn(process.execPath, [join(packageRoot(), 'dist', 'app', 'main.js'), '--port', '0', ...flags], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  live = child;
  const exited = new Promise<string>((r) => child.once('exit', (code, signal) => r(`the server exited (${signal ?? `code ${code}`})`)));
  let device: string | null = null;
  const url = await new Promise<string>((resolve, reject) => {
    let pending = '';
    child.stderr!.setEncoding('utf8');
    let serving = false;
    child.stderr!.on('data', (chunk: string) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        // Once serving, only warnings and errors are shown: a line per request would bury the report.
        if (!serving || WARNING.test(line)) process.stderr.write(`[server] ${line}\n`);
        device ??= LOADED_ON.exec(line)?.[1] ?? null;
        const m = SERVING.exec(line);
        if (m) {
          serving = true;
          resolve(m[1]);
        }
      }
    });
    exited.then((why) => reject(new Error(`${why} before it logged its URL`)));
    child.once('error', reject);
  });
  const server: SpawnedServer = {
    url,
    pid: child.pid!,
    get device() {
      return device;
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      live = null;
    },
  };
  const client = httpClient(url);
  const deadline = performance.now() + readyTimeoutMs;
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    if (gone) throw new Error(await exited);
    if (signal?.aborted) {
      await server.stop();
      throw new Error('interrupted while the server was loading');
    }
    const r = await call(client, 'GET', '/ready').catch(() => null);
    if (r?.status === 200) break;
    if (performance.now() > deadline) {
      await server.stop();
      throw new Error(`the server was not ready after ${readyTimeoutMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  client.agent.destroy();
  return server;
}

let ticks: number | undefined;
/** Clock ticks per second of /proc times (getconf CLK_TCK; 100 on Linux unless told otherwise). */
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** User + system CPU seconds of a process (all its threads), or null off Linux. */
export function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesized command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[14 - 3]) + Number(rest[15 - 3])) / clockTicks();
  } catch {
    return null;
  }
}
