// Loading variants (F16 weights, sharded checkpoints, dummy weights) and the
// promise that a forward pass never blocks the event loop.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Runtime } from '../../native/index.js';
import { readSafetensorsHeader, readTensorBytes } from '../../native/safetensors.js';
import { blockRange, makeBatch, relativeError } from '../helpers/batch.js';
import { loadReference, MODELS_DIR } from '../helpers/fixtures.js';
import { toHalf, writeSafetensors, type RawTensor } from '../helpers/safetensors-writer.js';

let scratch: string;
before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'tachyon-load-'));
});
after(() => rmSync(scratch, { recursive: true, force: true }));

/** The F32 fixture rewritten with F16 weights. */
function writeF16Copy(model: string): string {
  const dir = join(scratch, `${model}-f16`);
  cpSync(join(MODELS_DIR, model), dir, { recursive: true });
  const h = readSafetensorsHeader(join(dir, 'model.safetensors'));
  const tensors: Record<string, RawTensor> = {};
  for (const t of h.tensors.values()) {
    const b = readTensorBytes(h, t.name);
    const f32 = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
    tensors[t.name] = { dtype: 'F16', shape: t.shape, data: new Uint8Array(Uint16Array.from(f32, toHalf).buffer) };
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

test('an F16 checkpoint loads and its logits stay close to transformers F32', async () => {
  const rt = await Runtime.load({ modelDir: writeF16Copy('llama3-scaled'), kvCacheBytes: 4 << 20 });
  try {
    const [p] = loadReference('llama3-scaled').slice(2);
    const res = await rt.step(makeBatch([{ tokens: p.tokens, start: 0, blocks: blockRange(0, 2) }], true));
    const V = rt.info.vocabSize;
    const last = p.logits.subarray((p.tokens.length - 1) * V);
    const err = relativeError(res.logits!, last);
    assert.ok(err < 5e-3 && err > 0, `relative error ${err}`);
  } finally {
    await rt.close();
  }
});

test('a sharded checkpoint with an index loads every shard', async () => {
  const rt = await Runtime.load({ modelDir: join(MODELS_DIR, 'qwen2-bias'), kvCacheBytes: 4 << 20 });
  assert.equal(rt.info.architecture, 'Qwen2ForCausalLM');
  assert.equal(rt.info.qkvBias, true);
  await rt.close();
});

test('info reports the model, the pool and the eos ids', async () => {
  const rt = await Runtime.load({ modelDir: join(MODELS_DIR, 'llama3-scaled'), kvCacheBytes: 1 << 20, blockSize: 8 });
  const i = rt.info;
  assert.deepEqual([i.vocabSize, i.numLayers, i.numHeads, i.numKvHeads, i.headDim, i.maxPositions], [400, 3, 6, 2, 16, 512]);
  assert.deepEqual(i.eosTokenIds, [2, 3]);
  assert.equal(i.ropeScaling, 'llama3');
  assert.equal(i.bytesPerBlock, 2 * 3 * 2 * 16 * 8 * 4);
  assert.equal(i.numBlocks, Math.floor((1 << 20) / i.bytesPerBlock));
  await rt.close();
});

const BENCH_SHAPE = {
  architectures: ['LlamaForCausalLM'], vocab_size: 4096, hidden_size: 512, intermediate_size: 1536,
  num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4, max_position_embeddings: 2048,
};

test('the event loop keeps turning while a forward pass runs', async () => {
  const rt = await Runtime.load({ dummy: { config: BENCH_SHAPE, seed: 1 }, threads: 1, kvCacheBytes: 64 << 20 });
  try {
    const prompt = Array.from({ length: 1024 }, (_, i) => (i * 7) % 4096);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    let done = false;
    const step = rt.step(makeBatch([{ tokens: prompt, start: 0, blocks: blockRange(0, 64) }])).then((r) => {
      done = true;
      return r;
    });
    // Timers fire before the step resolves: the pass runs on another thread.
    while (ticks < 5) await new Promise((r) => setTimeout(r, 1));
    assert.equal(done, false, 'the step finished before five 1 ms timer ticks; make it bigger');
    const res = await step;
    clearInterval(timer);
    assert.ok(res.tokens[0] >= 0);
  } finally {
    await rt.close();
  }
});

test('dummy weights are reproducible from their seed', async () => {
  const run = async (seed: number) => {
    const rt = await Runtime.load({ dummy: { config: { ...BENCH_SHAPE, num_hidden_layers: 1 }, seed }, kvCacheBytes: 8 << 20 });
    const r = await rt.step(makeBatch([{ tokens: [1, 2, 3], start: 0, blocks: [0] }], true));
    await rt.close();
    return r.logits!;
  };
  assert.deepEqual(await run(7), await run(7));
  assert.notDeepEqual(await run(7), await run(8));
});

test('dummy weights serve GPT-2 and GPT-J shapes (GPT-J-6B head layout: head_dim 256, rotary_dim 64)', async () => {
  const shapes = [
    { architectures: ['GPT2LMHeadModel'], vocab_size: 300, n_embd: 64, n_layer: 2, n_head: 4, n_positions: 128 },
    { architectures: ['GPTJForCausalLM'], vocab_size: 300, n_embd: 512, n_layer: 2, n_head: 2, rotary_dim: 64, n_positions: 128 },
  ];
  for (const config of shapes) {
    const rt = await Runtime.load({ dummy: { config, seed: 1 }, kvCacheBytes: 8 << 20 });
    try {
      const r = await rt.step(makeBatch([{ tokens: [1, 2, 3], start: 0, blocks: [0] }], true));
      assert.ok(r.logits!.every(Number.isFinite), `${config.architectures[0]}: logits not finite`);
      assert.ok(r.logits!.some((x) => x !== 0), `${config.architectures[0]}: logits all zero`);
    } finally {
      await rt.close();
    }
  }
});
