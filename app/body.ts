import type { Context } from 'hono';
import type { z } from 'zod';

import { badRequest } from './errors.js';

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Reads a JSON body: 400 for invalid UTF-8 or malformed JSON, never a crash. */
export async function readJson(c: Context): Promise<unknown> {
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  let text: string;
  try {
    text = STRICT_UTF8.decode(bytes);
  } catch {
    throw badRequest('the request body is not valid UTF-8', null, 'invalid_encoding');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json');
  }
}

/** Validates with a zod schema; the first issue becomes a 400 naming the field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = specific(r.error.issues[0] as Issue);
  let path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
  const keys = (issue as { keys?: string[] }).keys;
  if (issue.code === 'unrecognized_keys' && keys?.length) {
    path = [path, keys[0]].filter(Boolean).join('.');
    throw badRequest(`unsupported parameter: '${path}' is not a parameter this server understands`, path, 'unsupported_parameter');
  }
  throw badRequest(path ? `${path}: ${issue.message}` : issue.message, path || null);
}

interface Issue {
  code: string;
  path: PropertyKey[];
  message: string;
  errors?: Issue[][];
}

/** For a union, the branch that got furthest into the value says what is wrong. */
function specific(issue: Issue): Issue {
  if (issue.code !== 'invalid_union' || !issue.errors?.length) return issue;
  let best: Issue | null = null;
  for (const branch of issue.errors) {
    const first = branch[0];
    if (first && (!best || first.path.length > best.path.length)) best = first;
  }
  if (!best || best.path.length === 0) return issue;
  const inner = specific(best);
  return { ...inner, path: [...issue.path, ...inner.path] };
}
