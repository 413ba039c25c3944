/**
 * The per-sequence sampling settings a step carries, one typed array each,
 * named as native/cpu/sampling_columns.h lists them (the addon reads every
 * column off that list; test/native/sampling-columns.test.ts checks the two
 * agree). A new knob: a line here and there, its request field
 * (app/sampling-params.ts), and its use in the samplers.
 */
export const SAMPLING_COLUMNS = {
  /** 0 = greedy. */
  temperature: Float32Array,
  /** <= 0 = off. */
  topK: Int32Array,
  /** 1 = off. */
  topP: Float32Array,
  /** 0 = off. */
  minP: Float32Array,
  seed: BigUint64Array,
  /** Top logprobs wanted, 0..20. */
  numLogprobs: Int32Array,
  /** OpenAI's: subtracted once from every token already generated. */
  presencePenalty: Float32Array,
  /** OpenAI's: subtracted per occurrence in the generated tokens. */
  frequencyPenalty: Float32Array,
  /** vLLM's: divides (multiplies, when negative) logits of tokens in the prompt or output; 1 = off. */
  repetitionPenalty: Float32Array,
  /** The runtime's token-count row for this sequence's penalties; -1 = none. */
  penaltySlot: Int32Array,
  /** Row of the step's grammar bitmasks that constrains this sequence; -1 = none. */
  maskRow: Int32Array,
} as const;

export type SamplingColumn = keyof typeof SAMPLING_COLUMNS;
export const SAMPLING_COLUMN_NAMES = Object.keys(SAMPLING_COLUMNS) as SamplingColumn[];

/** A step's sampling columns, [S] each. */
export type SamplingColumns = { [K in SamplingColumn]: InstanceType<(typeof SAMPLING_COLUMNS)[K]> };

/** One sequence's entry in every column. */
export type SamplingRow = { [K in SamplingColumn]: K extends 'seed' ? bigint : number };

/** Each column's value when a setting is off (temperature: the request default 1, where the native struct defaults to greedy). */
export const COLUMN_DEFAULTS: SamplingRow = {
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  seed: 0n,
  numLogprobs: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  penaltySlot: -1,
  maskRow: -1,
};

/** Columns of S entries each, in buffers of at least that length (views are taken per step). */
export function allocateColumns(S: number): SamplingColumns {
  const out = {} as Record<SamplingColumn, unknown>;
  for (const name of SAMPLING_COLUMN_NAMES) out[name] = new SAMPLING_COLUMNS[name](S);
  return out as SamplingColumns;
}

/** Columns of S entries, each at its default or at the value given for every sequence. */
export function uniformColumns(S: number, values: Partial<SamplingRow> = {}): SamplingColumns {
  const cols = allocateColumns(S);
  for (const name of SAMPLING_COLUMN_NAMES) (cols[name] as { fill(v: unknown): unknown }).fill(values[name] ?? COLUMN_DEFAULTS[name]);
  return cols;
}
