// Native sampling: seeded reproducibility, logprobs, and the distribution of
// draws against softmax(logits / T) after top-k / top-p / min-p filtering.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Runtime } from '../../native/index.js';
import { blockRange, makeBatch, type Chunk } from '../helpers/batch.js';
import { MODELS_DIR } from '../helpers/fixtures.js';

let rt: Runtime;
before(async () => {
  rt = await Runtime.load({ modelDir: join(MODELS_DIR, 'llama-gqa-tied'), kvCacheBytes: 16 * 1024 * 1024, maxNumSeqs: 256 });
});
after(() => rt.close());

const PROMPT = [1, 57, 200, 13];

interface Filters {
  temperature: number;
  topK?: number;
  topP?: number;
  minP?: number;
}

/** Samples `steps` tokens after PROMPT, one sequence; `neighbours` run in the same batches. */
async function sampleRun(filters: Filters, seed: bigint, steps: number, neighbours = 0): Promise<number[]> {
  const blocks = [0, 1, 2];
  const extra = (i: number): Chunk => ({ tokens: [3 + i, 9], start: 0, blocks: [10 + i], temperature: 1, seed: BigInt(i) });
  const out: number[] = [];
  let chunk: Chunk = { tokens: PROMPT, start: 0, blocks, seed, ...filters };
  for (let i = 0; i < steps; i++) {
    const res = await rt.step(makeBatch([...Array.from({ length: neighbours }, (_, j) => extra(j)), chunk]));
    const tok = res.tokens[neighbours];
    out.push(tok);
    chunk = { ...chunk, tokens: [tok], start: PROMPT.length + i };
  }
  return out;
}

test('the same seed gives the same tokens, alone or beside other requests', async () => {
  const filters = { temperature: 1.0, topP: 0.95 };
  const first = await sampleRun(filters, 1234n, 24);
  assert.deepEqual(await sampleRun(filters, 1234n, 24), first);
  assert.deepEqual(await sampleRun(filters, 1234n, 24, 5), first);
  assert.notDeepEqual(await sampleRun(filters, 1235n, 24), first);
});

function logSoftmax(logits: Float32Array): number[] {
  const m = Math.max(...logits);
  const lse = m + Math.log(logits.reduce((s, l) => s + Math.exp(l - m), 0));
  return [...logits].map((l) => l - lse);
}

test('greedy picks the argmax; logprobs are log-softmax of the raw logits', async () => {
  const res = await rt.step(makeBatch([{ tokens: PROMPT, start: 0, blocks: [0], numLogprobs: 5 }], true));
  const logits = res.logits!;
  const lp = logSoftmax(logits);
  const ranked = lp.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
  assert.equal(res.tokens[0], ranked[0][1]);
  assert.ok(Math.abs(res.logprobs[0] - ranked[0][0]) < 1e-5);
  assert.equal(res.topN, 5);
  assert.deepEqual([...res.topIds], ranked.slice(0, 5).map((r) => r[1]));
  for (let i = 0; i < 5; i++) assert.ok(Math.abs(res.topLogprobs[i] - ranked[i][0]) < 1e-5);
});

/** Expected draw probabilities under the runtime's documented filter order. */
function expectedDistribution(logits: Float32Array, f: Filters): Map<number, number> {
  const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b);
  let kept = f.topK && f.topK > 0 ? order.slice(0, f.topK) : order;
  const top = logits[order[0]];
  let w = kept.map((i) => Math.exp((logits[i] - top) / f.temperature));
  if (f.topP !== undefined && f.topP < 1) {
    const total = w.reduce((a, b) => a + b, 0);
    let cum = 0;
    let n = 0;
    while (n < w.length) {
      cum += w[n++];
      if (cum >= f.topP * total) break;
    }
    kept = kept.slice(0, n);
    w = w.slice(0, n);
  }
  if (f.minP) {
    const n = w.filter((x) => x >= f.minP! * w[0]).length;
    kept = kept.slice(0, n);
    w = w.slice(0, n);
  }
  const total = w.reduce((a, b) => a + b, 0);
  return new Map(kept.map((tok, i) => [tok, w[i] / total]));
}

/** Pearson's X² of counts against probabilities, with bins of expected count < 5 merged. */
function chiSquare(counts: Map<number, number>, probs: Map<number, number>, n: number): { x2: number; df: number } {
  let x2 = 0;
  let bins = 0;
  let poolObs = 0;
  let poolExp = 0;
  for (const [tok, p] of probs) {
    const obs = counts.get(tok) ?? 0;
    if (n * p < 5) {
      poolObs += obs;
      poolExp += n * p;
      continue;
    }
    x2 += (obs - n * p) ** 2 / (n * p);
    bins++;
  }
  if (poolExp > 0) {
    x2 += (poolObs - poolExp) ** 2 / poolExp;
    bins++;
  }
  return { x2, df: bins - 1 };
}

