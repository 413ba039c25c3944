// CPU micro-benchmark of Runtime.step(): prefill tokens/s for one 512-token
// prompt, decode tokens/s at batch 1 and batch 32. Random weights of a ~29M
// parameter Llama shape (see SHAPE). Usage:
//   npm run bench:step [-- --threads N --decode-steps N]
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';

import { uniformColumns } from '../engine/sampling-columns.js';
import { Runtime } from '../native/index.js';

const SHAPE = {
  architectures: ['LlamaForCausalLM'], vocab_size: 8192, hidden_size: 512, intermediate_size: 1536,
  num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, max_position_embeddings: 2048,
  tie_word_embeddings: true,
};
const PARAMS = 8192 * 512 + 8 * (2 * 512 * 512 + 2 * 512 * 256 + 3 * 512 * 1536);

const { values } = parseArgs({
  options: { threads: { type: 'string' }, 'decode-steps': { type: 'string', default: '64' }, 'prompt-len': { type: 'string', default: '512' } },
});
const threads = Number(values.threads ?? availableParallelism());
const decodeSteps = Number(values['decode-steps']);
const promptLen = Number(values['prompt-len']);
const BLOCK = 16;

function batchOf(seqs: { tokens: number[]; start: number; blocks: number[] }[]) {
  const stride = Math.max(...seqs.map((s) => s.blocks.length));
  const tables = new Int32Array(seqs.length * stride);
  seqs.forEach((s, i) => tables.set(s.blocks, i * stride));
  const S = seqs.length;
  return {
    tokenIds: Int32Array.from(seqs.flatMap((s) => s.tokens)),
    positions: Int32Array.from(seqs.flatMap((s) => s.tokens.map((_, i) => s.start + i))),
    queryLens: Int32Array.from(seqs.map((s) => s.tokens.length)),
    blockTables: tables,
    blockTableStride: stride,
    sample: new Uint8Array(S).fill(1),
    ...uniformColumns(S, { temperature: 0 }),
  };
}

const prompt = (seed: number, n: number) => Array.from({ length: n }, (_, i) => (seed * 131 + i * 17) % SHAPE.vocab_size);

async function prefill(rt: Runtime): Promise<number> {
  const blocks = Array.from({ length: Math.ceil(promptLen / BLOCK) }, (_, i) => i);
  await rt.step(batchOf([{ tokens: prompt(0, promptLen), start: 0, blocks }])); // warm-up
  const runs = 3;
  const t0 = performance.now();
  for (let r = 0; r < runs; r++) await rt.step(batchOf([{ tokens: prompt(r, promptLen), start: 0, blocks }]));
  return (runs * promptLen) / ((performance.now() - t0) / 1000);
}

/** Decode tokens/s for `batch` sequences that each hold a 128-token context. */
async function decode(rt: Runtime, batch: number): Promise<number> {
  const ctx = 128;
  const perSeq = Math.ceil((ctx + decodeSteps + 1) / BLOCK);
  const seqs = Array.from({ length: batch }, (_, s) => ({ blocks: Array.from({ length: perSeq }, (_, i) => s * perSeq + i) }));
  const first = await rt.step(batchOf(seqs.map((s, i) => ({ tokens: prompt(i, ctx), start: 0, blocks: s.blocks }))));
  let last = [...first.tokens];
  let t0 = 0;
  for (let step = 0; step <= decodeSteps; step++) {
    if (step === 1) t0 = performance.now(); // step 0 is warm-up
    const res = await rt.step(batchOf(seqs.map((s, i) => ({ tokens: [last[i]], start: ctx + step, blocks: s.blocks }))));
    last = [...res.tokens];
  }
  return (batch * decodeSteps) / ((performance.now() - t0) / 1000);
}

const rt = await Runtime.load({ dummy: { config: SHAPE, seed: 1 }, threads, kvCacheBytes: 512 << 20, maxNumTokens: Math.max(promptLen, 128 * 32) });
const prefillTps = await prefill(rt);
const b1 = await decode(rt, 1);
const b32 = await decode(rt, 32);
await rt.close();

console.log(`model: Llama shape, ${(PARAMS / 1e6).toFixed(1)}M parameters, F32 weights (dummy), ${threads} threads`);
console.log(`cpu: ${cpus()[0]?.model ?? 'unknown'} x ${cpus().length}`);
console.log('| measure | tokens/s |');
console.log('| --- | ---: |');
console.log(`| prefill, one ${promptLen}-token prompt | ${prefillTps.toFixed(0)} |`);
console.log(`| decode, batch 1 (context 128) | ${b1.toFixed(1)} |`);
console.log(`| decode, batch 32 (context 128) | ${b32.toFixed(1)} |`);
console.log(`batch 32 / batch 1: ${(b32 / b1).toFixed(2)}x`);
