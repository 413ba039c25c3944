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
  }

  /** Text that the new token completes; '' while it is held back. */
  push(id: number): string {
    this.ids.push(id);
    const prefix = this.decode(this.prefixOffset, this.readOffset);
    const text = this.decode(this.prefixOffset, this.ids.length);
    if (text.length <= prefix.length || text.endsWith('\uFFFD')) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    this.compact();
    return text.slice(prefix.length);
  }

  /** Whatever is still held back, at the end of the stream. */
  flush(): string {
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

/** Prompt tokens kept as decoding context for the first piece. */
const CONTEXT_TOKENS = 6;
