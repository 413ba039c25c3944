// The engine's own work per step (schedule, build the flat arrays, process
// the returned tokens, detokenize, stop checks) with a runtime that answers
// instantly, at 4096 running sequences.
//   npm run bench:engine [-- --seqs 4096 --steps 50 --prompt 32 --budget TOKENS]
// --prompt 2048 --budget 8192 --seqs 1024: prompt chunks beside decodes, as in the 2048/128 benchmark.
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Engine } from '../engine/engine.js';
import type { StepRuntime } from '../engine/types.js';
import type { StepBatch, StepResult } from '../native/index.js';
import { packageRoot } from '../native/binding.js';
import { loadTokenizer } from '../tokenizers/tokenizer.js';

const { values } = parseArgs({ options: { seqs: { type: 'string', default: '4096' }, steps: { type: 'string', default: '50' }, prompt: { type: 'string', default: '32' }, budget: { type: 'string' }, tokenizer: { type: 'string', default: 'bytelevel-ranked' } } });
const SEQS = Number(values.seqs);
const DECODE_STEPS = Number(values.steps);
const PROMPT = Number(values.prompt);

/** Answers every step at once with a plausible token per sampled sequence. */
class InstantRuntime implements StepRuntime {
  readonly info = { numBlocks: SEQS * Math.ceil((PROMPT + DECODE_STEPS + 32) / 16), blockSize: 16, maxPositions: 4096, vocabSize: 1000, maxNumTokens: 1 << 20, maxNumSeqs: SEQS };
  private out = { tokens: new Int32Array(0), logprobs: new Float32Array(0) };
  async step(b: StepBatch): Promise<StepResult> {
    const S = b.queryLens.length;
    if (this.out.tokens.length < S) this.out = { tokens: new Int32Array(S), logprobs: new Float32Array(S) };
    let t = 0;
    for (let s = 0; s < S; s++) {
      t += b.queryLens[s];
      this.out.tokens[s] = b.sample[s] ? 300 + ((b.tokenIds[t - 1] * 7 + s) % 600) : -1;
    }
    return { tokens: this.out.tokens.subarray(0, S), logprobs: this.out.logprobs.subarray(0, S), topN: 0, topIds: new Int32Array(0), topLogprobs: new Float32Array(0) };
  }
}

const tokenizer = loadTokenizer(join(packageRoot(), 'test', 'fixtures', 'tokenizers', values.tokenizer!));
const engine = new Engine(new InstantRuntime(), tokenizer, { maxNumBatchedTokens: values.budget ? Number(values.budget) : SEQS * PROMPT });
const overheads: number[] = [];
const phases: (typeof engine.lastPhaseMs)[] = [];
// Long prompts: every step that carries prompt chunks beside decodes (the engine reports them in
// onStep, before the next step is scheduled); short ones: decode steps with every sequence running.
if (PROMPT > 32)
  engine.onStep = (_ms, seqs, tokens) => {
    if (tokens > seqs) {
      overheads.push(engine.lastStepOverheadMs);
      phases.push({ ...engine.lastPhaseMs });
    }
  };
const consumers = Array.from({ length: SEQS }, async (_, i) => {
  const prompt = Array.from({ length: PROMPT }, (_, j) => 300 + ((i * 31 + j) % 600));
  let n = 0;
  for await (const d of engine.submit({ id: `b${i}`, promptTokens: prompt, sampling: { temperature: 0 }, stop: { maxTokens: DECODE_STEPS + 1, ignoreEos: true } })) {
    n += d.tokenIds.length;
    // The first sequence samples the engine's overhead after each decode step with every sequence running.
    if (PROMPT <= 32 && i === 0 && n > 1 && engine.stats().running === SEQS) {
      overheads.push(engine.lastStepOverheadMs);
      phases.push({ ...engine.lastPhaseMs });
    }
  }
});
await Promise.all(consumers);
overheads.sort((a, b) => a - b);
const q = (p: number) => overheads[Math.min(overheads.length - 1, Math.floor(p * overheads.length))];
console.log(`${SEQS} sequences of ${PROMPT}-token prompts, ${overheads.length} ${PROMPT > 32 ? 'prompt' : 'decode'} steps measured (tokenizer ${values.tokenizer})`);
const mean = overheads.reduce((s, x) => s + x, 0) / overheads.length;
// The mean is what throughput pays (garbage collection lands in a few steps); the median, a typical step.
console.log(`engine overhead per step: median ${q(0.5).toFixed(2)} ms, mean ${mean.toFixed(2)} ms, p90 ${q(0.9).toFixed(2)} ms, max ${q(1).toFixed(2)} ms`);
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`by phase (median): schedule ${median(phases.map((p) => p.schedule)).toFixed(2)} ms, build ${median(phases.map((p) => p.build)).toFixed(2)} ms, process ${median(phases.map((p) => p.process)).toFixed(2)} ms; text (while the next step runs) ${median(phases.map((p) => p.text)).toFixed(2)} ms`);
