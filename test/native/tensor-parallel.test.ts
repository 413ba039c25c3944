// Tensor parallelism on the CPU backend: ranks are threads that each hold a slice
// of the model (heads, KV heads, MLP width, vocabulary) and meet in an in-process
// all-reduce. Against one rank and against transformers (test/parity/make_fixtures.py).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Runtime } from '../../native/index.js';
import { relativeError } from '../helpers/batch.js';
import { CPU_PARITY_MODELS, loadReference, MODELS_DIR, type ReferencePrompt } from '../helpers/fixtures.js';
import { greedyContinuation, logitsAtEveryPosition } from '../helpers/stepping.js';
import { postJson, startTestServer } from '../helpers/server.js';

const KV_BYTES = 8 * 1024 * 1024;

// Sizes each fixture can be cut into (N divides the heads and the MLP width, and divides the KV heads
// or is a multiple of them): llama-gqa-tied and qwen2-bias have 4 heads over 2 KV heads, so 4 ranks
// replicate each KV head twice; llama3-scaled has 6 over 2 (4 does not divide 6; 6 replicates each three times);
// mistral-tp (a Mistral shape) has 8 over 4.
const SIZES: Record<(typeof CPU_PARITY_MODELS)[number], number[]> = {
  'llama-gqa-tied': [2, 4],
  'llama3-scaled': [2, 6],
  'qwen2-bias': [2, 4],
  // 8 heads over 4 KV heads: whole KV heads at 2 and 4 ranks, each replicated twice at 8.
  'mistral-tp': [2, 4, 8],
  // GPT-2 and GPT-J: 4 heads (no GQA), MLP 256 wide; GPT-J's attention and MLP share one all-reduce.
  'gpt2-tiny': [2, 4],
  'gptj-tiny': [2, 4],
};

for (const model of CPU_PARITY_MODELS) {
  describe(`tensor parallelism on cpu: ${model}`, () => {
    let single: Runtime;
    let reference: ReferencePrompt[];
    const ones: Float32Array[] = [];
    before(async () => {
      reference = loadReference(model);
      single = await Runtime.load({ modelDir: join(MODELS_DIR, model), kvCacheBytes: KV_BYTES, threads: 2 });
      for (const p of reference) ones.push(await logitsAtEveryPosition(single, p.tokens));
    });
    after(() => single.close());

    for (const size of SIZES[model]) {
      test(`${size} ranks: logits within 1e-5 of one rank, greedy continuations equal transformers'`, async () => {
        const rt = await Runtime.load({ modelDir: join(MODELS_DIR, model), kvCacheBytes: KV_BYTES, threads: 2, tensorParallelSize: size });
        try {
          // Every rank has its own threads (the total split over the ranks, at least one each).
          assert.equal(rt.info.numThreads, Math.max(1, Math.floor(2 / size)) * size);
          const V = rt.info.vocabSize;
          for (const [i, p] of reference.entries()) {
            const ours = await logitsAtEveryPosition(rt, p.tokens);
            let worst = 0;
            for (let r = 0; r < p.tokens.length; r++)
              worst = Math.max(worst, relativeError(ours.subarray(r * V, (r + 1) * V), ones[i].subarray(r * V, (r + 1) * V)));
            assert.ok(worst < 1e-5, `worst row against one rank: ${worst}`);
            assert.deepEqual(await greedyContinuation(rt, p.tokens, p.greedy.length), p.greedy);
          }
        } finally {
          await rt.close();
        }
      });
    }
  });
}

test('a tensor-parallel size that does not divide the heads is refused at load, naming the count', async () => {
  await assert.rejects(
    Runtime.load({ modelDir: join(MODELS_DIR, 'llama-gqa-tied'), kvCacheBytes: KV_BYTES, tensorParallelSize: 3 }),
    /tensor_parallel_size 3 does not divide the model's 4 attention heads/,
  );
  await assert.rejects(
    Runtime.load({ modelDir: join(MODELS_DIR, 'llama3-scaled'), kvCacheBytes: KV_BYTES, tensorParallelSize: 4 }),
    /tensor_parallel_size 4 does not divide the model's 6 attention heads/,
  );
});

test('the server with --tensor-parallel-size 2 answers as with one rank (the embedded model, greedy)', async () => {
  const body = { model: 'tiny-shakespeare', prompt: 'ROMEO:\nWhat light', max_tokens: 48, temperature: 0 };
  const texts: string[] = [];
  for (const tensorParallelSize of [1, 2]) {
    const server = await startTestServer({ tensorParallelSize, threads: 2 });
    try {
      const res = await postJson(`${server.url}/v1/completions`, body);
      assert.equal(res.status, 200);
      const json = (await res.json()) as { choices: { text: string }[] };
      texts.push(json.choices[0].text);
    } finally {
      await server.shutdown(1000);
    }
  }
  assert.ok(texts[0].length > 0);
  assert.equal(texts[1], texts[0]);
});
