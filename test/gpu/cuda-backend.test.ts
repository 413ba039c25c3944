// The CUDA backend against transformers and the CPU backend on the parity
// fixtures, and its batch / chunking invariance. Runs with npm run test:gpu.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Engine } from '../../engine/engine.js';
import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { Runtime } from '../../native/index.js';
import { blockRange, makeBatch, worstRowError, type Chunk } from '../helpers/batch.js';
import { greedyContinuation, logitsAtEveryPosition } from '../helpers/stepping.js';
import { request, run, testTokenizer, type Collected } from '../helpers/engine.js';
import { CUDA_PARITY_MODELS, loadReference, MODELS_DIR } from '../helpers/fixtures.js';
import { gpuSkipReason } from '../helpers/gpu.js';
import { decodeBothWays } from '../helpers/pipelined.js';
import { writeRandomGptj } from '../helpers/random-checkpoint.js';

const skip = gpuSkipReason();
const gpu = (modelDir: string, extra = {}) =>
  Runtime.load({ modelDir, device: 'cuda', kvCacheBytes: 64 << 20, maxNumTokens: 1024, maxNumSeqs: 64, ...extra });

/** Top-2 logit margin at each step of a given continuation (F32 CPU reference). */
async function topTwoMargins(rt: Runtime, prompt: number[], continuation: number[]): Promise<number[]> {
  const blocks = blockRange(0, Math.ceil((prompt.length + continuation.length) / rt.info.blockSize));
  const margins: number[] = [];
  let r = await rt.step(makeBatch([{ tokens: prompt, start: 0, blocks }], true));
  for (let i = 0; i < continuation.length; i++) {
    const sorted = [...r.logits!].sort((a, b) => b - a);
    margins.push(sorted[0] - sorted[1]);
    r = await rt.step(makeBatch([{ tokens: [continuation[i]], start: prompt.length + i, blocks }], true));
  }
  return margins;
}

for (const model of CUDA_PARITY_MODELS) {
  describe(`CUDA backend parity: ${model}`, { skip }, () => {
    let cuda: Runtime;
    let cpu: Runtime;
    before(async () => {
      cuda = await gpu(join(MODELS_DIR, `${model}-bf16`));
      cpu = await Runtime.load({ modelDir: join(MODELS_DIR, `${model}-bf16`), kvCacheBytes: 8 << 20 });
    });
    after(async () => {
      await cuda?.close();
      await cpu?.close();
    });

    test('BF16 logits within 2e-2 of transformers in BF16, and of the CPU backend', async () => {
      for (const p of loadReference(model)) {
        const ours = await logitsAtEveryPosition(cuda, p.tokens);
        const V = cuda.info.vocabSize;
        const vsHf = worstRowError(ours, p.logitsBf16, V);
        const vsCpu = worstRowError(ours, await logitsAtEveryPosition(cpu, p.tokens), V);
        console.log(`${model} len ${p.tokens.length}: vs transformers ${vsHf.toExponential(2)}, vs CPU ${vsCpu.toExponential(2)}`);
        assert.ok(vsHf < 2e-2, `vs transformers ${vsHf}`);
        assert.ok(vsCpu < 2e-2, `vs CPU ${vsCpu}`);
      }
    });

    // BF16 activations move logits by about 1e-2 relative; where transformers' own
    // top-2 margin is smaller than that, either token is a faithful answer.
    test('greedy continuations match transformers while its top-2 margin exceeds BF16 noise', async () => {
      for (const p of loadReference(model)) {
        const ours = await greedyContinuation(cuda, p.tokens, p.greedy.length);
        const f32 = await Runtime.load({ modelDir: join(MODELS_DIR, model), kvCacheBytes: 8 << 20 });
        const margins = await topTwoMargins(f32, p.tokens, p.greedy);
        await f32.close();
        // margins[i] is the margin of greedy[i]: tokens from the first near-tie on may differ.
        const firstClose = margins.findIndex((m) => m < 0.05);
        const checked = firstClose < 0 ? p.greedy.length : firstClose;
        console.log(`${model} len ${p.tokens.length}: ${checked} of ${p.greedy.length} tokens above the margin`);
        assert.deepEqual(ours.slice(0, checked), p.greedy.slice(0, checked));
      }
    });
  });
}

// GPT-2 and GPT-J with FP8 weights. GPT-J: the parallel block keeps the normed input in in_q_ for
// both of its GEMMs and writes the MLP output beside the attention output (bf16 runs never take that
// path); GPT-2: LayerNorm and GELU quantize their outputs for the FP8 GEMMs, with biases after.
describe('CUDA backend: GPT-2 and GPT-J with FP8 weights', { skip }, () => {
  for (const model of ['gpt2-tiny', 'gptj-tiny']) {
    test(`${model}: logits stay within FP8 noise of the CPU backend`, async () => {
      const cuda = await gpu(join(MODELS_DIR, model), { dtype: 'fp8' });
      const cpu = await Runtime.load({ modelDir: join(MODELS_DIR, model), kvCacheBytes: 8 << 20 });
      try {
        assert.equal(cuda.info.weightDtype, 'fp8');
        for (const p of loadReference(model)) {
          const ours = await logitsAtEveryPosition(cuda, p.tokens);
          const err = worstRowError(ours, await logitsAtEveryPosition(cpu, p.tokens), cuda.info.vocabSize);
          console.log(`${model} fp8 len ${p.tokens.length}: vs CPU ${err.toExponential(2)}`);
          // FP8 weights and activations move logits by a few percent; a buffer overwritten too early
          // (the parallel block's MLP reading a clobbered input) moves them by tens of percent.
          assert.ok(err < 1e-1, `vs CPU ${err}`);
        }
      } finally {
        await cuda.close();
        await cpu.close();
      }
    });
  }
});

