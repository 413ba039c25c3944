import { fromByteLevel } from './byte-alphabet.js';

/**
 * tokenizer.json decoders, each a step over the list of token strings, applied
 * in order as HF tokenizers does; the result is joined.
 */
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
export type DecodeStep = (tokens: string[]) => string[];

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** SentencePiece's byte-fallback token for a byte, and back (null for other tokens). */
export const byteTokenName = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
export function byteOfToken(token: string): number | null {
  const m = BYTE_TOKEN.exec(token);
  return m ? parseInt(m[1], 16) : null;
}
const UTF8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function byteLevel(tokens: string[]): string[] {
  return [UTF8.decode(Buffer.concat(tokens.map(fromByteLevel)))];
}

/** Runs of <0xXX> tokens become text; an invalid run becomes one U+FFFD per byte. */
function byteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = () => {
    if (bytes.length === 0) return;
    try {
      out.push(STRICT_UTF8.decode(Uint8Array.from(bytes)));
    } catch {
      out.push('\uFFFD'.repeat(bytes.length));
    }
    bytes = [];
  };
  for (const t of tokens) {
    const b = byteOfToken(t);
    if (b !== null) bytes.push(b);
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
}

function strip(content: string, start: number, stop: number): DecodeStep {
  return (tokens) =>
    tokens.map((t) => {
      const chars = [...t];
      let begin = 0;
      while (begin < Math.min(start, chars.length) && chars[begin] === content) begin++;
      let end = chars.length;
      while (chars.length - end < stop && end > begin && chars[end - 1] === content) end--;
      return chars.slice(begin, end).join('');
    });
}

/** As HF: every replacement character of the first token is dropped (not only a leading one). */
function metaspace(replacement: string, prependScheme: string): DecodeStep {
  return (tokens) => tokens.map((t, i) => t.split(replacement).join(i === 0 && prependScheme !== 'never' ? '' : ' '));
}

export function parseDecoder(d: Json | null): DecodeStep[] {
  if (!d) return [(tokens) => [tokens.join(' ')]];
  switch (d.type) {
    case 'Sequence':
      return (d.decoders as Json[]).flatMap(parseDecoder);
    case 'ByteLevel':
      return [byteLevel];
    case 'ByteFallback':
      return [byteFallback];
    case 'Fuse':
      return [(tokens) => [tokens.join('')]];
    case 'Strip':
      return [strip(d.content, d.start, d.stop)];
    case 'Replace': {
      if (typeof d.pattern?.String !== 'string') throw new Error('Replace decoder with a regex pattern is not supported');
      return [(tokens) => tokens.map((t) => t.split(d.pattern.String).join(d.content))];
    }
    case 'Metaspace':
      return [metaspace(d.replacement ?? '▁', d.prepend_scheme ?? (d.add_prefix_space === false ? 'never' : 'always'))];
    default:
      throw new Error(`decoder ${JSON.stringify(d.type)} is not supported`);
  }
}

export function runDecoder(steps: DecodeStep[], tokens: string[]): string {
  return steps.reduce((acc, step) => step(acc), tokens).join('');
}
