/**
 * Pre-tokenizer patterns are written for Rust regex engines (Oniguruma in HF
 * tokenizers, fancy-regex in tiktoken). This rewrites the parts JavaScript
 * reads differently: inline case-insensitive groups, and \s, which in
 * JavaScript also matches U+FEFF but not U+0085.
 */
const WHITESPACE = '\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

function caseInsensitive(body: string): string {
  return body.replace(/\\.|[A-Za-z]/g, (m) => (m.length === 1 ? `[${m.toLowerCase()}${m.toUpperCase()}]` : m));
}

export function toJsRegex(pattern: string): RegExp {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (!inClass && pattern.startsWith('(?i:', i)) {
      let depth = 1;
      let j = i + 4;
      for (; j < pattern.length && depth > 0; j++) {
        if (pattern[j] === '\\') j++;
        else if (pattern[j] === '(') depth++;
        else if (pattern[j] === ')') depth--;
      }
      out += `(?:${caseInsensitive(pattern.slice(i + 4, j - 1))})`;
      i = j - 1;
    } else if (c === '\\') {
      const e = pattern[i + 1];
      if (e === 's') out += inClass ? WHITESPACE : `[${WHITESPACE}]`;
      else if (e === 'S') {
        if (inClass) throw new Error(`pre-tokenizer pattern uses \\S inside a character class, which is not supported: ${pattern}`);
        out += `[^${WHITESPACE}]`;
      } else out += c + e;
      i++;
    } else {
      if (c === '[' && !inClass) inClass = true;
      else if (c === ']' && inClass) inClass = false;
      out += c;
    }
  }
  try {
    return new RegExp(out, 'gu');
  } catch (e) {
    throw new Error(`pre-tokenizer pattern cannot be compiled: ${(e as Error).message}`);
  }
}

/** Splits text into matches and the gaps between them, all kept (HF's "Isolated"). */
export function splitIsolated(text: string, re: RegExp): string[] {
  const pieces: string[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m[0].length === 0) continue;
    if (m.index! > last) pieces.push(text.slice(last, m.index));
    pieces.push(m[0]);
    last = m.index! + m[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return pieces;
}

export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