describe('CUDA backend invariance and sampling', { skip }, () => {
  let rt: Runtime;
  before(async () => {
    // The defaults, batch-invariant: no few-row path (its GEMVs and attention round their own way),
    // GEMMs that give a row the same bits at any row count, prompt rows on the prefill kernel and
    // generated tokens on the decode kernel whatever the step.
    rt = await gpu(join(MODELS_DIR, 'llama3-scaled'));
  });
  after(() => rt?.close());

  test('greedy tokens do not depend on batch composition or chunking', async () => {
    const tokenizer = testTokenizer();
    let seed = 99;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const prompts = Array.from({ length: 24 }, () => Array.from({ length: 3 + rand(80) }, () => 3 + rand(397)));
    const solo = new Engine(rt, tokenizer, { enablePrefixCache: false });
    const alone: number[][] = [];
    for (const p of prompts) alone.push((await run(solo, request(p, 20, { stop: { maxTokens: 20, ignoreEos: true } }))).tokens);
    for (const [budget, chunk] of [[64, 7], [256, 32], [1024, 1024]]) {
      const engine = new Engine(rt, tokenizer, { maxNumBatchedTokens: budget, maxPrefillChunk: chunk });
      const outs = await Promise.all(prompts.map((p) => run(engine, request(p, 20, { stop: { maxTokens: 20, ignoreEos: true } }))));
      outs.forEach((o, i) => assert.deepEqual(o.tokens, alone[i], `budget ${budget} chunk ${chunk} request ${i}`));
    }
    tokenizer.free();
  });

  test('a second turn gets the same tokens whether or not the first turn ran before it (prefix cache)', async () => {
    // The first turn's reply was computed by the decode kernel; as part of the second turn's prompt
    // it would be prefill rows. On CUDA the prefix cache keeps only prompt blocks by default, so the
    // second turn recomputes the reply as a cold run does. 64 tokens of prompt, 48 of reply: whole
    // blocks of both.
    const tokenizer = testTokenizer();
    const first = Array.from({ length: 64 }, (_, i) => 3 + ((i * 41 + 7) % 397));
    const engine = new Engine(rt, tokenizer);
    const reply = (await run(engine, request(first, 48, { stop: { maxTokens: 48, ignoreEos: true } }))).tokens;
    const second = [...first, ...reply, 5, 6, 7, 8, 9];
    // Logprobs to the bit, not only the argmax: a reply's K/V from the other kernel moves them by rounding.
    const turn = { sampling: { temperature: 0, logprobs: 0 }, stop: { maxTokens: 16, ignoreEos: true } };
    const logprobs = (c: Collected) => c.deltas.flatMap((d) => d.logprobs ?? []).map((l) => l.logprob);
    const warm = await run(engine, request(second, 16, turn));
    const cold = await run(new Engine(rt, tokenizer, { enablePrefixCache: false }), request(second, 16, turn));
    assert.deepEqual(warm.tokens, cold.tokens);
    assert.deepEqual(logprobs(warm), logprobs(cold));
    assert.equal(logprobs(warm).length, 16);
    assert.ok(engine.stats().prefixCacheHitTokens >= 64, 'the first turn\'s prompt blocks were reused');
    tokenizer.free();
  });

  test('async scheduling (tokens fed on the GPU, graph and mixed steps) gives the tokens of one step at a time', async () => {
    const tokenizer = testTokenizer();
    const prompts = Array.from({ length: 12 }, (_, i) => Array.from({ length: 5 + 9 * i }, (_, j) => 3 + ((i * 31 + j * 17) % 397)));
    const outputs = async (asyncScheduling: boolean) => {
      const engine = new Engine(rt, tokenizer, { maxNumBatchedTokens: 64, maxPrefillChunk: 16, asyncScheduling, enablePrefixCache: false });
      const outs = await Promise.all(prompts.map((p, i) => run(engine, request(p, 4 + 3 * i, { stop: { maxTokens: 4 + 3 * i, ignoreEos: true } }))));
      return outs.map((o) => o.tokens);
    };
    assert.deepEqual(await outputs(true), await outputs(false));
    const ref = loadReference('llama3-scaled');
    const both = await decodeBothWays(rt, [ref[0].tokens, ref[1].tokens], 8, { temperature: 0.8, topK: 30 });
    assert.deepEqual(both.fed, both.known);
    tokenizer.free();
  });

  test('the same seed draws the same tokens beside other requests; logprobs are log-softmax', async () => {
    const sampled = async (neighbours: number) => {
      const chunks: Chunk[] = Array.from({ length: neighbours }, (_, i) => ({ tokens: [5 + i], start: 0, blocks: [10 + i], temperature: 1, seed: BigInt(i) }));
      chunks.push({ tokens: [1, 57, 200], start: 0, blocks: [0], temperature: 0.9, topP: 0.9, topK: 50, minP: 0.01, seed: 1234n, numLogprobs: 3 });
      const r = await rt.step(makeBatch(chunks, true));
      return { token: r.tokens[neighbours], logprob: r.logprobs[neighbours], top: [...r.topIds.subarray(neighbours * r.topN, neighbours * r.topN + 3)], logits: r.logits!.subarray(neighbours * rt.info.vocabSize, (neighbours + 1) * rt.info.vocabSize) };
    };
    const a = await sampled(0);
    const b = await sampled(7);
    assert.equal(a.token, b.token);
    const m = Math.max(...a.logits);
    const lse = m + Math.log(a.logits.reduce((s, x) => s + Math.exp(x - m), 0));
    assert.ok(Math.abs(a.logprob - (a.logits[a.token] - lse)) < 1e-3);
    const order = [...a.logits.keys()].sort((x, y) => a.logits[y] - a.logits[x]);
    assert.deepEqual(a.top, order.slice(0, 3));
  });

  test('draws follow the filtered softmax (top-k 12, T 0.8)', async () => {
    const counts = new Map<number, number>();
    let logits: Float32Array | undefined;
    const SEQS = 64;
    for (let step = 0; step < 32; step++) {
      const chunks: Chunk[] = Array.from({ length: SEQS }, (_, s) => ({ tokens: [1, 57, 200], start: 0, blocks: [s], temperature: 0.8, topK: 12, seed: BigInt(step * SEQS + s + 7) }));
      const r = await rt.step(makeBatch(chunks, step === 0));
      if (step === 0) logits = r.logits!.slice(0, rt.info.vocabSize);
      for (const t of r.tokens) counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    const order = [...logits!.keys()].sort((x, y) => logits![y] - logits![x]).slice(0, 12);
    const w = order.map((i) => Math.exp((logits![i] - logits![order[0]]) / 0.8));
    const total = w.reduce((s, x) => s + x, 0);
    for (const t of counts.keys()) assert.ok(order.includes(t), `token ${t} outside the top 12 was drawn`);
    let x2 = 0;
    order.forEach((t, i) => {
      const e = (2048 * w[i]) / total;
      if (e >= 5) x2 += ((counts.get(t) ?? 0) - e) ** 2 / e;
    });
    assert.ok(x2 < 50, `X² ${x2.toFixed(1)} over at most 11 degrees of freedom`);
  });
});

// llama3-scaled's head_dim 16 has no decode kernel over a one-byte cache (a multiple of 32 wanted), so
// batch-invariant mode takes attention.cu for every row there: one E4M3 case covers it.
for (const [kvCacheDtype, fastAttention] of [['auto', true], ['auto', false], ['fp8', false]] as const)
describe(`CUDA attention (KV cache ${kvCacheDtype}, ${fastAttention ? 'decode kernel' : 'attention.cu'}): a decode row's arithmetic does not depend on the step`, { skip }, () => {
  test('a decode token gets the same logits alone and beside 20, 149, 299 or 599 others', async () => {
    const rt = await gpu(join(MODELS_DIR, 'llama3-scaled'), { maxNumSeqs: 640, kvCacheBytes: 256 << 20, kvCacheDtype, cuda: { batchInvariant: true, fastAttention } });
    try {
      // 150 prompt positions: the decode token at 150 attends over three 64-position splits.
      const prompt = Array.from({ length: 150 }, (_, i) => 3 + ((i * 37) % 390));
      const main = { start: 150, tokens: [77], blocks: blockRange(0, 10) };
      await rt.step(makeBatch([{ tokens: prompt, start: 0, blocks: main.blocks }]));
      const others = (n: number) => Array.from({ length: n }, (_, k) => ({ tokens: [5 + (k % 300)], start: 0, blocks: [20 + k] }));
      const logitsBeside = async (n: number) => {
        const r = await rt.step(makeBatch([main, ...others(n)], true));
        return Array.from(r.logits!.subarray(0, rt.info.vocabSize));
      };
      // attention.cu: alone, 2 blocks (one per KV head), far fewer than the SMs, so the splits run
      // in parallel blocks and the last one folds them; 21 sequences: a different spread of splits
      // over blocks; 150 and more: one block per (token, KV head) walks every split. The decode
      // kernel (H200; graph buckets of 1, 32, 192, 320 and 640 tokens, 2 blocks a token): 16 warps
      // a block alone and beside 20, 4 beside 149, 2 beside 299, 1 beside 599, folding the splits in
      // one order. The token's K/V write is the same each time, so the cache stays as it was.
      const alone = await logitsBeside(0);
      assert.deepEqual(await logitsBeside(20), alone);
      assert.deepEqual(await logitsBeside(149), alone);
      assert.deepEqual(await logitsBeside(299), alone);
      assert.deepEqual(await logitsBeside(599), alone);
    } finally {
      await rt.close();
    }
  });
});

// Llama-3-8B's head layout in two layers (random weights): head_dim 128, 4 query heads per KV head.
const HEAD_DIM_128 = {
  architectures: ['LlamaForCausalLM'], vocab_size: 512, hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 1, max_position_embeddings: 1024, rms_norm_eps: 1e-5, rope_theta: 500000,
};
const HEAD_DIM_256 = { ...HEAD_DIM_128, hidden_size: 1024 };

// CudaKnobs.decodeWarps forces the decode kernel's warps a (token, KV head) block, for measuring the
// staircase of bench/RESULTS.md (tenth session). Each 64-position split starts a fresh state and the
// splits fold left to right whichever warp ran them, so every count gives the bits of the one chosen.
describe('CUDA decode kernel: warps a block forced by CudaKnobs.decodeWarps (KV fp8)', { skip }, () => {
  test('a decode token gets the same logits with 1, 2, 4, 8 or 16 warps a block as with the count chosen for its step', async () => {
    // 300 prompt positions: the decode token at 300 attends over five 64-position splits.
    const prompt = Array.from({ length: 300 }, (_, i) => 3 + ((i * 37) % 390));
    const logitsWith = async (decodeWarps?: number) => {
      const rt = await gpu(DEFAULT_MODEL_DIR, { kvCacheDtype: 'fp8', cuda: { batchInvariant: true, decodeWarps } });
      try {
        const blocks = blockRange(0, 20);
        await rt.step(makeBatch([{ tokens: prompt, start: 0, blocks }]));
        const r = await rt.step(makeBatch([{ tokens: [77], start: 300, blocks }], true));
        return Array.from(r.logits!.subarray(0, rt.info.vocabSize));
      } finally {
        await rt.close();
      }
    };
    const chosen = await logitsWith(undefined);
    for (const w of [1, 2, 4, 8, 16]) assert.deepEqual(await logitsWith(w), chosen, `${w} warps a block`);
  });

  test('past one wave at long contexts (2,500 tokens at position 1,104, one KV head): the count chosen for the tail gives one warp\'s bits, replayed and eager', async () => {
    // Llama-3-8B's head layout (head_dim 128, E4M3): 2,500 one-warp blocks are more than an H100 /
    // H200 holds at once (15 an SM), so the step takes the tail rule (on an H200 4 warps, for the
    // graph's 2,560 blocks and the eager step's 2,500 alike). The sequences share a 1,104-position
    // prompt's 69 blocks and each writes its token to a block of its own. maxNumSeqs 2,560 replays
    // the step as bucket 2,560's graph; 2,500 runs it eager (the bucket is past maxNumSeqs).
    const config = { ...HEAD_DIM_128, max_position_embeddings: 2048 };
    const PREFIX = 1104;
    const T = 2500;
    const logitsWith = async (maxNumSeqs: number, decodeWarps?: number) => {
      const rt = await Runtime.load({ dummy: { config, seed: 3 }, device: 'cuda', kvCacheBytes: 128 << 20, maxNumTokens: 4096, maxNumSeqs,
        kvCacheDtype: 'fp8', cuda: { batchInvariant: true, decodeWarps } });
      try {
        const V = rt.info.vocabSize;
        const prefix = blockRange(0, PREFIX / 16);
        await rt.step(makeBatch([{ tokens: Array.from({ length: PREFIX }, (_, j) => 3 + ((j * 7) % (V - 3))), start: 0, blocks: prefix }]));
        const decode = Array.from({ length: T }, (_, k) => ({ tokens: [5 + (k % (V - 5))], start: PREFIX, blocks: [...prefix, PREFIX / 16 + k] }));
        return (await rt.step(makeBatch(decode, true))).logits!;
      } finally {
        await rt.close();
      }
    };
    for (const maxNumSeqs of [2560, 2500]) {
      const chosen = await logitsWith(maxNumSeqs);
      assert.ok(chosen.every(Number.isFinite));
      assert.deepEqual(await logitsWith(maxNumSeqs, 1), chosen, `maxNumSeqs ${maxNumSeqs}`);
    }
  });
});

// CudaKnobs.overlapDecodeAttention: in a mixed step the generated tokens' decode kernel runs on a
// second stream beside the prompt rows' prefill kernel, joined before the O projection. The same
// kernels on the same inputs, so the same logits. A fork before the RoPE + KV write would let the
// decode kernel read stale q and K/V (a long prompt beside the decode tokens makes the prefill side
// slow); a join after the O projection's start would let it read rows not yet written (long decode
// contexts beside a 3-token prompt make the decode side slow). Two KV heads, three layers. Also with
// one persistent prefill block (CudaKnobs.prefillBlocks), which walks every item while the decode
// blocks take the other SMs: the same logits.
describe('CUDA mixed steps: decode attention on a second stream beside the prefill kernel', { skip }, () => {
  for (const kvCacheDtype of ['fp8', 'auto'] as const)
    test(`KV ${kvCacheDtype}: the same logits as on one stream`, async () => {
      const config = { ...HEAD_DIM_128, hidden_size: 1024, num_attention_heads: 8, num_key_value_heads: 2, num_hidden_layers: 3 };
      const S = 40;
      const logitsWith = async (overlapDecodeAttention: boolean, prefillBlocks?: number) => {
        const rt = await Runtime.load({ dummy: { config, seed: 7 }, device: 'cuda', dtype: 'fp8', kvCacheBytes: 256 << 20, maxNumTokens: 8192,
          maxNumSeqs: 64, kvCacheDtype, cuda: { batchInvariant: true, overlapDecodeAttention, prefillBlocks } });
        try {
          const V = rt.info.vocabSize;
          const prompt = (k: number, n: number) => Array.from({ length: n }, (_, j) => 3 + ((k * 31 + j * 7) % (V - 3)));
          const len = (k: number) => 500 + ((k * 37) % 400);
          const blocks = (k: number) => blockRange(k * 64, 64); // 1,024 positions each
          for (let k0 = 0; k0 < S; k0 += 8)
            await rt.step(makeBatch(Array.from({ length: 8 }, (_, i) => ({ tokens: prompt(k0 + i, len(k0 + i)), start: 0, blocks: blocks(k0 + i), sample: false }))));
          const decode = (step: number) => Array.from({ length: S }, (_, k) => ({ tokens: [5 + ((k + step) % (V - 5))], start: len(k) + step, blocks: blocks(k) }));
          const out: number[][] = [];
          // Step 0: beside a 600-token prompt and a 3-token chunk; step 1: beside a 3-token prompt only.
          const beside = [[{ tokens: prompt(S, 600), start: 0, blocks: blockRange(2600, 40) }, { tokens: prompt(S + 1, 3), start: 0, blocks: blockRange(2640, 1) }],
            [{ tokens: prompt(S + 2, 3), start: 0, blocks: blockRange(2641, 1) }]];
          for (let step = 0; step < 2; step++) out.push(Array.from((await rt.step(makeBatch([...decode(step), ...beside[step]], true))).logits!));
          return out;
        } finally {
          await rt.close();
        }
      };
      const overlapped = await logitsWith(true);
      assert.ok(overlapped.every((row) => row.every(Number.isFinite)));
      assert.deepEqual(overlapped, await logitsWith(false));
      assert.deepEqual(await logitsWith(true, 1), overlapped, 'one persistent prefill block beside the decode kernel');
    });
});

for (const kvCacheDtype of ['auto', 'fp8'] as const)
describe(`CUDA few-row path (steps of at most 4 tokens, KV cache ${kvCacheDtype})`, { skip }, () => {
  test('logits match the batched kernels: one and three decode tokens, a 4-token chunk, contexts over several attention ranges', async () => {
    const load = (fewRows: boolean) => gpu(join(MODELS_DIR, 'llama3-scaled'), { kvCacheDtype, cuda: { fusedGemv: fewRows, batchInvariant: false } });
    const prompts = [300, 150, 90].map((n, k) => Array.from({ length: n }, (_, i) => 3 + ((i * 31 + k * 7) % 390)));
    const blocks = (k: number) => blockRange(k * 32, 32); // the model's 512 positions
    const steps: Chunk[][] = [
      prompts.map((p, k) => ({ tokens: p, start: 0, blocks: blocks(k) })), // 540 tokens: the batched path in both
      [{ tokens: [77], start: 300, blocks: blocks(0) }], // alone: the norm inside the GEMVs, 5 attention ranges
      prompts.map((p, k) => ({ tokens: [5 + k], start: p.length + (k === 0 ? 1 : 0), blocks: blocks(k) })),
      [{ tokens: [11, 12, 13, 14], start: 91, blocks: blocks(2) }], // a prefill chunk on the few-row path
    ];
    const logits: Float32Array[][] = [];
    for (const fewRows of [true, false]) {
      const rt = await load(fewRows);
      try {
        const out: Float32Array[] = [];
        for (const chunks of steps) out.push((await rt.step(makeBatch(chunks, true))).logits!);
        logits.push(out);
      } finally {
        await rt.close();
      }
    }
    const V = logits[0][0].length / steps[0].length;
    steps.forEach((_, i) => {
      const err = worstRowError(logits[0][i], logits[1][i], V);
      console.log(`few-row vs batched (KV ${kvCacheDtype}), step ${i}: worst row ${err.toExponential(2)}`);
      // E4M3: the two paths' K/V differ in float32 rounding, which can move a value across an E4M3 step (1/16).
      assert.ok(err < (kvCacheDtype === 'fp8' ? 5e-2 : 1e-2), `step ${i}: ${err}`);
    });
  });
});

// The default model: 2 query heads per KV head, head_dim 64, every cache type; llama3-scaled: 3 per
// KV head, head_dim 16 (bf16 only: the one-byte caches want multiples of 32); random weights of
// Llama-3-8B's head layout (4 query heads per KV head, head_dim 128), which H100/H200 builds for sm_90a
// run through attention_prefill_sm90.cu (wgmma) as the default model (head_dim 64) does; and the
// same at head_dim 256 (every cache type), which takes the mma.sync prefill kernel (32-position tiles)
// on every GPU and never the few-row path.
const FAST_KERNEL_CASES = [
  ...(['auto', 'fp8', 'int8'] as const).map((kvCacheDtype) => ({ name: 'default model', source: { modelDir: DEFAULT_MODEL_DIR }, kvCacheDtype })),
  { name: 'llama3-scaled', source: { modelDir: join(MODELS_DIR, 'llama3-scaled') }, kvCacheDtype: 'auto' as const },
  ...(['auto', 'fp8'] as const).map((kvCacheDtype) => ({ name: 'head_dim 128', source: { dummy: { config: HEAD_DIM_128, seed: 3 } }, kvCacheDtype })),
  ...(['auto', 'fp8', 'int8'] as const).map((kvCacheDtype) => ({ name: 'head_dim 256', source: { dummy: { config: HEAD_DIM_256, seed: 3 } }, kvCacheDtype })),
];
for (const { name, source, kvCacheDtype } of FAST_KERNEL_CASES)
describe(`CUDA prefill and decode attention kernels (${name}, KV cache ${kvCacheDtype})`, { skip }, () => {
  test('prompts, decode-only steps of 200 and 600 sequences and a mixed step match attention.cu (--no-fast-attention)', async () => {
    // Prompts take attention_prefill.cu and generated tokens attention_decode.cu; --no-fast-attention
    // takes attention.cu for every row. 200 sequences x
    // 2 KV heads: more blocks than twice the SMs, so no split-parallel decode in either; the decode
    // kernel runs a few warps a (token, KV head) for them (how many depends on the head size and the
    // cache) and one for 600 short sequences (1,280 blocks with the graph's padding).
    const S = 200;
    const SHORT = 600;
    const lengths = Array.from({ length: S }, (_, k) => 5 + ((k * 37) % 290));
    const blocks = (k: number) => blockRange(k * 20, 20); // 320 positions each
    const outputs: Float32Array[][] = [];
    // f16 scores in the prefill kernel: FP8 ones (the default at head_dim 128 on an E4M3 cache) have
    // their own test and bound (prefill-fp8-scores.test.ts).
    for (const fastAttention of [true, false]) {
      const rt = await Runtime.load({ ...source, device: 'cuda', kvCacheBytes: 768 << 20, maxNumTokens: 8192, maxNumSeqs: 640, kvCacheDtype,
        cuda: { fastAttention, fp8PrefillScores: false } });
      try {
        const V = rt.info.vocabSize;
        const prompt = (k: number, n: number) => Array.from({ length: n }, (_, j) => 3 + ((k * 31 + j * 7) % (V - 3)));
        const out: Float32Array[] = [];
        // Prompts 40 at a time, each sampling its last token (the prefill kernel's tiles of up to 64 tokens, many K/V tiles).
        for (let k0 = 0; k0 < S; k0 += 40)
          out.push((await rt.step(makeBatch(lengths.slice(k0, k0 + 40).map((n, i) => ({ tokens: prompt(k0 + i, n), start: 0, blocks: blocks(k0 + i) })), true))).logits!);
        const decode = lengths.map((n, k) => ({ tokens: [5 + (k % (V - 5))], start: n, blocks: blocks(k) }));
        out.push((await rt.step(makeBatch(decode, true))).logits!);
        // The same tokens again (their K/V rewritten as they were) beside a 150-token prompt and a 2-token chunk.
        const mixed = [...decode, { tokens: prompt(S, 150), start: 0, blocks: blocks(S) }, { tokens: [7, 8], start: 0, blocks: blocks(S + 1) }];
        out.push((await rt.step(makeBatch(mixed, true))).logits!);
        // 600 short sequences (blocks after the first 202 sequences'), prompts 300 a step, then one decode step.
        const shortBlocks = (k: number) => blockRange((S + 2) * 20 + k * 4, 4); // 64 positions each
        const shortLength = (k: number) => 3 + ((k * 13) % 40);
        for (let k0 = 0; k0 < SHORT; k0 += 300)
          await rt.step(makeBatch(Array.from({ length: 300 }, (_, i) => ({ tokens: prompt(S + 2 + k0 + i, shortLength(k0 + i)), start: 0, blocks: shortBlocks(k0 + i), sample: false }))));
        out.push((await rt.step(makeBatch(Array.from({ length: SHORT }, (_, k) => ({ tokens: [9 + (k % (V - 9))], start: shortLength(k), blocks: shortBlocks(k) })), true))).logits!);
        outputs.push(out);
      } finally {
        await rt.close();
      }
    }
    const V = outputs[0][outputs[0].length - 2].length / (S + 2);
    // Different attention arithmetic (f16 P, lazy rescaling, other fold points): BF16 noise,
    // the parity tests' 2e-2 (H200: up to 6e-3 on the default model, 1.3e-2 on llama3-scaled). A
    // one-byte cache can also see a value cross a quantization step.
    const limit = kvCacheDtype === 'fp8' ? 5e-2 : 2e-2;
    outputs[0].forEach((fast, i) => {
      const err = worstRowError(fast, outputs[1][i], V);
      const what = i < S / 40 ? `prompts ${i * 40}-${i * 40 + 39}` : ['decode-only step', 'mixed step', `decode-only step of ${SHORT}`][i - S / 40];
      console.log(`fast kernels vs attention.cu (${name}, KV ${kvCacheDtype}), ${what}: worst row ${err.toExponential(2)}`);
      assert.ok(err < limit, `${what}: ${err}`);
    });
  });
});

// The attention kernels find a position's cache block by block_divisor()'s multiply and shift, not
// a division: a block size that is not a power of two must map every position as 16 does.
// Each case: the default model (head_dim 64) or Llama-3-8B's head layout (head_dim 128, 256), a
// cache type, and the fast kernels or attention.cu (--no-fast-attention).
const BLOCK_SIZE_CASES = [
  ...(['auto', 'fp8', 'int8'] as const).map((kvCacheDtype) => ({ name: `default model, KV ${kvCacheDtype}`, source: { modelDir: DEFAULT_MODEL_DIR }, kvCacheDtype, fastAttention: true })),
  ...(['auto', 'fp8', 'int8'] as const).map((kvCacheDtype) => ({ name: `head_dim 128, KV ${kvCacheDtype}`, source: { dummy: { config: HEAD_DIM_128, seed: 3 } }, kvCacheDtype, fastAttention: true })),
  ...(['auto', 'fp8', 'int8'] as const).map((kvCacheDtype) => ({ name: `head_dim 256, KV ${kvCacheDtype}`, source: { dummy: { config: HEAD_DIM_256, seed: 3 } }, kvCacheDtype, fastAttention: true })),
  { name: 'default model, KV fp8, attention.cu', source: { modelDir: DEFAULT_MODEL_DIR }, kvCacheDtype: 'fp8' as const, fastAttention: false },
];
for (const { name, source, kvCacheDtype, fastAttention } of BLOCK_SIZE_CASES)
describe(`CUDA attention with a block size that is not a power of two (${name})`, { skip }, () => {
  test('block size 24 gives the logits of block size 16 (prompts, decode-only and few-row steps)', async () => {
    const lengths = Array.from({ length: 24 }, (_, k) => 7 + ((k * 53) % 260));
    const outputs: Float32Array[][] = [];
    for (const blockSize of [16, 24]) {
      const rt = await Runtime.load({ ...source, device: 'cuda', kvCacheBytes: 256 << 20, maxNumTokens: 8192, maxNumSeqs: 64, blockSize, kvCacheDtype, cuda: { fastAttention } });
      try {
        const V = rt.info.vocabSize;
        const per = Math.ceil(300 / blockSize);
        const blocks = (k: number) => blockRange(k * per, per);
        const prompt = (k: number, n: number) => Array.from({ length: n }, (_, j) => 3 + ((k * 29 + j * 11) % (V - 3)));
        const out: Float32Array[] = [];
        out.push((await rt.step(makeBatch(lengths.map((n, k) => ({ tokens: prompt(k, n), start: 0, blocks: blocks(k) })), true))).logits!);
        out.push((await rt.step(makeBatch(lengths.map((n, k) => ({ tokens: [5 + k], start: n, blocks: blocks(k) })), true))).logits!);
        out.push((await rt.step(makeBatch([0, 1].map((k) => ({ tokens: [9 + k], start: lengths[k] + 1, blocks: blocks(k) })), true))).logits!);
        outputs.push(out);
      } finally {
        await rt.close();
      }
    }
    outputs[0].forEach((a, i) => {
      const V = a.length / (i === 2 ? 2 : lengths.length);
      const err = worstRowError(outputs[1][i], a, V);
      console.log(`block size 24 vs 16 (${name}), ${['prompts', 'decode-only step', 'few-row step'][i]}: worst row ${err.toExponential(2)}`);
      assert.ok(err < 2e-2, `step ${i}: ${err}`);
    });
  });
});

// GPT-J-6B's head layout (head_dim 256: 4096 / 16 heads, rotary on each head's first 64 dims, one
// query head per KV head) at a small width, as a checkpoint of random BF16 weights that both backends
// read (writeRandomGptj), so the CPU backend (float32 throughout) is the reference for every CUDA
// attention kernel at head_dim 256.
const GPTJ_HEAD_DIM_256 = { vocab_size: 512, n_embd: 512, n_layer: 2, n_head: 2, rotary_dim: 64, n_positions: 1024, n_inner: 1024 };

/**
 * The steps, 2 KV heads a token: 8 prompts of 3-300 tokens (up to 3 query tiles of 128 tokens and 10
 * K/V tiles of 32 in attention_prefill.cu); their decode tokens (16 (token, KV head) pairs, fewer than
 * twice the SMs: attention_decode.cu at 8 warps a block (4 with bf16), or split-parallel attention.cu with
 * --no-fast-attention); 240 short prompts; a decode-only step of all 248
 * sequences (496 pairs: attention_decode.cu); and a mixed step (the 8 decode tokens beside a
 * 150-token prompt and a 2-token chunk: both fast kernels in one step). Every sequence samples.
 */
function headDim256Steps(): Chunk[][] {
  const long = [300, 257, 200, 129, 100, 64, 37, 3];
  const longBlocks = (k: number) => blockRange(k * 20, 20); // 320 positions
  const shortLength = (k: number) => 3 + ((k * 13) % 40);
  const shortBlocks = (k: number) => blockRange(160 + k * 4, 4); // 64 positions
  const prompt = (k: number, n: number) => Array.from({ length: n }, (_, j) => 3 + ((k * 31 + j * 7) % 509));
  const shorts = Array.from({ length: 240 }, (_, k) => k);
  return [
    long.map((n, k) => ({ tokens: prompt(k, n), start: 0, blocks: longBlocks(k) })),
    long.map((n, k) => ({ tokens: [5 + k], start: n, blocks: longBlocks(k) })),
    shorts.map((k) => ({ tokens: prompt(100 + k, shortLength(k)), start: 0, blocks: shortBlocks(k) })),
    [
      ...long.map((n, k) => ({ tokens: [7 + k], start: n + 1, blocks: longBlocks(k) })),
      ...shorts.map((k) => ({ tokens: [9 + (k % 500)], start: shortLength(k), blocks: shortBlocks(k) })),
    ],
    [
      ...long.map((n, k) => ({ tokens: [11 + k], start: n + 2, blocks: longBlocks(k) })),
      { tokens: prompt(500, 150), start: 0, blocks: blockRange(1120, 10) },
      { tokens: [7, 8], start: 0, blocks: [1130] },
    ],
  ];
}

async function logitsOfSteps(rt: Runtime, steps: Chunk[][]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const chunks of steps) out.push((await rt.step(makeBatch(chunks, true))).logits!);
  return out;
}

