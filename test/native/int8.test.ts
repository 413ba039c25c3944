// Weight-only INT8 on the CPU backend (--quantization int8): the embedded default
// model quantized at load against itself in float32 on held-out Shakespeare
// (issue 17's bounds: top-1 agreement at least 97%, perplexity within +1%), and
// a pre-quantized INT8 checkpoint (compressed-tensors: I8 + weight_scale) read as it is.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { Runtime, type RuntimeOptions } from '../../native/index.js';
import { relativeError } from '../helpers/batch.js';
import { compareHeldOut, corpusSkipReason, heldOutWindows, teacherForced, type Prediction } from '../helpers/held-out.js';
import { writeQuantizedCheckpoint } from '../helpers/quantized-checkpoint.js';
import { logitsAtEveryPosition } from '../helpers/stepping.js';
import { readModelConfig } from '../../native/model-config.js';
import { readSafetensorsHeader, readTensorBytes } from '../../native/safetensors.js';
import { MODELS_DIR } from '../helpers/fixtures.js';
import { writeSafetensors, type RawTensor } from '../helpers/safetensors-writer.js';

let scratch: string;
before(() => (scratch = mkdtempSync(join(tmpdir(), 'tachyon-int8-'))));
after(() => rmSync(scratch, { recursive: true, force: true }));

async function run(options: RuntimeOptions, windows: number[][]): Promise<Prediction & { dtype: string }> {
  const rt = await Runtime.load({ kvCacheBytes: 64 << 20, ...options });
  try {
    return { ...(await teacherForced(rt, windows)), dtype: rt.info.weightDtype };
  } finally {
    await rt.close();
  }
}

test('INT8 weights quantized at load agree with float32 on held-out text', { skip: corpusSkipReason() }, async () => {
  const windows = heldOutWindows();
  const f32 = await run({ modelDir: DEFAULT_MODEL_DIR }, windows);
  const int8 = await run({ modelDir: DEFAULT_MODEL_DIR, quantization: 'int8' }, windows);
  assert.equal(int8.dtype, 'I8');
  compareHeldOut('int8 (quantized at load)', f32, int8, 0.97, 0.01, 'f32');
});

test('an INT8 checkpoint (I8 + weight_scale, compressed-tensors) is read as it is and matches load-time quantization', async () => {
  const dir = join(scratch, 'tiny-int8');
  writeQuantizedCheckpoint(DEFAULT_MODEL_DIR, dir, 'int8');
  const checkpoint = await Runtime.load({ modelDir: dir, kvCacheBytes: 16 << 20 });
  const atLoad = await Runtime.load({ modelDir: DEFAULT_MODEL_DIR, kvCacheBytes: 16 << 20, quantization: 'int8' });
  const f32 = await Runtime.load({ modelDir: DEFAULT_MODEL_DIR, kvCacheBytes: 16 << 20 });
  try {
    assert.equal(checkpoint.info.weightDtype, 'I8');
    const prompt = [0, 40, 112, 9, 301, 77, 5, 260];
    const V = f32.info.vocabSize;
    const a = await logitsAtEveryPosition(checkpoint, prompt);
    const b = await logitsAtEveryPosition(atLoad, prompt);
    const c = await logitsAtEveryPosition(f32, prompt);
    for (let r = 0; r < prompt.length; r++) {
      const row = (x: Float32Array) => x.subarray(r * V, (r + 1) * V);
      // The same codes and scales up to the last bit of a scale (the writer divides in double): the same logits to 1e-4.
      assert.ok(relativeError(row(a), row(b)) < 1e-4, `row ${r}: checkpoint vs load-time ${relativeError(row(a), row(b))}`);
      // And INT8 really is in play: not the float32 logits, but near them.
      const e = relativeError(row(a), row(c));
      assert.ok(e > 1e-6 && e < 5e-2, `row ${r}: int8 vs f32 ${e}`);
    }
  } finally {
    await checkpoint.close();
    await atLoad.close();
    await f32.close();
  }
});

