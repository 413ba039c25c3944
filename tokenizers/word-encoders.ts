import { Tiktoken } from 'tiktoken/lite';

import { toByteLevel } from './byte-alphabet.js';
import { bpeWord, type BpeModel } from './bpe.js';
import type { MetaspaceSplit, Normalize, PreTokenizer } from './pipeline.js';
import { splitIsolated, toJsRegex } from './regex.js';

/** Turns one text segment (no added tokens in it) into model token ids. */
export interface SegmentEncoder {
  readonly engine: 'tiktoken' | 'bpe';
  /** isFirst: the segment starts at offset 0 of the input (Metaspace "first"). */
  encode(segment: string, isFirst: boolean): number[];
  free(): void;
}

/** Byte-level BPE run by tiktoken's Rust core (regex split and merges). */
export class TiktokenEncoder implements SegmentEncoder {
  readonly engine = 'tiktoken';
  private readonly core: Tiktoken;

  constructor(ranks: string, pattern: string, private readonly normalize: Normalize, private readonly addPrefixSpace: boolean) {
    this.core = new Tiktoken(ranks, {}, pattern);
  }

  encode(segment: string): number[] {
    let text = this.normalize(segment);
    if (this.addPrefixSpace && !text.startsWith(' ')) text = ' ' + text;
    return Array.from(this.core.encode_ordinary(text));
  }

  free(): void {
    this.core.free();
  }
}

/** Byte-level BPE in TypeScript, for vocabularies tiktoken cannot express exactly. */
export class ByteLevelBpeEncoder implements SegmentEncoder {
  readonly engine = 'bpe';
  private readonly re: RegExp | null;

  constructor(private readonly model: BpeModel, pattern: string, private readonly normalize: Normalize, private readonly addPrefixSpace: boolean) {
    this.re = pattern ? toJsRegex(pattern) : null;
  }

  encode(segment: string): number[] {
    let text = this.normalize(segment);
    if (this.addPrefixSpace && !text.startsWith(' ')) text = ' ' + text;
    const pieces = this.re ? splitIsolated(text, this.re) : [text];
    return pieces.flatMap((p) => bpeWord(this.model, toByteLevel(p)));
  }

  free(): void {}
}

/** SentencePiece-style BPE: characters (byte fallback), spaces as the replacement character. */
export class SentencePieceEncoder implements SegmentEncoder {
  readonly engine = 'bpe';

  constructor(private readonly model: BpeModel, private readonly pre: PreTokenizer, private readonly normalize: Normalize) {}

  encode(segment: string, isFirst: boolean): number[] {
    const text = this.normalize(segment);
    return this.words(text, isFirst).flatMap((w) => bpeWord(this.model, w));
  }

  private words(text: string, isFirst: boolean): string[] {
    if (this.pre.kind !== 'metaspace') return text.length > 0 ? [text] : [];
    const m: MetaspaceSplit = this.pre;
    let s = text.split(' ').join(m.replacement);
    const prepend = m.prependScheme === 'always' || (m.prependScheme === 'first' && isFirst);
    if (prepend && !s.startsWith(m.replacement)) s = m.replacement + s;
    if (!m.split) return s.length > 0 ? [s] : [];
    // Split before each replacement character, which starts the next word.
    const words: string[] = [];
    let cur = '';
    for (const ch of s) {
      if (ch === m.replacement && cur.length > 0) {
        words.push(cur);
        cur = '';
      }
      cur += ch;
    }
    if (cur.length > 0) words.push(cur);
    return words;
  }

  free(): void {}
}
