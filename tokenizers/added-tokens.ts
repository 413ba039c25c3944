/**
 * Added tokens (special and not) are found in the raw text before the model
 * sees it, leftmost-longest, honouring lstrip / rstrip / single_word, as HF
 * tokenizers does.
 */
export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  singleWord: boolean;
}

export type Segment = { text: string; start: number } | { id: number };

export interface SplitOptions {
  /** Match special tokens too (control tokens written in the text). */
  parseSpecial: boolean;
  /** [start, end) character ranges that are always text: no added token is matched inside them. */
  literalRanges?: [number, number][];
}

const WORD_CHAR = /[\p{L}\p{N}_]/u;
const SPACE = /\s/u;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class AddedTokenSplitter {
  private readonly all: RegExp | null;
  private readonly plain: RegExp | null;
  private readonly byContent: Map<string, AddedToken>;

  constructor(tokens: AddedToken[]) {
    this.byContent = new Map(tokens.map((t) => [t.content, t]));
    this.all = AddedTokenSplitter.matcher(tokens);
    this.plain = AddedTokenSplitter.matcher(tokens.filter((t) => !t.special));
  }

  private static matcher(tokens: AddedToken[]): RegExp | null {
    const contents = tokens.map((t) => t.content).filter((c) => c.length > 0);
    if (contents.length === 0) return null;
    // Longest first, so the alternation takes the longest token at the leftmost position.
    contents.sort((a, b) => b.length - a.length);
    return new RegExp(contents.map(escapeRegex).join('|'), 'gu');
  }

  split(text: string, options: SplitOptions): Segment[] {
    const re = options.parseSpecial ? this.all : this.plain;
    if (!re) return text.length > 0 ? [{ text, start: 0 }] : [];
    const literal = options.literalRanges ?? [];
    const out: Segment[] = [];
    let last = 0;
    for (const m of text.matchAll(re)) {
      let start = m.index!;
      let end = start + m[0].length;
      if (start < last) continue;
      if (literal.some(([a, b]) => start < b && end > a)) continue;
      const tok = this.byContent.get(m[0])!;
      if (tok.singleWord && ((start > 0 && WORD_CHAR.test(text[start - 1])) || (end < text.length && WORD_CHAR.test(text[end]))))
        continue;
      if (tok.lstrip) while (start > last && SPACE.test(text[start - 1])) start--;
      if (tok.rstrip) while (end < text.length && SPACE.test(text[end])) end++;
      if (start > last) out.push({ text: text.slice(last, start), start: last });
      out.push({ id: tok.id });
      last = end;
    }
    if (last < text.length) out.push({ text: text.slice(last), start: last });
    return out;
  }
}