/** Upper quantile of chi-square at p = 1e-6 (Wilson–Hilferty), so a correct sampler fails 1 run in a million. */
function chiSquareCritical(df: number): number {
  const z = 4.753;
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}

const SEQS = 256;
const STEPS = 16;

async function draw(f: Filters, seedBase: number): Promise<{ counts: Map<number, number>; logits: Float32Array }> {
  const counts = new Map<number, number>();
  let logits: Float32Array | undefined;
  for (let step = 0; step < STEPS; step++) {
    const chunks = Array.from({ length: SEQS }, (_, s): Chunk => ({
      tokens: PROMPT, start: 0, blocks: [s], seed: BigInt(seedBase + step * SEQS + s), ...f,
    }));
    const res = await rt.step(makeBatch(chunks, step === 0));
    if (step === 0) logits = res.logits!.slice(0, rt.info.vocabSize);
    for (const t of res.tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  return { counts, logits: logits! };
}

describe('the empirical distribution of draws matches the filtered softmax', () => {
  const cases: [string, Filters][] = [
    ['temperature 1.6', { temperature: 1.6 }],
    ['temperature 0.8, top-k 12', { temperature: 0.8, topK: 12 }],
    ['temperature 1.2, top-p 0.6', { temperature: 1.2, topP: 0.6 }],
    ['temperature 1.5, min-p 0.08', { temperature: 1.5, minP: 0.08 }],
    ['temperature 2, top-k 60, top-p 0.9, min-p 0.02', { temperature: 2, topK: 60, topP: 0.9, minP: 0.02 }],
  ];
  cases.forEach(([name, f], i) => {
    test(name, async () => {
      const { counts, logits } = await draw(f, 1_000_000 * (i + 1));
      const n = SEQS * STEPS;
      const probs = expectedDistribution(logits, f);
      for (const tok of counts.keys()) assert.ok(probs.has(tok), `token ${tok} was filtered out but drawn`);
      const { x2, df } = chiSquare(counts, probs, n);
      assert.ok(df >= 1, 'the case must leave several tokens to compare');
      assert.ok(x2 < chiSquareCritical(df), `X² ${x2.toFixed(1)} over ${df} degrees of freedom`);
      // The same test must reject a wrong distribution: the unfiltered softmax at T = 1.
      const wrong = chiSquare(counts, expectedDistribution(logits, { temperature: 1 }), n);
      assert.ok(wrong.x2 > chiSquareCritical(wrong.df), `untempered softmax not rejected: X² ${wrong.x2.toFixed(1)}`);
    });
  });
});

test('logit_bias moves the choice its way, per sequence; returned logprobs stay those of the raw logits', async () => {
  const plain = await rt.step(makeBatch([{ tokens: PROMPT, start: 0, blocks: [0], numLogprobs: 3 }], true));
  const lp = logSoftmax(plain.logits!);
  const ranked = lp.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
  const [best, second, unlikely] = [ranked[0][1], ranked[1][1], ranked[ranked.length - 1][1]];
  const res = await rt.step(
    makeBatch([
      { tokens: PROMPT, start: 0, blocks: [0], bias: [[unlikely, 100]] },
      { tokens: PROMPT, start: 0, blocks: [1], bias: [[best, -100]] },
      { tokens: PROMPT, start: 0, blocks: [2] },
      { tokens: PROMPT, start: 0, blocks: [3], temperature: 1, seed: 7n, bias: [[best, -100], [second, -100]] },
    ]),
  );
  assert.equal(res.tokens[0], unlikely, '+100 forces the least likely token');
  assert.equal(res.tokens[1], second, '-100 on the argmax leaves the runner-up');
  assert.equal(res.tokens[2], best, 'a sequence without biases is untouched');
  assert.ok(res.tokens[3] !== best && res.tokens[3] !== second, 'sampling never draws a banned token');
  assert.ok(Math.abs(res.logprobs[0] - lp[unlikely]) < 1e-4, `raw logprob ${lp[unlikely]}, got ${res.logprobs[0]}`);
  assert.ok(Math.abs(res.logprobs[1] - lp[second]) < 1e-4);
  await assert.rejects(rt.step(makeBatch([{ tokens: PROMPT, start: 0, blocks: [0], bias: [[1 << 20, 1]] }])), /logit bias token \d+ is outside the vocabulary/);
});
