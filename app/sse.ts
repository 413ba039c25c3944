import type { ServerResponse } from 'node:http';

import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';

/** Where a stream's events go; one per response. */
export interface SseSink {
  /** Writes `data: <data>\n\n` (after `event: <event>\n` when named); the promise settles when the transport takes more (or the client is gone). */
  send(data: string, event?: string): Promise<void> | void;
  /** True once the client went away or the stream ended. */
  readonly closed: boolean;
}

const HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' };

/**
 * Streams server-sent events. Under @hono/node-server the events are written
 * straight to Node's ServerResponse: a Web ReadableStream between the two cost
 * several microseconds and promises per event, which at thousands of streams
 * is the event loop's largest cost. Elsewhere (app.request() in tests) it
 * falls back to a ReadableStream body. onGone runs if the client disconnects
 * before run() finishes.
 */
export function streamEvents(c: Context, onGone: () => void, run: (sink: SseSink) => Promise<void>): Response {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  const headers: Record<string, string> = { ...Object.fromEntries(c.res.headers), ...HEADERS };
  // Hono's CORS middleware adds Vary after the handler returns, when these headers are long sent.
  const origin = headers['access-control-allow-origin'];
  if (origin !== undefined && origin !== '*') headers.vary = headers.vary ? `${headers.vary}, Origin` : 'Origin';
  return outgoing ? toNode(outgoing, headers, onGone, run) : toWebStream(headers, onGone, run);
}

function toNode(res: ServerResponse, headers: Record<string, string>, onGone: () => void, run: (sink: SseSink) => Promise<void>): Response {
  let closed = false;
  // Several choices of one response may wait on the same socket at once.
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const r of w) r();
  };
  const gone = () => {
    if (!closed) onGone();
    closed = true;
    wake();
  };
  res.on('close', gone);
  res.on('drain', wake);
  res.writeHead(200, headers);
  res.flushHeaders();
  const sink: SseSink = {
    get closed() {
      return closed || res.destroyed;
    },
    send(data, event) {
      if (sink.closed) return;
      if (res.write(frame(data, event))) return;
      // Back-pressure from a slow client: wait for its socket, not for ever if it leaves.
      return new Promise<void>((r) => waiters.push(r));
    },
  };
  // The client may have left while the request was read and tokenized: 'close' has fired already.
  if (res.destroyed || res.socket?.destroyed) gone();
  run(sink)
    // respond() turns its own failures into an error event; what escapes is a logging failure, which must not end the process.
    .catch(() => undefined)
    .finally(() => {
      closed = true;
      if (!res.writableEnded) res.end();
    });
  return new Response(null, { headers: RESPONSE_ALREADY_SENT.headers });
}

function toWebStream(headers: Record<string, string>, onGone: () => void, run: (sink: SseSink) => Promise<void>): Response {
  const encoder = new TextEncoder();
  let closed = false;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const sink: SseSink = {
        get closed() {
          return closed;
        },
        send(data, event) {
          if (!closed) controller.enqueue(encoder.encode(frame(data, event)));
        },
      };
      run(sink)
        .catch(() => undefined)
        .finally(() => {
          if (!closed) controller.close();
          closed = true;
        });
    },
    cancel() {
      if (!closed) onGone();
      closed = true;
    },
  });
  return new Response(body, { status: 200, headers });
}

function frame(data: string, event: string | undefined): string {
  return event === undefined ? `data: ${data}\n\n` : `event: ${event}\ndata: ${data}\n\n`;
}
