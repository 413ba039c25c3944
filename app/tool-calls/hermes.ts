import { callOf, jsonEnd, parseJson } from './json-scan.js';
import { ScanningParser } from './scanning-parser.js';

const OPEN = '<tool_call>';
const CLOSE = '</tool_call>';

/** Hermes / Qwen: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`, any number, text around them. */
export class HermesParser extends ScanningParser {
  private inside = false;

  protected scan(end: boolean): void {
    for (;;) {
      if (!this.inside) {
        if (!this.throughMarker(OPEN, end)) break;
        this.inside = true;
      }
      // The closing tag is looked for after the JSON object, so "</tool_call>" inside a string argument does not end the block.
      const open = this.buf.search(/\S/);
      if (open < 0) break;
      const objectEnd = this.buf[open] === '{' ? jsonEnd(this.buf, open) : open;
      if (objectEnd === null) break;
      const close = this.buf.indexOf(CLOSE, objectEnd);
      if (close < 0) break;
      this.settle(this.buf.slice(0, close), CLOSE);
      this.buf = this.buf.slice(close + CLOSE.length);
      this.inside = false;
    }
  }

  protected finish(): void {
    // An unclosed block (the model stopped after the JSON) still counts when its JSON is a call.
    if (this.inside) this.settle(this.buf, '');
    else this.out.text(this.buf);
    this.inside = false;
  }

  private settle(inner: string, close: string): void {
    // Inside <tool_call> markup a call without arguments is still a call.
    const call = callOf(parseJson(inner.trim()), ['arguments', 'parameters'], true);
    if (call) this.out.call(call);
    else this.out.text(OPEN + inner + close);
  }
}
