// The KServe v2 / Triton HTTP protocol: metadata and health, the seed's infer
// request (input_ids -> logits) against transformers' logits on a parity
// fixture, TensorRT-LLM's text tensors and Triton's generate extension against
// /v1/completions, and bad tensors answered in KServe's error shape.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DEFAULT_MODEL_DIR } from '../../config/schema.js';
import { relativeError } from '../helpers/batch.js';
import { loadReference, MODELS_DIR } from '../helpers/fixtures.js';
import { postJson, startTestServer } from '../helpers/server.js';

type Server = Awaited<ReturnType<typeof startTestServer>>;
const ids = (data: unknown, shape: number[], datatype = 'INT32') => ({ inputs: [{ name: 'input_ids', shape, datatype, data }] });

describe('KServe v2 on a parity fixture: the seed\'s input_ids request', () => {
  let server: Server;
  let scratch: string;
  const reference = loadReference('llama-gqa-tied');
  before(async () => {
    // The fixture with the default model's tokenizer beside it (the server needs one; these requests send ids).
    scratch = mkdtempSync(join(tmpdir(), 'tachyon-kserve-'));
    const dir = join(scratch, 'gqa');
    cpSync(join(MODELS_DIR, 'llama-gqa-tied'), dir, { recursive: true });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) cpSync(join(DEFAULT_MODEL_DIR, f), join(dir, f));
    server = await startTestServer({ model: dir });
  });
  after(async () => {
    await server.shutdown(1000);
    rmSync(scratch, { recursive: true, force: true });
  });

  test('logits for the last position match transformers, and their argmax is its next greedy token', async () => {
    const p = reference[2];
    const V = 384;
    const res = await postJson(`${server.url}/v2/models/gqa/infer`, { id: 'r1', ...ids([p.tokens], [1, p.tokens.length]) });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { id: string; model_name: string; outputs: { name: string; datatype: string; shape: number[]; data: number[] }[] };
    assert.equal(body.id, 'r1');
    assert.equal(body.model_name, 'gqa');
    const [out] = body.outputs;
    assert.deepEqual([out.name, out.datatype, out.shape], ['logits', 'FP32', [1, V]]);
    const last = p.logits.subarray((p.tokens.length - 1) * V);
    assert.ok(relativeError(Float32Array.from(out.data), last) < 1e-4);
    assert.equal(out.data.indexOf(Math.max(...out.data)), p.greedy[0]);
  });

  test('every position with parameters.all_positions, a flat [n] shape and INT64 ids', async () => {
    const p = reference[1];
    const V = 384;
    const res = await postJson(`${server.url}/v2/models/gqa/infer`, { ...ids(p.tokens, [p.tokens.length], 'INT64'), parameters: { all_positions: true } });
    assert.equal(res.status, 200);
    const out = ((await res.json()) as { outputs: { shape: number[]; data: number[] }[] }).outputs[0];
    assert.deepEqual(out.shape, [1, p.tokens.length, V]);
    for (let k = 0; k < p.tokens.length; k++)
      assert.ok(relativeError(Float32Array.from(out.data.slice(k * V, (k + 1) * V)), p.logits.subarray(k * V, (k + 1) * V)) < 1e-4, `position ${k}`);
  });
});

test('an infer that needs more sequences than the queue holds is a 400 and leaves nothing running', async () => {
  const server = await startTestServer({ maxQueue: 4 });
  try {
    const res = await postJson(`${server.url}/v2/models/tiny-shakespeare/infer`, { ...ids([0, 40, 112, 9, 301, 77], [6]), parameters: { all_positions: true } });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /needs 6 sequences but the server queues at most 4/);
    assert.equal(server.deps.engine.stats().running + server.deps.engine.stats().waiting, 0);
    assert.equal((await postJson(`${server.url}/v2/models/tiny-shakespeare/infer`, ids([0, 40], [2]))).status, 200);
  } finally {
    await server.shutdown(1000);
  }
});

