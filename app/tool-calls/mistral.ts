import { callOf, jsonEnd, parseJson, startsWithTokens } from './json-scan.js';
import { ScanningParser } from './scanning-parser.js';

const MARK = '[TOOL_CALLS]';

/**
 * Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`. [TOOL_CALLS]
 * is a special token, which the detokenizer skips by default: an answer that
 * begins with `[{"name"` is taken as calls too.
 */
export class MistralParser extends ScanningParser {
  /** start: nothing decided yet; text: scanning for the marker; calls: after it, waiting for the array. */
  private mode: 'start' | 'text' | 'calls' = 'start';
  /** The marker text the calls began with: given back with the array when it holds no valid calls. */
  private mark = '';

  protected finish(): void {
    this.out.text(this.mark + this.buf);
    this.mark = '';
  }

  protected scan(end: boolean): void {
    for (;;) {
      if (this.mode === 'start') {
        const bare = startsWithTokens(this.buf, ['[', '{', '"name"']);
        if (bare === 'maybe' && !end) return;
        this.mode = bare === 'yes' ? 'calls' : 'text';
      }
      if (this.mode === 'text') {
        if (!this.throughMarker(MARK, end)) return;
        this.mark = MARK;
        this.mode = 'calls';
      }
      const open = this.buf.search(/\S/);
      if (open < 0) return;
      const close = this.buf[open] === '[' ? jsonEnd(this.buf, open) : -1;
      if (close === null) return;
      const calls = close < 0 ? null : this.callsIn(this.buf.slice(open, close));
      if (calls) calls.forEach((c) => this.out.call(c));
      else this.out.text(this.mark + this.buf.slice(0, close < 0 ? open : close));
      this.buf = this.buf.slice(close < 0 ? open : close);
      this.mark = '';
      this.mode = 'text';
    }
  }

  private callsIn(json: string): { name: string; arguments: string }[] | null {
    const list = parseJson(json);
    if (!Array.isArray(list) || list.length === 0) return null;
    const calls = list.map((v) => callOf(v, ['arguments', 'parameters']));
    return calls.every((c) => c !== null) ? (calls as { name: string; arguments: string }[]) : null;
  }
}
