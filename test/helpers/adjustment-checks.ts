// The runtime's logit adjustments beyond logit_bias: presence / frequency /
// repetition penalties over counts it keeps per penalty slot, and grammar
// bitmasks handed over while the forward pass runs. Checked against the same
// formulas applied in JS to the raw logits the runtime returns, so the same
// checks hold on every backend (test/native and test/gpu register them).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import type { Runtime } from '../../native/index.js';
import { makeBatch, type Chunk } from './batch.js';

/** Registers the checks against the runtime load() gives (a model with a vocabulary of at least 210). */
export function adjustmentChecks(load: () => Promise<Runtime>, options: { skip?: string | false } = {}): void {
  let rt: Runtime;
  before(async () => {
    if (!options.skip) rt = await load();
  });
  after(() => rt?.close());
  const skip = options.skip;

  const PROMPT = [1, 57, 200, 13];

  async function rawLogits(tokens: number[]): Promise<Float32Array> {
    const res = await rt.step(makeBatch([{ tokens, start: 0, blocks: [0] }], true));
    return res.logits!;
  }

  function argmax(v: ArrayLike<number>): number {
    let best = 0;
    for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
    return best;
  }

  /** vLLM's penalties in JS: repetition over prompt and output, then frequency and presence over output. */
  function penalize(raw: Float32Array, prompt: number[], output: number[], p: { presence: number; frequency: number; repetition: number }): Float64Array {
    const counts = new Map<number, number>();
    for (const t of output) counts.set(t, (counts.get(t) ?? 0) + 1);
    const inPrompt = new Set(prompt);
    const out = Float64Array.from(raw);
    for (let v = 0; v < out.length; v++) {
      const c = counts.get(v) ?? 0;
      if (c > 0 || inPrompt.has(v)) out[v] = out[v] > 0 ? out[v] / p.repetition : out[v] * p.repetition;
      if (c > 0) out[v] -= p.frequency * c + p.presence;
    }
    return out;
  }

  test('penalties from a restarted slot move the greedy choice exactly as the formulas say', { skip }, async () => {
    const raw = await rawLogits(PROMPT);
    const ranked = [...raw.keys()].sort((a, b) => raw[b] - raw[a]);
    const [best, second, third] = ranked;
    // The history: the prompt, then outputs that include the current favourites.
    const output = [best, best, second, third];
    const context = [...PROMPT, ...output];
    const logits = await rawLogits(context);
    const settings = [
      { presence: 0, frequency: 0, repetition: 1 },
      { presence: 1.5, frequency: 0, repetition: 1 },
      { presence: 0, frequency: 2, repetition: 1 },
      { presence: -2, frequency: -2, repetition: 1 },
      { presence: 0, frequency: 0, repetition: 1.3 },
      { presence: 0.5, frequency: 0.7, repetition: 0.8 },
    ];
    for (const [i, p] of settings.entries()) {
      const chunk: Chunk = {
        tokens: context,
        start: 0,
        blocks: [0],
        penaltySlot: i,
        presencePenalty: p.presence,
        frequencyPenalty: p.frequency,
        repetitionPenalty: p.repetition,
        history: { tokens: context, promptLength: PROMPT.length },
        numLogprobs: 1,
      };
      const res = await rt.step(makeBatch([chunk]));
      const expected = argmax(penalize(logits, PROMPT, output, p));
      assert.equal(res.tokens[0], expected, `settings ${JSON.stringify(p)}`);
      const lse = Math.log(logits.reduce((s, v) => s + Math.exp(v - logits[argmax(logits)]), 0)) + logits[argmax(logits)];
      assert.ok(Math.abs(res.logprobs[0] - (logits[expected] - lse)) < 1e-3, 'the returned logprob is the raw distribution\'s');
    }
  });

  test('the runtime counts each sampled token in the slot: a large frequency penalty never repeats a token', { skip }, async () => {
    async function run(penalty: number): Promise<number[]> {
      const out: number[] = [];
      let chunk: Chunk = {
        tokens: PROMPT,
        start: 0,
        blocks: [0, 1],
        penaltySlot: 3,
        frequencyPenalty: penalty,
        history: { tokens: PROMPT, promptLength: PROMPT.length },
      };
      for (let i = 0; i < 20; i++) {
        const res = await rt.step(makeBatch([chunk]));
        out.push(res.tokens[0]);
        // Later steps send no history: the slot's counts carry over.
        chunk = { tokens: [res.tokens[0]], start: PROMPT.length + i, blocks: [0, 1], penaltySlot: 3, frequencyPenalty: penalty };
      }
      return out;
    }
    const plain = await run(0);
    assert.ok(new Set(plain).size < plain.length, `greedy without penalties repeats on this model: ${plain}`);
    const penalized = await run(100);
    assert.equal(new Set(penalized).size, penalized.length, `no repeats under frequency_penalty 100: ${penalized}`);
  });

  test('a grammar mask limits the choice to the allowed tokens; logprobs stay raw', { skip }, async () => {
    const raw = await rawLogits(PROMPT);
    const ranked = [...raw.keys()].sort((a, b) => raw[b] - raw[a]);
    const allowed = [ranked[5], ranked[9], ranked[200]];
    const words = Math.ceil(raw.length / 32);
    const fill = (masks: Int32Array) => {
      masks.fill(0);
      for (const row of [0, 1]) for (const t of allowed) masks[row * words + (t >> 5)] |= 1 << (t & 31);
    };
    for (let seed = 0n; seed < 20n; seed++) {
      const batch = {
        ...makeBatch([
          { tokens: PROMPT, start: 0, blocks: [0], maskRow: 0 },
          { tokens: PROMPT, start: 0, blocks: [1], maskRow: 1, temperature: 1.5, seed },
          { tokens: PROMPT, start: 0, blocks: [2] },
        ]),
        numMaskRows: 2,
      };
      const res = await rt.step(batch, fill);
      assert.equal(res.tokens[0], ranked[5], 'greedy takes the best allowed token');
      assert.ok(allowed.includes(res.tokens[1]), `a draw stays inside the mask, got ${res.tokens[1]}`);
      assert.equal(res.tokens[2], ranked[0], 'an unmasked sequence is untouched');
    }
    const res = await rt.step({ ...makeBatch([{ tokens: PROMPT, start: 0, blocks: [0], maskRow: 0, numLogprobs: 1 }]), numMaskRows: 1 }, fill);
    const lse = Math.log(raw.reduce((s, v) => s + Math.exp(v - raw[ranked[0]]), 0)) + raw[ranked[0]];
    assert.ok(Math.abs(res.logprobs[0] - (raw[ranked[5]] - lse)) < 1e-3);
  });

  test('masks that cannot be computed fail the step, not the runtime', { skip }, async () => {
    const batch = { ...makeBatch([{ tokens: PROMPT, start: 0, blocks: [0], maskRow: 0 }]), numMaskRows: 1 };
    await assert.rejects(
      rt.step(batch, () => {
        throw new Error('the grammar broke');
      }),
      /grammar masks for this step could not be computed: the grammar broke/,
    );
    await assert.rejects(rt.step(batch), /no mask filler was given/);
    const res = await rt.step(makeBatch([{ tokens: PROMPT, start: 0, blocks: [0] }]));
    assert.ok(res.tokens[0] >= 0);
  });

  test('logit_bias, penalties and a mask together: the bias moves the choice, the mask has the last word', { skip }, async () => {
    const raw = await rawLogits(PROMPT);
    const ranked = [...raw.keys()].sort((a, b) => raw[b] - raw[a]);
    const unlikely = ranked[ranked.length - 1];
    const words = Math.ceil(raw.length / 32);
    const allow = (ids: number[]) => (masks: Int32Array) => {
      masks.fill(0);
      for (const t of ids) masks[t >> 5] |= 1 << (t & 31);
    };
    const base: Chunk = { tokens: PROMPT, start: 0, blocks: [0], bias: [[unlikely, 100], [ranked[0], -100]], penaltySlot: 0, presencePenalty: 1, history: { tokens: PROMPT, promptLength: PROMPT.length } };
    const biased = await rt.step(makeBatch([base]));
    assert.equal(biased.tokens[0], unlikely, '+100 forces the least likely token');
    const masked = await rt.step({ ...makeBatch([{ ...base, maskRow: 0 }]), numMaskRows: 1 }, allow([ranked[0], ranked[3]]));
    assert.equal(masked.tokens[0], ranked[3], 'the mask excludes the biased token; -100 pushes the favourite below the next allowed one');
    assert.equal(words, Math.ceil(raw.length / 32));
  });
}
