// Held-out Shakespeare for accuracy checks of quantized weights on the embedded
// default model (FP8 on the GPU, INT8 on the CPU): teacher-forced top-1
// agreement and perplexity against an unquantized reference.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { packageRoot } from '../../native/binding.js';
import { Runtime, type RuntimeOptions } from '../../native/index.js';
import { loadTokenizer } from '../../tokenizers/tokenizer.js';
import { blockRange, makeBatch } from './batch.js';

export const CORPUS = process.env.TACHYON_SHAKESPEARE ?? join(packageRoot(), '..', 'shared', 'data', 'tinyshakespeare.txt');
// Three windows of 800 tokens (the model's context is 1,024), 2,397 predicted positions: with
// agreement near 97%, one window's 799 left a binomial standard error of 0.6 points, enough for
// a 3-token swing to decide a test.
const WINDOW = 800;
const WINDOWS = 3;

/** Why the held-out checks cannot run here, or false. */
export const corpusSkipReason = (): string | false => (existsSync(CORPUS) ? false : `no ${CORPUS} (set TACHYON_SHAKESPEARE)`);

/** tokenizerDir: the model's whose tokens these are (the embedded default model's unless given). */
export function heldOutWindows(tokenizerDir: string = DEFAULT_MODEL_DIR): number[][] {
  // Held-out speeches from the last 10% (the model never trained on them), in its
  // training format: each speech followed by <|end_of_text|>.
  const text = readFileSync(CORPUS, 'utf8');
  const speeches = text.slice(Math.floor(text.length * 0.95)).split('\n\n').map((p) => p.trim()).filter(Boolean);
  const tok = loadTokenizer(tokenizerDir);
  const eot = tok.tokenToId('<|end_of_text|>')!;
  const tokens = speeches.flatMap((p) => [...tok.encode(p + '\n'), eot]).slice(0, WINDOWS * WINDOW);
  tok.free();
  return Array.from({ length: WINDOWS }, (_, k) => tokens.slice(k * WINDOW, (k + 1) * WINDOW));
}

export interface Prediction {
  top1: number[];
  ppl: number;
}

/**
 * Teacher forcing, the windows side by side: step i gives each window chunkAt(w, i) (its tokens
 * from position start) and reads the logits that predict w[i + 1], for i below n - 1.
 */
async function forced(rt: Runtime, windows: number[][], n: number,
  chunkAt: (w: number[], i: number) => { tokens: number[]; start: number }): Promise<Prediction> {
  const V = rt.info.vocabSize;
  const perWindow = Math.ceil(n / rt.info.blockSize);
  const top1: number[][] = windows.map(() => []);
  let nll = 0;
  let count = 0;
  for (let i = 0; i + 1 < n; i++) {
    const chunks = windows.map((w, k) => ({ ...chunkAt(w, i), blocks: blockRange(k * perWindow, perWindow) }));
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
  return { top1: top1.flat(), ppl: Math.exp(nll / count) };
}

/** Logits after each prefix of each window, one token per step (teacher forcing), the windows side by side. */
export function teacherForced(rt: Runtime, windows: number[][]): Promise<Prediction> {
  return forced(rt, windows, WINDOW, (w, i) => ({ tokens: [w[i]], start: i }));
}

/**
 * Teacher forcing where every step takes the prefill kernel: each window's step is the 2-token
 * chunk (w[i - 1], w[i]) at positions i - 1 and i, so a query tile holds two tokens. Position i - 1
 * is written again with what it already held.
 */
export function prefillForced(rt: Runtime, windows: number[][]): Promise<Prediction> {
  return forced(rt, windows, windows[0].length, (w, i) => ({ tokens: i === 0 ? [w[0]] : [w[i - 1], w[i]], start: Math.max(0, i - 1) }));
}

/** A runtime loaded with options, forced one token a step (teacherForced) or through the prefill kernel (prefillForced), then closed. */
export async function loadAndForce(options: RuntimeOptions, prefill: boolean, windows: number[][]): Promise<Prediction> {
  const rt = await Runtime.load(options);
  try {
    return prefill ? await prefillForced(rt, windows) : await teacherForced(rt, windows);
  } finally {
    await rt.close();
  }
}

/** Ours against the reference: top-1 agreement (a fraction) and the perplexity's rise (0.01: 1% higher). */
export function heldOutAgreement(reference: Prediction, ours: Prediction): { agree: number; pplRise: number } {
  return { agree: reference.top1.filter((t, i) => t === ours.top1[i]).length / reference.top1.length, pplRise: ours.ppl / reference.ppl - 1 };
}

/** Asserts top-1 agreement of at least minAgreement and a perplexity at most maxPplRise above the reference's. */
export function compareHeldOut(name: string, reference: Prediction, ours: Prediction, minAgreement: number, maxPplRise: number, refName: string) {
  const { agree, pplRise } = heldOutAgreement(reference, ours);
  console.log(`${name} vs ${refName} over ${reference.top1.length} positions: top-1 agreement ${(agree * 100).toFixed(2)}%, perplexity ${ours.ppl.toFixed(3)} vs ${reference.ppl.toFixed(3)} (${(pplRise * 100).toFixed(2)}%)`);
  assert.ok(agree >= minAgreement, `top-1 agreement ${agree}`);
  assert.ok(pplRise <= maxPplRise, `perplexity ratio ${pplRise + 1}`);
}
