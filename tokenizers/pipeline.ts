import { GPT2_PATTERN } from './regex.js';

/**
 * The parts of a tokenizer.json around the model: normalizer and
 * pre-tokenizer, reduced to the settings the supported families use.
 * Anything else is refused by name rather than approximated.
 */
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export type Normalize = (text: string) => string;

export function parseNormalizer(n: Json | null): Normalize {
  if (!n) return (t) => t;
  switch (n.type) {
    case 'Sequence': {
      const steps = (n.normalizers as Json[]).map(parseNormalizer);
      return (t) => steps.reduce((acc, f) => f(acc), t);
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (t) => t.normalize(n.type);
    case 'Lowercase':
      return (t) => t.toLowerCase();
    case 'Prepend':
      return (t) => (t.length > 0 ? n.prepend + t : t);
    case 'Replace': {
      if (typeof n.pattern?.String !== 'string') throw new Error('Replace normalizer with a regex pattern is not supported');
      return (t) => t.split(n.pattern.String).join(n.content);
    }
    default:
      throw new Error(`normalizer ${JSON.stringify(n.type)} is not supported`);
  }
}

/** A byte-level pre-tokenizer: one split regex, then bytes mapped to characters. */
export interface ByteLevelSplit {
  kind: 'byte-level';
  pattern: string;
  addPrefixSpace: boolean;
}

/** A SentencePiece-style pre-tokenizer: spaces become the replacement character. */
export interface MetaspaceSplit {
  kind: 'metaspace';
  replacement: string;
  prependScheme: 'always' | 'first' | 'never';
  split: boolean;
}

/** No pre-tokenizer: the (normalized) segment is one word. */
export interface NoSplit {
  kind: 'none';
}

export type PreTokenizer = ByteLevelSplit | MetaspaceSplit | NoSplit;

export function parsePreTokenizer(p: Json | null): PreTokenizer {
  if (!p) return { kind: 'none' };
  if (p.type === 'ByteLevel')
    return { kind: 'byte-level', pattern: p.use_regex === false ? '' : GPT2_PATTERN, addPrefixSpace: !!p.add_prefix_space };
  if (p.type === 'Metaspace')
    return {
      kind: 'metaspace',
      replacement: p.replacement ?? '▁',
      prependScheme: p.prepend_scheme ?? (p.add_prefix_space === false ? 'never' : 'always'),
      split: p.split ?? true,
    };
  if (p.type === 'Sequence') {
    const parts = p.pretokenizers as Json[];
    const split = parts.filter((x) => x.type === 'Split');
    const byte = parts.filter((x) => x.type === 'ByteLevel');
    if (parts.length === 2 && split.length === 1 && byte.length === 1 && parts[0] === split[0] && byte[0].use_regex === false) {
      const s = split[0];
      if (s.behavior !== 'Isolated' || s.invert) throw new Error(`Split pre-tokenizer with behavior ${s.behavior}${s.invert ? ' (inverted)' : ''} is not supported`);
      const pattern = s.pattern?.Regex;
      if (typeof pattern !== 'string') throw new Error('Split pre-tokenizer without a regex pattern is not supported');
      return { kind: 'byte-level', pattern, addPrefixSpace: !!byte[0].add_prefix_space };
    }
    if (parts.length === 1) return parsePreTokenizer(parts[0]);
    throw new Error(`pre-tokenizer sequence ${JSON.stringify(parts.map((x) => x.type))} is not supported`);
  }
  throw new Error(`pre-tokenizer ${JSON.stringify(p.type)} is not supported`);
}