describe('CUDA attention at head_dim 256 (GPT-J-6B head layout) against the CPU backend', { skip }, () => {
  let dir: string;
  let reference: Float32Array[];
  const steps = headDim256Steps();
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tachyon-hd256-'));
    writeRandomGptj(dir, GPTJ_HEAD_DIM_256, 5);
    const cpu = await Runtime.load({ modelDir: dir, kvCacheBytes: 160 << 20, maxNumTokens: 8192, maxNumSeqs: 256 });
    try {
      reference = await logitsOfSteps(cpu, steps);
    } finally {
      await cpu.close();
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // The checkpoint's numpy model (writeRandomGptj) puts the worst row at 0.7% (bf16 activations),
  // 1.3% (INT8 K/V) and 5.4% (E4M3 K/V) from float32; a wrong half of V or quarter of K, above 50%.
  const LIMITS = { auto: 2e-2, int8: 4e-2, fp8: 1e-1 } as const;
  for (const kvCacheDtype of ['auto', 'fp8', 'int8'] as const)
    for (const fastAttention of [true, false])
      test(`KV ${kvCacheDtype}, ${fastAttention ? 'prefill and decode kernels' : 'attention.cu for every row (--no-fast-attention)'}: every step's logits`, async () => {
        const cuda = await Runtime.load({ modelDir: dir, device: 'cuda', kvCacheBytes: 256 << 20, maxNumTokens: 8192, maxNumSeqs: 256, kvCacheDtype, cuda: { fastAttention } });
        try {
          const ours = await logitsOfSteps(cuda, steps);
          const V = cuda.info.vocabSize;
          ours.forEach((logits, i) => {
            const err = worstRowError(logits, reference[i], V);
            const what = ['8 prompts', 'their decode tokens', '240 short prompts', 'decode-only step of 248', 'mixed step'][i];
            console.log(`head_dim 256 vs CPU (KV ${kvCacheDtype}${fastAttention ? '' : ', attention.cu'}), ${what}: worst row ${err.toExponential(2)}`);
            assert.ok(err < LIMITS[kvCacheDtype], `${what}: ${err}`);
          });
        } finally {
          await cuda.close();
        }
      });

  // Chunks starting off a 64-position split leave a warp's rows ending before a split its tile
  // reaches; attention.cu folds that split's fresh state at head_dim 256 (weights 1 and 0), and the
  // earlier rows' outputs reach the last row through layer 2's K/V.
  // One-token chunks of a prompt (promptLens says they are prompt rows) take the prefill kernel as
  // the rest of the prompt does, not the decode kernel.
  for (const kvCacheDtype of ['auto', 'fp8', 'int8'] as const)
    for (const fastAttention of [true, false])
    test(`KV ${kvCacheDtype}, batch-invariant${fastAttention ? '' : ', attention.cu'}: a prompt's last logits are the same to the bit whole, in chunks of 40, 1, 159, 99 and 1, and of 7`, async () => {
      const cuda = await Runtime.load({ modelDir: dir, device: 'cuda', kvCacheBytes: 256 << 20, maxNumTokens: 8192, maxNumSeqs: 256, kvCacheDtype, cuda: { batchInvariant: true, fastAttention } });
      try {
        const prompt = Array.from({ length: 300 }, (_, j) => 3 + ((j * 53 + 5) % 509));
        const lastLogits = async (cuts: number[]) => {
          let logits: Float32Array | undefined;
          for (let i = 0; i + 1 < cuts.length; i++)
            logits = (await cuda.step(makeBatch([{ tokens: prompt.slice(cuts[i], cuts[i + 1]), start: cuts[i], blocks: blockRange(0, 20), promptLength: 300 }], true))).logits!;
          return Array.from(logits!);
        };
        const whole = await lastLogits([0, 300]);
        assert.deepEqual(await lastLogits([0, 40, 41, 200, 299, 300]), whole);
        assert.deepEqual(await lastLogits([...Array.from({ length: 43 }, (_, i) => 7 * i), 300]), whole);
      } finally {
        await cuda.close();
      }
    });
});

describe('CUDA backend errors', { skip }, () => {
  test('a memory fraction too small for the KV cache is an Error saying how much is used', async () => {
    await assert.rejects(
      Runtime.load({ dummy: { config: 'llama-2-7b' }, device: 'cuda', gpuMemoryFraction: 0.05 }),
      /no GPU memory left for the KV cache: weights and workspace use \d+ of \d+ bytes/,
    );
  });

  test('a batch past the runtime limits is refused before it reaches the GPU', async () => {
    const rt = await gpu(join(MODELS_DIR, 'qwen2-bias'), { maxNumTokens: 8 });
    await assert.rejects(rt.step(makeBatch([{ tokens: Array(9).fill(1), start: 0, blocks: [0] }])), /more than the runtime's max_num_tokens of 8/);
    const ok = await rt.step(makeBatch([{ tokens: [1, 2], start: 0, blocks: [0] }]));
    assert.ok(ok.tokens[0] >= 0);
    await rt.close();
  });
});