test('--quantization: w8a8 is refused on the CPU, and either INT8 mode beside --dtype fp8', async () => {
  const { loadConfig } = await import('../../config/load.js');
  assert.throws(() => loadConfig(['--quantization', 'w8a8'], {}), /--quantization: 'w8a8' runs on cuda only/);
  assert.throws(() => loadConfig(['--quantization', 'int8', '--device', 'cuda', '--dtype', 'fp8'], {}), /--quantization: cannot be combined with --dtype fp8/);
  assert.equal(loadConfig(['--quantization', 'int8'], {}).config.quantization, 'int8');
  assert.equal(loadConfig(['--quantization', 'w8a8', '--device', 'cuda'], {}).config.quantization, 'w8a8');
  assert.equal(loadConfig(['--quantization', 'int8', '--device', 'cuda'], {}).config.quantization, 'int8');
  // The runtime holds the same line for callers that skip the config.
  await assert.rejects(Runtime.load({ modelDir: DEFAULT_MODEL_DIR, kvCacheBytes: 16 << 20, quantization: 'w8a8' }), /'w8a8' runs on cuda only/);
});

test('quantized checkpoints the runtime cannot apply are refused at load: asymmetric INT8, INT8 in GPT-2\'s Conv1D layout', async () => {
  const asym = join(scratch, 'asym');
  writeQuantizedCheckpoint(DEFAULT_MODEL_DIR, asym, 'int8');
  const config = JSON.parse(readFileSync(join(asym, 'config.json'), 'utf8'));
  config.quantization_config.weights.symmetric = false;
  writeFileSync(join(asym, 'config.json'), JSON.stringify(config));
  await assert.rejects(Runtime.load({ modelDir: asym, kvCacheBytes: 16 << 20 }), /symmetric: false; only symmetric FP8 \/ INT8 weights/);

  const gpt2 = join(scratch, 'gpt2-i8');
  cpSync(join(MODELS_DIR, 'gpt2-tiny'), gpt2, { recursive: true });
  const file = join(gpt2, 'model.safetensors');
  const h = readSafetensorsHeader(file);
  const tensors: Record<string, RawTensor> = {};
  for (const t of h.tensors.values()) tensors[t.name] = { dtype: t.dtype, shape: t.shape, data: readTensorBytes(h, t.name) };
  const name = 'transformer.h.0.attn.c_attn.weight';
  const [rows, cols] = tensors[name].shape;
  tensors[name] = { dtype: 'I8', shape: [rows, cols], data: new Uint8Array(rows * cols) };
  tensors[`${name}_scale`] = { dtype: 'F32', shape: [rows, 1], data: new Uint8Array(new Float32Array(rows).fill(1).buffer) };
  writeSafetensors(file, tensors);
  await assert.rejects(Runtime.load({ modelDir: gpt2, kvCacheBytes: 16 << 20 }), /quantized Conv1D \(GPT-2 layout\) weights are not read/);
});

test('a compressed-tensors W8A8 export (dynamic per-token INT8 activations) is recognized, weight-only INT8 is not', () => {
  const dir = join(scratch, 'w8a8-config');
  writeQuantizedCheckpoint(DEFAULT_MODEL_DIR, dir, 'int8');
  assert.equal(readModelConfig(dir).int8Activations, false);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  // The layout llm-compressor writes: schemes under config_groups.
  config.quantization_config = {
    quant_method: 'compressed-tensors',
    format: 'int-quantized',
    config_groups: {
      group_0: {
        targets: ['Linear'],
        weights: { type: 'int', num_bits: 8, strategy: 'channel', symmetric: true, dynamic: false },
        input_activations: { type: 'int', num_bits: 8, strategy: 'token', symmetric: true, dynamic: true },
      },
    },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  assert.equal(readModelConfig(dir).int8Activations, true);
  // Static activation scales (dynamic: false) are a different scheme: not taken for W8A8.
  config.quantization_config.config_groups.group_0.input_activations.dynamic = false;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  assert.equal(readModelConfig(dir).int8Activations, false);
});
