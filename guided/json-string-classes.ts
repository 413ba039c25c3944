/**
 * xgrammar 0.1.27's JSON-schema grammars let characters into JSON strings
 * that JSON does not allow there raw:
 * - strings with a length bound (maxLength, minLength) become [^"\\\r\n]{m,n},
 *   which admits control characters (a model does write a raw tab);
 * - a `pattern` is matched against the string's text as written, so its `.`
 *   ([\u0000-\U0010FFFF]) and negated classes ([^a]) admit `"`, `\` and
 *   control characters, and the output stops being JSON.
 * Every negated class, and the any-character class, is narrowed here to
 * exclude them; a value that then matches is its own JSON text, so it still
 * matches the pattern once decoded. (A pattern that names such characters
 * itself, say \s or [\t ], keeps them: a known gap.) Character classes are
 * found outside the grammar's quoted literals, so an enum value holding "[^"
 * is left alone.
 */
const ANY_CHARACTER = String.raw`[\u0000-\U0010FFFF]`;
const NOT_IN_JSON_STRINGS = String.raw`\0-\x1f"\\`;

export function jsonSafeCharacterClasses(ebnf: string): string {
  let out = '';
  let i = 0;
  while (i < ebnf.length) {
    const c = ebnf[i];
    if (c === '"') {
      // A quoted literal, copied as it is (escapes included).
      let j = i + 1;
      while (j < ebnf.length && ebnf[j] !== '"') j += ebnf[j] === '\\' ? 2 : 1;
      out += ebnf.slice(i, j + 1);
      i = j + 1;
    } else if (c === '[') {
      let j = i + 1;
      while (j < ebnf.length && ebnf[j] !== ']') j += ebnf[j] === '\\' ? 2 : 1;
      const cls = ebnf.slice(i, j + 1);
      if (cls === ANY_CHARACTER) out += `[^${NOT_IN_JSON_STRINGS}]`;
      else if (cls.startsWith('[^')) out += `[^${NOT_IN_JSON_STRINGS}${cls.slice(2)}`;
      else out += cls;
      i = j + 1;
    } else if (c === '(' && ebnf[i + 1] === '=') {
      // A lookahead, such as (= [ \n\t]* [,}\]:]) after a string: about what follows, not what is written; copied to its end.
      let depth = 0;
      let j = i;
      for (; j < ebnf.length; j++) {
        if (ebnf[j] === '"' || ebnf[j] === '[') {
          const close = ebnf[j] === '"' ? '"' : ']';
          j++;
          while (j < ebnf.length && ebnf[j] !== close) j += ebnf[j] === '\\' ? 2 : 1;
          continue;
        }
        if (ebnf[j] === '(') depth++;
        else if (ebnf[j] === ')' && --depth === 0) break;
      }
      out += ebnf.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
