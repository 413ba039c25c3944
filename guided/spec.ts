/**
 * What a request asks its output to follow, in the grammar engine's terms.
 * The app maps response_format, structured_outputs and forced tool calls to
 * one of these (app/guided-request.ts); GrammarService compiles it.
 */
export type GuideSpec =
  /** Any JSON object (response_format json_object, structured_outputs.json_object). */
  | { kind: 'json_object' }
  /** JSON valid against a JSON schema (an object, or true / false). */
  | { kind: 'json_schema'; schema: unknown }
  | { kind: 'regex'; pattern: string }
  /** Exactly one of these strings. */
  | { kind: 'choice'; choices: string[] }
  /** A grammar in xgrammar's EBNF (GBNF-style, root rule 'root'). */
  | { kind: 'grammar'; ebnf: string };

/** A spec the grammar engine refuses; message is its reason, for a 400. */
export class GuideError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GuideError';
  }
}

/** The cache key: the same spec with object keys in any order gives the same key. */
export function specKey(spec: GuideSpec): string {
  return canonicalJson(spec);
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}
