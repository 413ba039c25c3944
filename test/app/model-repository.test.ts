// Several models from a Triton-style repository behind one server: both APIs
// route by model, each model answers as it would alone, config.pbtxt applies.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { loadReference, MODELS_DIR } from '../helpers/fixtures.js';
import { postJson, startTestServer } from '../helpers/server.js';

let root: string;
let server: Awaited<ReturnType<typeof startTestServer>>;
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'tachyon-repo-serve-'));
  const repo = join(root, 'repo');
  // A parity fixture with the default model's tokenizer beside it, in the model's own folder ...
  cpSync(join(MODELS_DIR, 'llama-gqa-tied'), join(repo, 'gqa'), { recursive: true });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(DEFAULT_MODEL_DIR, f), join(repo, 'gqa', f));
  // GPT-2 and GPT-J too (CPU backend), in version folders.
  for (const [name, fixture] of [['gpt2', 'gpt2-tiny'], ['gptj', 'gptj-tiny']]) {
    cpSync(join(MODELS_DIR, fixture), join(repo, name, '1'), { recursive: true });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(DEFAULT_MODEL_DIR, f), join(repo, name, '1', f));
  }
  // ... and the embedded model in a version folder with a config.pbtxt.
  mkdirSync(join(repo, 'shakespeare'));
  cpSync(DEFAULT_MODEL_DIR, join(repo, 'shakespeare', '3'), { recursive: true });
  writeFileSync(
    join(repo, 'shakespeare', 'config.pbtxt'),
    'name: "shakespeare"\nbackend: "python"\nmax_batch_size: 8\nparameters { key: "max_model_len" value { string_value: "256" } }\n',
  );
  server = await startTestServer({ modelRepository: repo });
});
after(async () => {
  await server.shutdown(1000);
  rmSync(root, { recursive: true, force: true });
});

test('/v1/models lists every model; config.pbtxt set the second one\'s context and batch', async () => {
  const list = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string; max_model_len: number }[] };
  assert.deepEqual(list.data.map((m) => [m.id, m.max_model_len]), [['gpt2', 256], ['gptj', 256], ['gqa', 256], ['shakespeare', 256]]);
  assert.equal(server.models[3].config.maxNumSeqs, 8);
  assert.equal((await fetch(`${server.url}/v1/models/shakespeare`)).status, 200);
});

test('OpenAI requests route by model and answer as that model alone would', async () => {
  const body = { prompt: 'ROMEO:\nWhat light', max_tokens: 24, temperature: 0 };
  const alone = await startTestServer();
  let expected: string;
  try {
    expected = ((await (await postJson(`${alone.url}/v1/completions`, { ...body, model: 'tiny-shakespeare' })).json()) as { choices: { text: string }[] }).choices[0].text;
  } finally {
    await alone.shutdown(1000);
  }
  const res = (await (await postJson(`${server.url}/v1/completions`, { ...body, model: 'shakespeare' })).json()) as { model: string; choices: { text: string }[] };
  assert.equal(res.model, 'shakespeare');
  assert.equal(res.choices[0].text, expected);
  // The fixture's vocabulary is 384 ids, smaller than the borrowed tokenizer's: token ids in.
  const p = loadReference('llama-gqa-tied')[1];
  const other = (await (await postJson(`${server.url}/v1/completions`, { model: 'gqa', prompt: p.tokens, max_tokens: 8, temperature: 0 })).json()) as { model: string };
  assert.equal(other.model, 'gqa');
  const missing = await postJson(`${server.url}/v1/chat/completions`, { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(missing.status, 404);
  const err = (await missing.json()) as { error: { message: string; code: string } };
  assert.equal(err.error.code, 'model_not_found');
  assert.match(err.error.message, /This server serves `gpt2`, `gptj`, `gqa`, `shakespeare`/);
});

test('greedy continuations through HTTP equal transformers\' for the Llama, GPT-2 and GPT-J fixtures', async () => {
  for (const [model, fixture] of [['gqa', 'llama-gqa-tied'], ['gpt2', 'gpt2-tiny'], ['gptj', 'gptj-tiny']]) {
    for (const p of loadReference(fixture)) {
      // Token ids in (the fixtures' vocabularies are smaller than the borrowed tokenizer's), text out,
      // compared with the text of transformers' greedy tokens.
      const res = (await (await postJson(`${server.url}/v1/completions`, { model, prompt: p.tokens, max_tokens: p.greedy.length, temperature: 0, ignore_eos: true, skip_special_tokens: false })).json()) as { choices: { text: string }[] };
      const want = (await (await postJson(`${server.url}/detokenize`, { model, tokens: p.greedy })).json()) as { prompt: string };
      assert.equal(res.choices[0].text, want.prompt, `${model}, prompt of ${p.tokens.length}`);
    }
  }
});

test('KServe routes by the path: the seed\'s request on the fixture picks transformers\' next token', async () => {
  const p = loadReference('llama-gqa-tied')[2];
  const res = await postJson(`${server.url}/v2/models/gqa/infer`, { inputs: [{ name: 'input_ids', shape: [1, p.tokens.length], datatype: 'INT32', data: p.tokens }] });
  assert.equal(res.status, 200);
  const logits = ((await res.json()) as { outputs: { data: number[] }[] }).outputs[0].data;
  assert.equal(logits.indexOf(Math.max(...logits)), p.greedy[0]);
  const gen = await postJson(`${server.url}/v2/models/shakespeare/generate`, { text_input: 'ROMEO:', max_tokens: 4, temperature: 0 });
  assert.equal(gen.status, 200);
  assert.equal((await fetch(`${server.url}/v2/models/nope`)).status, 404);
});

test('/metrics labels every series with its model', async () => {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(text, /tachyon_generation_tokens_total\{model_name="shakespeare"\} \d+/);
  assert.match(text, /tachyon_generation_tokens_total\{model_name="gqa"\} \d+/);
});
