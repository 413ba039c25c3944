import { callOf, jsonEnd, parseJson, startsWithTokens } from './json-scan.js';
import { ScanningParser } from './scanning-parser.js';

const TAG = '<|python_tag|>';

/**
 * Llama 3.x JSON calls: the whole answer is `{"name": ..., "parameters": {...}}`,
 * several separated by `;`, optionally after <|python_tag|>. That tag is a
 * special token the detokenizer skips by default, so an answer beginning with
 * `{"name"` is taken as calls with or without it. Answers that begin
 * otherwise are plain text throughout.
 */
export class Llama3JsonParser extends ScanningParser {
  private mode: 'start' | 'calls' | 'text' = 'start';
  /** Text consumed since the last call (the tag, `;`, spaces): given back if what follows is not a call. */
  private raw = '';

  protected finish(): void {
    // Separators left after the last call (`; ` or a newline) are not an answer.
    const rest = this.raw + this.buf;
    if (!(this.mode === 'calls' && /^[\s;]*$/.test(rest))) this.out.text(rest);
    this.raw = '';
  }

  protected scan(end: boolean): void {
    if (this.mode === 'start') {
      const lead = this.buf.length - this.buf.trimStart().length;
      const rest = this.buf.slice(lead);
      if (!rest.startsWith(TAG) && TAG.startsWith(rest) && !end) return;
      const tagged = rest.startsWith(TAG) ? lead + TAG.length : 0;
      const call = startsWithTokens(this.buf.slice(tagged), ['{', '"name"']);
      if (call === 'maybe' && !end) return;
      this.mode = call === 'yes' ? 'calls' : 'text';
      if (call === 'yes') {
        this.raw = this.buf.slice(0, tagged);
        this.buf = this.buf.slice(tagged);
      }
    }
    while (this.mode === 'calls') {
      const open = this.buf.search(/\S/);
      if (open < 0) return;
      if (this.buf[open] === ';') {
        this.raw += this.buf.slice(0, open + 1);
        this.buf = this.buf.slice(open + 1);
        continue;
      }
      const close = this.buf[open] === '{' ? jsonEnd(this.buf, open) : -1;
      if (close === null) return;
      const call = close < 0 ? null : callOf(parseJson(this.buf.slice(open, close)), ['parameters', 'arguments']);
      if (!call) {
        this.mode = 'text';
        break;
      }
      this.out.call(call);
      this.raw = '';
      this.buf = this.buf.slice(close);
    }
    if (this.mode === 'text') {
      this.out.text(this.raw + this.buf);
      this.raw = this.buf = '';
    }
  }
}
