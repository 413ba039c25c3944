import type { NewCallId, ParsedCall, ParsedText } from './types.js';

/**
 * Collects one feed's content and calls. Whitespace next to a call's markup
 * (the newlines around <tool_call> blocks) is dropped, except that text on
 * both sides of a call stays apart: it is joined by the whitespace that
 * followed the markup, or else the whitespace before it ("Let me check.\n
 * <call>\nDone." gives "Let me check.\nDone."). Trailing whitespace is held
 * until the next non-space text or the end, so any split of the same text
 * gives the same content.
 */
export class ParserOutput {
  private content = '';
  private calls: ParsedCall[] = [];
  private spaces = '';
  private afterCall = false;
  /** Whitespace just before the last call, and what has followed it so far. */
  private gapBefore = '';
  private gapAfter = '';
  private hadContent = false;
  private count = 0;

  constructor(private readonly newId: NewCallId) {}

  text(s: string): void {
    if (this.afterCall) {
      const body = s.trimStart();
      this.gapAfter += s.slice(0, s.length - body.length);
      if (body.length === 0) return;
      this.afterCall = false;
      if (this.hadContent) this.content += this.gapAfter || this.gapBefore;
      this.gapAfter = this.gapBefore = '';
      s = body;
    }
    const body = s.trimEnd();
    if (body.length === 0) {
      this.spaces += s;
      return;
    }
    this.content += this.spaces + body;
    this.hadContent = true;
    this.spaces = s.slice(body.length);
  }

  call(c: { name: string; arguments: string }): void {
    if (!this.afterCall) this.gapBefore = this.spaces;
    this.gapAfter = '';
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
