// The KServe v2 (Open Inference Protocol) JSON tensors the infer route reads:
// {name, shape, datatype, data}, data row-major, flat or nested. The binary
// tensor extension is not read.
import { z } from 'zod';

import { badRequest } from '../errors.js';

export const Tensor = z.object({
  name: z.string(),
  shape: z.array(z.number().int().min(0)),
  datatype: z.string(),
  data: z.array(z.unknown()),
  parameters: z.record(z.string(), z.unknown()).optional(),
});
export type Tensor = z.infer<typeof Tensor>;

export const InferRequest = z.object({
  id: z.string().optional(),
  inputs: z.array(Tensor).min(1),
  outputs: z.array(z.object({ name: z.string(), parameters: z.record(z.string(), z.unknown()).optional() })).optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
});
export type InferRequest = z.infer<typeof InferRequest>;

const INTS = ['INT8', 'INT16', 'INT32', 'INT64', 'UINT8', 'UINT16', 'UINT32', 'UINT64'];
const FLOATS = ['FP16', 'FP32', 'FP64'];

/** The tensor's elements, row-major, checked against its shape. */
export function elements(t: Tensor): unknown[] {
  const flat = (t.data as unknown[]).flat(Infinity);
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (flat.length !== count) throw badRequest(`input '${t.name}' has shape [${t.shape.join(', ')}] (${count} elements) but ${flat.length} data elements`, t.name);
  return flat;
}

/** Rows of a [batch, n] or [n] (one row) integer tensor. */
export function intRows(t: Tensor, allowed: string[] = INTS): number[][] {
  if (!allowed.includes(t.datatype)) throw badRequest(`input '${t.name}' must be ${allowed.join(' or ')}, got ${t.datatype}`, t.name);
  if (t.shape.length < 1 || t.shape.length > 2) throw badRequest(`input '${t.name}' must have shape [n] or [batch, n], got [${t.shape.join(', ')}]`, t.name);
  const values = elements(t);
  for (const v of values) if (typeof v !== 'number' || !Number.isInteger(v)) throw badRequest(`input '${t.name}' holds ${JSON.stringify(v)}, not an integer`, t.name);
  const n = t.shape.at(-1)!;
  const rows = t.shape.length === 2 ? t.shape[0] : 1;
  return Array.from({ length: rows }, (_, r) => (values as number[]).slice(r * n, (r + 1) * n));
}

/** The strings of a BYTES tensor, one per batch item ([batch] or [batch, 1]). */
export function strings(t: Tensor): string[] {
  if (t.datatype !== 'BYTES') throw badRequest(`input '${t.name}' must be BYTES, got ${t.datatype}`, t.name);
  const values = elements(t);
  for (const v of values) if (typeof v !== 'string') throw badRequest(`input '${t.name}' holds ${JSON.stringify(v)}, not a string`, t.name);
  return values as string[];
}

/** One number per batch item of a scalar input ([1], [batch] or [batch, 1]); a single value applies to every item. */
export function scalars(t: Tensor, batch: number, kind: 'int' | 'float' | 'bool'): (number | boolean)[] {
  const ok = kind === 'int' ? INTS : kind === 'float' ? [...FLOATS, ...INTS] : ['BOOL'];
  if (!ok.includes(t.datatype)) throw badRequest(`input '${t.name}' must be ${ok.join(', ')}, got ${t.datatype}`, t.name);
  const values = elements(t);
  const type = kind === 'bool' ? 'boolean' : 'number';
  for (const v of values) if (typeof v !== type) throw badRequest(`input '${t.name}' holds ${JSON.stringify(v)}, not a ${type}`, t.name);
  if (values.length === 1) return Array(batch).fill(values[0]);
  if (values.length !== batch) throw badRequest(`input '${t.name}' has ${values.length} values for a batch of ${batch}`, t.name);
  return values as (number | boolean)[];
}
