// The sampling columns are listed twice, once per language: the addon reads
// every column named in native/cpu/sampling_columns.h off the batch, the
// engine fills every column in engine/sampling-columns.ts. A column in one
// list and not the other would be silently dropped or read as garbage.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { SAMPLING_COLUMN_NAMES, SAMPLING_COLUMNS } from '../../engine/sampling-columns.js';

const HEADER = fileURLToPath(new URL('../../../native/cpu/sampling_columns.h', import.meta.url));

const ARRAY_OF_NAPI: Record<string, string> = {
  napi_float32_array: 'Float32Array',
  napi_int32_array: 'Int32Array',
  napi_biguint64_array: 'BigUint64Array',
};

test('the TypeScript and C++ sampling column lists name the same columns, in order, with the same element types', () => {
  const rows = [...readFileSync(HEADER, 'utf8').matchAll(/X\(\s*\w+,\s*\w+,\s*"(\w+)",\s*(napi_\w+),/g)];
  assert.ok(rows.length > 5, `no columns parsed from ${HEADER}`);
  assert.deepEqual(
    rows.map((m) => m[1]),
    SAMPLING_COLUMN_NAMES,
  );
  for (const [, name, napi] of rows) assert.equal(SAMPLING_COLUMNS[name as keyof typeof SAMPLING_COLUMNS].name, ARRAY_OF_NAPI[napi], `column ${name}`);
});
