import type { NewCallId, ParsedCall, ParsedText } from './types.js';

/**
 * Collects one feed's content and calls. Whitespace that only separates text
 * from a call (the newlines around <tool_call> blocks) is dropped; whitespace
 * between texts is kept. Trailing whitespace is therefore held until the
 * next non-space text or the end.
 */
export class ParserOutput {
  private content = '';
  private calls: ParsedCall[] = [];
  private spaces = '';
  private afterCall = false;
  private count = 0;

  constructor(private readonly newId: NewCallId) {}

  text(s: string): void {
    if (this.afterCall) {
      s = s.trimStart();
      if (s.length === 0) return;
      this.afterCall = false;
    }
    const body = s.trimEnd();
    if (body.length === 0) {
      this.spaces += s;
      return;
    }
    this.content += this.spaces + body;
    this.spaces = s.slice(body.length);
  }

  call(c: { name: string; arguments: string }): void {
    this.spaces = '';
    this.afterCall = true;
    this.calls.push({ index: this.count++, id: this.newId(), ...c });
  }

  /** What this feed produced; at the end, held whitespace goes out unless a call came before it. */
  take(end = false): ParsedText {
    if (end && !this.afterCall && this.count === 0) this.content += this.spaces;
    if (end) this.spaces = '';
    const out: ParsedText = {};
    if (this.content) out.content = this.content;
    if (this.calls.length) out.calls = this.calls;
    this.content = '';
    this.calls = [];
    return out;
  }
}
