// INT8 on the CUDA backend (issue 17), on the embedded default model against BF16 on held-out
// Shakespeare: weight-only INT8 (--quantization int8) within +1% perplexity, W8A8 (--quantization
// w8a8: per-token INT8 activations through cuBLASLt's INT8 tensor cores) within +2%, both with
// top-1 agreement of at least 97%. Steps of few tokens take the GEMVs (weight-only arithmetic
// either way); both paths are checked for both modes, W8A8's few-row path under its own bound.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { Runtime, type RuntimeOptions } from '../../native/index.js';
import { relativeError } from '../helpers/batch.js';
import { MODELS_DIR } from '../helpers/fixtures.js';
import { gpuSkipReason } from '../helpers/gpu.js';
import { compareHeldOut, corpusSkipReason, heldOutWindows, teacherForced as forced, type Prediction } from '../helpers/held-out.js';
import { writeQuantizedCheckpoint } from '../helpers/quantized-checkpoint.js';
import { logitsAtEveryPosition } from '../helpers/stepping.js';

const skip = gpuSkipReason() || corpusSkipReason();

async function teacherForced(windows: number[][], options: Partial<RuntimeOptions> = {}, batchedPath = false) {
  // batchedPath: the kernels steps of more than 4 tokens take, even for these few rows.
  const rt = await Runtime.load({
    modelDir: DEFAULT_MODEL_DIR,
    device: 'cuda',
    dtype: 'bf16',
    kvCacheBytes: 64 << 20,
    ...options,
    cuda: { fusedGemv: !batchedPath, batchInvariant: false },
  });
  try {
    return { ...(await forced(rt, windows)), dtype: rt.info.weightDtype };
  } finally {
    await rt.close();
  }
}

let reference: Promise<Prediction> | undefined;
const bf16 = () => (reference ??= teacherForced(heldOutWindows()));

// Perplexity bounds: +1% weight-only, +2% W8A8.
const MODES = [
  { quantization: 'int8', name: 'weight-only INT8', batched: 'bf16 GEMM on widened weights', maxPplRise: 0.01 },
  { quantization: 'w8a8', name: 'W8A8', batched: 'cuBLASLt INT8', maxPplRise: 0.02 },
] as const;

for (const mode of MODES) {
  test(`${mode.name} agrees with BF16 on the default model (batched and few-row paths)`, { skip }, async () => {
    const windows = heldOutWindows();
    const batched = await teacherForced(windows, { quantization: mode.quantization }, true);
    assert.equal(batched.dtype, mode.quantization);
    compareHeldOut(`${mode.quantization}, batched (${mode.batched})`, await bf16(), batched, 0.97, mode.maxPplRise, 'bf16');
    const fewRows = await teacherForced(windows, { quantization: mode.quantization });
    compareHeldOut(`${mode.quantization}, few-row GEMVs`, await bf16(), fewRows, 0.97, mode.maxPplRise, 'bf16');
  });
}

test('an INT8 checkpoint (compressed-tensors) is served as INT8 on cuda, weight-only or W8A8', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tachyon-int8-'));
  try {
    writeQuantizedCheckpoint(DEFAULT_MODEL_DIR, join(dir, 'm'), 'int8');
    const windows = heldOutWindows();
    const forcedOn = (options: Partial<RuntimeOptions>) => teacherForced(windows, { modelDir: join(dir, 'm'), ...options }, true);
    const plain = await forcedOn({});
    assert.equal(plain.dtype, 'int8', 'an INT8 checkpoint keeps its int8 weights without --quantization');
    // Its scales come from the F32 weights, load-time quantization's from BF16: a few near ties land
    // differently (as the FP8 checkpoint test allows).
    compareHeldOut('int8 checkpoint', await bf16(), plain, 0.96, 0.01, 'bf16');
    const w8a8 = await forcedOn({ quantization: 'w8a8' });
    assert.equal(w8a8.dtype, 'w8a8');
    compareHeldOut('int8 checkpoint as w8a8', await bf16(), w8a8, 0.96, 0.02, 'bf16');
    // A W8A8 export (dynamic per-token INT8 activations in its config) is served W8A8 unasked.
    const configPath = join(dir, 'm', 'config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8'));
    config.quantization_config.input_activations = { type: 'int', num_bits: 8, strategy: 'token', dynamic: true };
    writeFileSync(configPath, JSON.stringify(config));
    const rt = await Runtime.load({ modelDir: join(dir, 'm'), device: 'cuda', kvCacheBytes: 16 << 20 });
    assert.equal(rt.info.weightDtype, 'w8a8');
    await rt.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('W8A8 and weight-only INT8 serve a GPT-2 (biases, GELU) close to BF16', { skip: gpuSkipReason() }, async () => {
  const load = (quantization?: 'int8' | 'w8a8') =>
    Runtime.load({ modelDir: join(MODELS_DIR, 'gpt2-tiny'), device: 'cuda', dtype: 'bf16', kvCacheBytes: 16 << 20, quantization });
  const prompt = [0, 40, 112, 9, 301, 77, 5, 260, 31, 8];
  const ref = await load();
  const V = ref.info.vocabSize;
  const a = await logitsAtEveryPosition(ref, prompt);
  await ref.close();
  for (const q of ['int8', 'w8a8'] as const) {
    const rt = await load(q);
    const b = await logitsAtEveryPosition(rt, prompt);
    await rt.close();
    // Random weights: INT8 rounding of every projection moves logits by a percent or so, never by tens.
    for (let r = 0; r < prompt.length; r++) {
      const e = relativeError(a.subarray(r * V, (r + 1) * V), b.subarray(r * V, (r + 1) * V));
      assert.ok(e > 1e-5 && e < 0.1, `${q} row ${r}: ${e}`);
    }
  }
});
