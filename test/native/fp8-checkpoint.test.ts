// Checkpoints that are already FP8 (E4M3 weights with weight_scale): the CPU
// backend reads them dequantized; the same file in CUDA is used as it is.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { Runtime } from '../../native/index.js';
import { readSafetensorsHeader, readTensorBytes } from '../../native/safetensors.js';
import { blockRange, makeBatch } from '../helpers/batch.js';
import { toE4M3, writeFp8Checkpoint } from '../helpers/quantized-checkpoint.js';
import { writeSafetensors, type RawTensor } from '../helpers/safetensors-writer.js';

let scratch: string;
let fp8Dir: string;
before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'tachyon-fp8-'));
  fp8Dir = join(scratch, 'tiny-fp8');
  writeFp8Checkpoint(DEFAULT_MODEL_DIR, fp8Dir);
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test('the E4M3 encoder rounds to nearest even and saturates', () => {
  assert.equal(toE4M3(1), 0x38);
  assert.equal(toE4M3(-2), 0xc0);
  assert.equal(toE4M3(448), 0x7e);
  assert.equal(toE4M3(1e6), 0x7e);
  assert.equal(toE4M3(1.0625), 0x38); // halfway between 1 and 1.125: even mantissa
  assert.equal(toE4M3(2 ** -9), 0x01);
  assert.equal(toE4M3(0), 0x00);
});

/** Top-1 prediction after each prefix, one token per step. */
async function top1(modelDir: string, tokens: number[]): Promise<number[]> {
  const rt = await Runtime.load({ modelDir, kvCacheBytes: 16 << 20 });
  const blocks = blockRange(0, Math.ceil(tokens.length / rt.info.blockSize));
  const out: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const r = await rt.step(makeBatch([{ tokens: [tokens[i]], start: i, blocks }]));
    out.push(r.tokens[0]);
  }
  await rt.close();
  return out;
}

test('an FP8 checkpoint loads on the CPU and predicts like the F32 original', async () => {
  const text = Array.from({ length: 160 }, (_, i) => 20 + ((i * 37) % 900));
  const a = await top1(DEFAULT_MODEL_DIR, text);
  const b = await top1(fp8Dir, text);
  const agree = a.filter((t, i) => t === b[i]).length / a.length;
  assert.ok(agree >= 0.95, `top-1 agreement ${agree}`);
});

test('an FP8 weight without its scale is refused by name', async () => {
  const dir = join(scratch, 'no-scale');
  writeFp8Checkpoint(DEFAULT_MODEL_DIR, dir);
  const file = join(dir, 'model.safetensors');
  const h = readSafetensorsHeader(file);
  const tensors: Record<string, RawTensor> = {};
  for (const t of h.tensors.values())
    if (t.name !== 'model.layers.0.mlp.down_proj.weight_scale') tensors[t.name] = { dtype: t.dtype, shape: t.shape, data: readTensorBytes(h, t.name) };
  writeSafetensors(file, tensors);
  await assert.rejects(Runtime.load({ modelDir: dir, kvCacheBytes: 16 << 20 }), /FP8 tensor model\.layers\.0\.mlp\.down_proj\.weight has no model\.layers\.0\.mlp\.down_proj\.weight_scale/);
});