describe('KServe v2 on the embedded model', () => {
  let server: Server;
  before(async () => (server = await startTestServer()));
  after(() => server.shutdown(1000));
  const url = (path: string) => `${server.url}${path}`;

  test('server and model metadata, health and readiness', async () => {
    const meta = (await (await fetch(url('/v2'))).json()) as { name: string; extensions: string[] };
    assert.equal(meta.name, 'tachyon');
    assert.ok(meta.extensions.includes('generate'));
    assert.equal((await fetch(url('/v2/health/live'))).status, 200);
    assert.equal((await fetch(url('/v2/health/ready'))).status, 200);
    assert.equal((await fetch(url('/v2/models/tiny-shakespeare/ready'))).status, 200);
    const model = (await (await fetch(url('/v2/models/tiny-shakespeare'))).json()) as { name: string; versions: string[]; inputs: { name: string; datatype: string }[]; outputs: { name: string }[] };
    assert.equal(model.name, 'tiny-shakespeare');
    assert.deepEqual(model.versions, ['1']);
    assert.ok(model.inputs.some((i) => i.name === 'input_ids' && i.datatype === 'INT32'));
    assert.deepEqual(model.outputs.map((o) => o.name), ['logits', 'text_output']);
    assert.equal((await fetch(url('/v2/models/tiny-shakespeare/versions/1'))).status, 200);
    const missing = await fetch(url('/v2/models/gpt2'));
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { error: string }).error, /model 'gpt2' is not served here/);
  });

  test('text_input -> text_output, generate and generate_stream say what /v1/completions says (greedy)', async () => {
    const prompt = 'ROMEO:\nWhat light';
    const expected = ((await (await postJson(url('/v1/completions'), { model: 'tiny-shakespeare', prompt, max_tokens: 24, temperature: 0 })).json()) as { choices: { text: string }[] }).choices[0].text;
    assert.ok(expected.length > 0);
    // No sampling settings: greedy, as TensorRT-LLM's backend.
    const infer = await postJson(url('/v2/models/tiny-shakespeare/infer'), {
      inputs: [
        { name: 'text_input', shape: [1, 1], datatype: 'BYTES', data: [prompt] },
        { name: 'max_tokens', shape: [1, 1], datatype: 'INT32', data: [24] },
      ],
    });
    assert.equal(infer.status, 200);
    const out = ((await infer.json()) as { outputs: { name: string; datatype: string; shape: number[]; data: string[] }[] }).outputs[0];
    assert.deepEqual([out.name, out.datatype, out.shape], ['text_output', 'BYTES', [1, 1]]);
    assert.equal(out.data[0], prompt + expected, 'the ensemble repeats the input');

    const gen = (await (await postJson(url('/v2/models/tiny-shakespeare/generate'), { text_input: prompt, max_tokens: 24, temperature: 0, exclude_input_in_output: true })).json()) as { text_output: string };
    assert.equal(gen.text_output, expected);

    const res = await postJson(url('/v2/models/tiny-shakespeare/generate_stream'), { text_input: prompt, max_tokens: 24, temperature: 0 });
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)) as { text_output: string });
    assert.ok(events.length > 2, 'the answer streams in pieces');
    assert.equal(events.map((e) => e.text_output).join(''), expected);
  });

  test('bad tensors get 400 in KServe\'s shape, naming the problem', async () => {
    const cases: [unknown, RegExp][] = [
      [ids([1.5, 2], [2], 'FP32'), /input 'input_ids' must be INT32 or INT64, got FP32/],
      [ids([1, 99999], [2]), /input_ids\[1\] = 99999 is outside the vocabulary of 1024/],
      [ids([1, 2, 3], [1, 2]), /shape \[1, 2\] \(2 elements\) but 3 data elements/],
      [{ inputs: [{ name: 'max_tokens', shape: [1], datatype: 'INT32', data: [4] }] }, /exactly one of the inputs 'input_ids'/],
      [{ inputs: [{ name: 'pixels', shape: [1], datatype: 'FP32', data: [0] }] }, /unknown input 'pixels'/],
      [{ inputs: [] }, /inputs/],
      [{ inputs: [{ name: 'text_input', shape: [1], datatype: 'INT32', data: [3] }] }, /input 'text_input' must be BYTES, got INT32/],
      [ids([], [0, 3]), /input_ids is empty \(shape \[0, 3\]\)/],
    ];
    for (const [body, pattern] of cases) {
      const res = await postJson(url('/v2/models/tiny-shakespeare/infer'), body);
      assert.equal(res.status, 400, JSON.stringify(body));
      const err = (await res.json()) as { error: string };
      assert.equal(typeof err.error, 'string');
      assert.match(err.error, pattern);
    }
    assert.equal(server.deps.engine.stats().kvBlocksUsed, 0, 'nothing refused holds KV blocks');
  });

  test('generate reads settings from parameters too, and empty stop_words / bad_words mean none', async () => {
    const prompt = 'JULIET:';
    const expected = ((await (await postJson(url('/v1/completions'), { model: 'tiny-shakespeare', prompt, max_tokens: 9, temperature: 0 })).json()) as { choices: { text: string }[] }).choices[0].text;
    const res = await postJson(url('/v2/models/tiny-shakespeare/generate'), { text_input: prompt, stop_words: [], bad_words: '', parameters: { temperature: 0, max_tokens: 9 } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { text_output: string }).text_output, prompt + expected);
  });
});
