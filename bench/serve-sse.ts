// Server-sent events for the serving benchmark's client: frames are cut at
// blank lines and each event is classified by string search, so thousands of
// concurrent streams cost the client little. Only events that carry an error
// or the usage totals are parsed as JSON (one per request at most).

/**
 * Cuts a stream of decoded text into SSE events and hands each event's data
 * (its `data:` lines joined by "\n") to onData. Chunks may split anywhere,
 * including inside a "\r\n" line end.
 */
export class SseScanner {
  private buf = '';

  push(chunk: string, onData: (data: string) => void): void {
    let text = this.buf + chunk;
    this.buf = '';
    if (text.indexOf('\r') >= 0) {
      // A lone trailing \r may be the first half of \r\n: hold it for the next chunk.
      let keep = '';
      if (text.endsWith('\r')) {
        keep = '\r';
        text = text.slice(0, -1);
      }
      text = text.replace(/\r\n?/g, '\n');
      return this.scan(text, onData, keep);
    }
    this.scan(text, onData, '');
  }

  /** The stream ended: a held-back \r was a line end after all. An unterminated last event is dropped, as SSE says. */
  end(onData: (data: string) => void): void {
    if (!this.buf.endsWith('\r')) return;
    const text = this.buf.slice(0, -1) + '\n';
    this.buf = '';
    this.scan(text, onData, '');
  }

  private scan(text: string, onData: (data: string) => void, keep: string): void {
    let from = 0;
    for (let at = text.indexOf('\n\n', from); at >= 0; at = text.indexOf('\n\n', from)) {
      const frame = text.slice(from, at);
      from = at + 2;
      // The server writes one `data: ` line per event; anything else takes the general path.
      if (frame.startsWith('data: ') && frame.indexOf('\n') < 0) onData(frame.slice(6));
      else {
        const data = eventData(frame);
        if (data !== null) onData(data);
      }
    }
    this.buf = text.slice(from) + keep;
  }
}

function eventData(frame: string): string | null {
  let data: string | null = null;
  for (const line of frame.split('\n')) {
    if (!line.startsWith('data:')) continue;
    const value = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
    data = data === null ? value : data + '\n' + value;
  }
  return data;
}

export type SseEvent =
  | { kind: 'token' }
  | { kind: 'other' }
  | { kind: 'done' }
  | { kind: 'usage'; promptTokens: number; completionTokens: number }
  | { kind: 'error'; message: string };

const TOKEN: SseEvent = { kind: 'token' };
const OTHER: SseEvent = { kind: 'other' };
const DONE: SseEvent = { kind: 'done' };

/**
 * What one event's data means to the benchmark. field is where the output
 * text sits: "text" for /v1/completions chunks, "content" for chat deltas.
 * A chunk that carries the field and no finish_reason is one token, even with
 * empty text (the server sends one chunk per token, as vLLM does); chat's
 * opening role chunk is not.
 */
export function classifyEvent(data: string, field: 'text' | 'content'): SseEvent {
  if (data === '[DONE]') return DONE;
  const key = field === 'text' ? '"text":"' : '"content":"';
  const at = data.indexOf(key);
  if (at >= 0) return data.indexOf('"finish_reason":null') >= 0 && data.indexOf('"role":') < 0 ? TOKEN : OTHER;
  if (data.startsWith('{"error"') || (data.indexOf('"choices"') < 0 && data.indexOf('"error"') >= 0)) return { kind: 'error', message: errorMessage(data) };
  if (data.indexOf('"usage":{') >= 0) {
    try {
      const u = (JSON.parse(data) as { usage: { prompt_tokens?: number; completion_tokens?: number } }).usage;
      return { kind: 'usage', promptTokens: u.prompt_tokens ?? 0, completionTokens: u.completion_tokens ?? 0 };
    } catch {
      return OTHER;
    }
  }
  return OTHER;
}

/** The message of an OpenAI-shaped error body ({"error": {"message": ...}}), or the text itself. */
export function errorMessage(body: string): string {
  try {
    const e = (JSON.parse(body) as { error?: unknown }).error;
    if (typeof e === 'string') return e;
    if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') return (e as { message: string }).message;
    return JSON.stringify(e ?? body);
  } catch {
    return body.length > 200 ? body.slice(0, 200) + '...' : body;
  }
}
