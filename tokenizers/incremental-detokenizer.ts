import type { Tokenizer } from './tokenizer.js';

/**
 * Turns a token stream into text pieces for streaming. Each push decodes a
 * small window of recent tokens twice (with and without the new ones) and
 * emits the difference, holding back while the window ends in an incomplete
 * UTF-8 sequence. The pieces concatenate to the full decode and never split a
 * character.
 */
export class IncrementalDetokenizer {
  private readonly ids: number[];
  /** Fast path: per-token bytes through a streaming UTF-8 decoder. */
  private readonly bytes: ReturnType<Tokenizer['streamingBytes']>;
  private pending: number[] = [];
  private stripLeading: number;
  private prefixOffset = 0;
  private readOffset: number;

  /**
   * context: the tokens before the stream (the prompt's tail), so the first
   * piece decodes as it reads after them (a leading space is kept).
   */
  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly options: { skipSpecialTokens?: boolean } = {},
    context: ArrayLike<number> = [],
  ) {
    this.ids = Array.from(context).slice(-CONTEXT_TOKENS);
    this.readOffset = this.ids.length;
    this.bytes = tokenizer.streamingBytes();
    // The decoder's leading strip applies at the start of the whole text only.
    this.stripLeading = context.length > 0 ? 0 : (this.bytes?.stripLeading ?? 0);
  }

  /** Text that the new token completes; '' while it is held back. */
  push(id: number): string {
    // Ids past the tokenizer's vocabulary (padding rows of the embedding) decode to nothing.
    if (this.tokenizer.idToTokenString(id) === undefined) return '';
    if (this.bytes) {
      if (this.options.skipSpecialTokens && this.tokenizer.isSpecial(id)) return '';
      if (this.pending.length === 0) {
        const whole = this.bytes.textOf(id);
        if (whole !== null) return this.stripLeading > 0 ? this.strip(whole) : whole;
      }
      for (const b of this.bytes.bytesOf(id)) this.pending.push(b);
      const cut = completePrefix(this.pending);
      const text = UTF8.decode(Uint8Array.from(this.pending.slice(0, cut)));
      this.pending = this.pending.slice(cut);
      return this.strip(text);
    }
    this.ids.push(id);
    const prefix = this.decode(this.prefixOffset, this.readOffset);
    const text = this.decode(this.prefixOffset, this.ids.length);
    if (text.length <= prefix.length || text.endsWith('\uFFFD')) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.compact();
    return text.slice(prefix.length);
  }

  private strip(text: string): string {
    while (this.stripLeading > 0 && text.length > 0) {
      if (text[0] === ' ') text = text.slice(1);
      this.stripLeading--;
    }
    return text;
  }

  /** Whatever is still held back, at the end of the stream. */
  flush(): string {
    if (this.bytes) {
      const text = UTF8.decode(Uint8Array.from(this.pending));
      this.pending = [];
      return this.strip(text);
    }
    const prefix = this.decode(this.prefixOffset, this.readOffset);
    const text = this.decode(this.prefixOffset, this.ids.length);
    this.prefixOffset = this.readOffset = this.ids.length;
    return text.length > prefix.length ? text.slice(prefix.length) : '';
  }

  private decode(from: number, to: number): string {
    return this.tokenizer.decode(this.ids.slice(from, to), this.options);
  }

  /** Drops tokens before the window so memory stays bounded on long streams. */
  private compact(): void {
    if (this.prefixOffset < 1024) return;
    this.ids.splice(0, this.prefixOffset);
    this.readOffset -= this.prefixOffset;
    this.prefixOffset = 0;
  }
}

const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Length of the longest prefix of bytes that does not end inside a UTF-8
 * sequence; an invalid tail is not held (it decodes to U+FFFD now).
 */
function completePrefix(bytes: number[]): number {
  const n = bytes.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = bytes[n - back];
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

/** Prompt tokens kept as decoding context for the first piece. */
const CONTEXT_TOKENS = 6;
