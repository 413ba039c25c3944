/**
 * xgrammar 0.1.27 writes a schema's property names into its grammar without
 * escaping them: a name holding a double quote or a backslash gives a grammar
 * that does not compile, or one whose output is not JSON. Such names are
 * swapped for plain placeholders before the schema goes in, and the
 * placeholders' literals in the grammar text swapped back for the names'
 * correctly escaped JSON.
 */
export function withPlainPropertyNames(schema: unknown): { schema: unknown; restore(ebnf: string): string } {
  const text = JSON.stringify(schema) ?? '';
  let n = 0;
  const names = new Map<string, string>();
  const placeholder = (name: string): string => {
    if (JSON.stringify(name) === `"${name}"`) return name;
    let p: string;
    do p = `tachyon_property_${n++}`;
    while (text.includes(p));
    names.set(p, name);
    return p;
  };
  const out = rename(schema, placeholder);
  return {
    schema: out,
    restore: (ebnf) => {
      for (const [p, name] of names) ebnf = ebnf.split(ebnfLiteral(JSON.stringify(p))).join(ebnfLiteral(JSON.stringify(name)));
      return ebnf;
    },
  };
}

/** Keywords whose values are data, not schemas: nothing in them is renamed. */
const DATA_KEYWORDS = new Set(['enum', 'const', 'default', 'examples']);

function rename(node: unknown, placeholder: (name: string) => string): unknown {
  if (Array.isArray(node)) return node.map((v) => rename(v, placeholder));
  if (node === null || typeof node !== 'object') return node;
  const src = node as Record<string, unknown>;
  const swapped = new Map<string, string>();
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) {
    if (k === 'properties' && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      out[k] = Object.fromEntries(
        Object.entries(v).map(([name, sub]) => {
          const p = placeholder(name);
          swapped.set(name, p);
          return [p, rename(sub, placeholder)];
        }),
      );
    } else out[k] = DATA_KEYWORDS.has(k) ? v : rename(v, placeholder);
  }
  if (Array.isArray(src.required)) out.required = src.required.map((r) => (typeof r === 'string' ? (swapped.get(r) ?? r) : r));
  return out;
}

/** A string as an xgrammar EBNF literal. */
function ebnfLiteral(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
