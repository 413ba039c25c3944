/**
 * Python's repr() of Jinja runtime values, for templates that print a dict or
 * list with `|string` or `{{ }}` (Mistral's tool list): transformers renders
 * those with Python's str(), single quotes and True / None.
 */
interface RuntimeValue {
  type: string;
  value: unknown;
}

function reprString(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\' || ch === quote) out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + quote;
}

export function pythonRepr(v: RuntimeValue): string {
  switch (v.type) {
    case 'NullValue':
    case 'UndefinedValue':
      return 'None';
    case 'BooleanValue':
      return v.value ? 'True' : 'False';
    case 'StringValue':
      return reprString(v.value as string);
    case 'ArrayValue':
      return `[${(v.value as RuntimeValue[]).map(pythonRepr).join(', ')}]`;
    case 'ObjectValue':
      return `{${[...(v.value as Map<string, RuntimeValue>)].map(([k, x]) => `${reprString(k)}: ${pythonRepr(x)}`).join(', ')}}`;
    default:
      return String((v as { toString(): string }).toString());
  }
}
