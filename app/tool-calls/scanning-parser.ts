import { partialMarker } from './json-scan.js';
import { ParserOutput } from './output.js';
import { randomCallId, type NewCallId, type ParsedText, type ToolCallParser } from './types.js';

/**
 * The feed/end protocol the formats share: text accumulates in buf, scan()
 * moves what is decided into out, and at the end finish() gives back what is
 * still undecided.
 */
export abstract class ScanningParser implements ToolCallParser {
  protected buf = '';
  protected readonly out: ParserOutput;

  constructor(newId: NewCallId = randomCallId) {
    this.out = new ParserOutput(newId);
  }

  feed(text: string): ParsedText {
    this.buf += text;
    this.scan(false);
    return this.out.take();
  }

  end(): ParsedText {
    this.scan(true);
    this.finish();
    this.buf = '';
    return this.out.take(true);
  }

  /**
   * Sends the text before marker and consumes the marker: true. Without the
   * marker yet: sends all but a tail that may begin it (everything at the end): false.
   */
  protected throughMarker(marker: string, end: boolean): boolean {
    const at = this.buf.indexOf(marker);
    if (at < 0) {
      const keep = end ? 0 : partialMarker(this.buf, marker);
      this.out.text(this.buf.slice(0, this.buf.length - keep));
      this.buf = this.buf.slice(this.buf.length - keep);
      return false;
    }
    this.out.text(this.buf.slice(0, at));
    this.buf = this.buf.slice(at + marker.length);
    return true;
  }

  /** Decides as much of buf as it can; end: no more text will come. */
  protected abstract scan(end: boolean): void;

  /** At the end: what buf (and any markup held with it) still holds goes out as text, or as a last call. */
  protected abstract finish(): void;
}
