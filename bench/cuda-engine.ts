// The CUDA backend under the real engine with random weights of a named
// shape: N requests of fixed input/output length queued at once, EOS
// ignored; output tokens over wall time (as trtllm-bench counts), step
// statistics and GPU memory.
//   node dist/bench/cuda-engine.js --shape llama-3-8b --requests 256 --input 128 --output 128
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { Engine } from '../engine/engine.js';
import { packageRoot } from '../native/binding.js';
import { Runtime } from '../native/index.js';
import { loadTokenizer } from '../tokenizers/tokenizer.js';

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'llama-3-8b' },
    dtype: { type: 'string', default: 'bf16' },
    requests: { type: 'string', default: '256' },
    input: { type: 'string', default: '128' },
    output: { type: 'string', default: '128' },
    'max-seqs': { type: 'string', default: '256' },
    'max-tokens': { type: 'string', default: '8192' },
  },
});
const N = Number(values.requests), IN = Number(values.input), OUT = Number(values.output);

const t0 = performance.now();
const rt = await Runtime.load({
  dummy: { config: values.shape!, seed: 1 }, device: 'cuda', dtype: values.dtype as 'bf16',
  maxNumSeqs: Number(values['max-seqs']), maxNumTokens: Number(values['max-tokens']),
});
const loadS = (performance.now() - t0) / 1000;
// Detokenization only; ids past this tokenizer's vocabulary stream as empty text.
const tokenizer = loadTokenizer(join(packageRoot(), 'test', 'fixtures', 'tokenizers', 'cl100k'));
const engine = new Engine(rt, tokenizer);
let seed = 7;
const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % rt.info.vocabSize);

const start = performance.now();
let produced = 0;
let failed = 0;
let peakBlocks = 0;
const sampler = setInterval(() => (peakBlocks = Math.max(peakBlocks, engine.stats().kvBlocksUsed)), 20);
await Promise.all(
  Array.from({ length: N }, async (_, i) => {
    const prompt = Array.from({ length: IN }, rand);
    for await (const d of engine.submit({ id: `b${i}`, promptTokens: prompt, sampling: { temperature: 0 }, stop: { maxTokens: OUT, ignoreEos: true } })) {
      produced += d.tokenIds.length;
      if (d.finish && d.finish.reason !== 'length') failed++;
    }
  }),
);
clearInterval(sampler);
const wall = (performance.now() - start) / 1000;
const s = engine.stats();
console.log(`shape ${values.shape} ${values.dtype} on ${rt.info.deviceName}: loaded in ${loadS.toFixed(1)} s, GPU memory in use ${(rt.info.deviceBytesUsed / 2 ** 30).toFixed(1)} GiB, ` +
  `KV pool ${rt.info.numBlocks} blocks of ${rt.info.blockSize} tokens (${((rt.info.numBlocks * rt.info.bytesPerBlock) / 2 ** 30).toFixed(1)} GiB)`);
console.log(`${N} requests ${IN}/${OUT}: ${produced} output tokens in ${wall.toFixed(2)} s = ${(produced / wall).toFixed(0)} output tokens/s ` +
  `(${(((IN + OUT) * N) / wall).toFixed(0)} total tokens/s), ${s.steps} steps, mean ${((N * (IN + OUT)) / s.steps).toFixed(0)} tokens per step, ` +
  `peak KV blocks ${peakBlocks}, failed ${failed}`);
await rt.close();
tokenizer.free();
