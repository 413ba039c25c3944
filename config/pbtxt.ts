/**
 * Protocol-buffer text format, as Triton's config.pbtxt uses it: `field: value`,
 * `field { ... }`, `field: [v, v]` / `field [ {..}, {..} ]`, strings in double or
 * single quotes, # comments. A field that appears more than once, or whose value
 * is a list, becomes an array. Enum values (TYPE_INT32, KIND_GPU) stay strings.
 */
export type PbValue = string | number | boolean | PbMessage | PbValue[];
export interface PbMessage {
  [field: string]: PbValue;
}

type Token = { kind: 'ident' | 'string' | 'number' | 'punct'; text: string; line: number };

function tokenize(text: string, where: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '\n') {
      line++;
      i++;
    } else if (/\s/.test(ch)) i++;
    else if (ch === '#') while (i < text.length && text[i] !== '\n') i++;
    else if ('{}[]:,;<>'.includes(ch)) tokens.push({ kind: 'punct', text: ch, line }), i++;
    else if (ch === '"' || ch === "'") {
      let j = i + 1;
      let s = '';
      while (j < text.length && text[j] !== ch) {
        if (text[j] === '\n') throw new Error(`${where}:${line}: unterminated string`);
        if (text[j] === '\\' && j + 1 < text.length) {
          const e = text[++j];
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e;
        } else s += text[j];
        j++;
      }
      if (j >= text.length) throw new Error(`${where}:${line}: unterminated string`);
      tokens.push({ kind: 'string', text: s, line });
      i = j + 1;
    } else {
      const m = /^[-+]?[A-Za-z0-9_.]+/.exec(text.slice(i));
      if (!m) throw new Error(`${where}:${line}: unexpected character '${ch}'`);
      tokens.push({ kind: /^[-+]?(\d|\.\d)/.test(m[0]) ? 'number' : 'ident', text: m[0], line });
      i += m[0].length;
    }
  }
  return tokens;
}

/** Parses config.pbtxt text; throws an Error naming the line of the first problem. */
export function parsePbtxt(text: string, where = 'config.pbtxt'): PbMessage {
  const tokens = tokenize(text, where);
  let pos = 0;
  const peek = () => tokens[pos];
  const fail = (what: string): never => {
    const t = peek();
    throw new Error(`${where}:${t ? t.line : 'end'}: ${what}${t ? `, found '${t.text}'` : ''}`);
  };
  const take = (text: string) => {
    if (peek()?.text !== text) fail(`expected '${text}'`);
    pos++;
  };
  const closing = (open: string) => (open === '{' ? '}' : '>');

  function scalar(): PbValue {
    const t = peek();
    if (!t) return fail('expected a value');
    if (t.kind === 'string') {
      pos++;
      let s = t.text;
      while (peek()?.kind === 'string') s += tokens[pos++].text;  // adjacent strings concatenate
      return s;
    }
    if (t.kind === 'number') return pos++, Number(t.text);
    if (t.kind === 'ident') return pos++, t.text === 'true' ? true : t.text === 'false' ? false : t.text;
    return fail('expected a value');
  }

  function value(): PbValue {
    const t = peek();
    if (t?.text === '{' || t?.text === '<') {
      pos++;
      const m = message(closing(t.text));
      take(closing(t.text));
      return m;
    }
    if (t?.text === '[') {
      pos++;
      const list: PbValue[] = [];
      while (peek()?.text !== ']') {
        list.push(value());
        if (peek()?.text === ',') pos++;
        else if (peek()?.text !== ']') fail("expected ',' or ']'");
      }
      take(']');
      return list;
    }
    return scalar();
  }

  function message(end: string | null): PbMessage {
    const m: PbMessage = {};
    while (pos < tokens.length && peek().text !== end) {
      const name = peek();
      if (name.kind !== 'ident') fail('expected a field name');
      pos++;
      if (peek()?.text === ':') pos++;
      else if (!['{', '<', '['].includes(peek()?.text ?? '')) fail(`expected ':' after '${name.text}'`);
      const v = value();
      const prev = m[name.text];
      if (prev === undefined) m[name.text] = v;
      else m[name.text] = [...(Array.isArray(prev) ? prev : [prev]), ...(Array.isArray(v) ? v : [v])];
      if (peek()?.text === ',' || peek()?.text === ';') pos++;
    }
    return m;
  }

  const root = message(null);
  if (pos < tokens.length) fail('unexpected closing bracket');
  return root;
}
