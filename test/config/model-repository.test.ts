// Triton's model repository layout and config.pbtxt, as --model-repository reads them.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { readModelRepository } from '../../config/model-repository.js';
import { parsePbtxt } from '../../config/pbtxt.js';
import { MODELS_DIR } from '../helpers/fixtures.js';

let root: string;
before(() => (root = mkdtempSync(join(tmpdir(), 'tachyon-repo-'))));
after(() => rmSync(root, { recursive: true, force: true }));

test('config.pbtxt: fields, nested messages, lists, repeated fields, comments and enums', () => {
  const m = parsePbtxt(`
    name: "gpt2"   # the folder's name
    backend: 'python'
    max_batch_size: 8
    input [
      { name: "input_ids" data_type: TYPE_INT32 dims: [ -1 ] },
      { name: "attention_mask", data_type: TYPE_INT32, dims: [-1] }
    ]
    parameters { key: "dtype" value: { string_value: "bf16" } }
    parameters: { key: "max_model_len" value { string_value: "2048" } }
    instance_group [ { count: 1 kind: KIND_GPU } ]
    dynamic_batching { }
  `);
  assert.equal(m.name, 'gpt2');
  assert.equal(m.max_batch_size, 8);
  const inputs = m.input as { name: string; data_type: string; dims: number[] }[];
  assert.deepEqual(inputs.map((i) => [i.name, i.data_type, i.dims]), [['input_ids', 'TYPE_INT32', [-1]], ['attention_mask', 'TYPE_INT32', [-1]]]);
  assert.equal((m.parameters as unknown[]).length, 2);
  assert.deepEqual(m.dynamic_batching, {});
  assert.throws(() => parsePbtxt('name: "x"\nmax_batch_size 8\n', 'c.pbtxt'), /c\.pbtxt:2: expected ':' after 'max_batch_size'/);
  assert.throws(() => parsePbtxt('input [ { name: "a" }', 'c.pbtxt'), /c\.pbtxt:end: /);
  assert.throws(() => parsePbtxt('name: "open', 'c.pbtxt'), /unterminated string/);
});

test('every folder is a model: the checkpoint in the folder or its highest version, config.pbtxt applied', () => {
  const repo = join(root, 'repo');
  cpSync(join(MODELS_DIR, 'llama-gqa-tied'), join(repo, 'gqa'), { recursive: true });
  cpSync(join(MODELS_DIR, 'qwen2-bias'), join(repo, 'qwen', '1'), { recursive: true });
  cpSync(join(MODELS_DIR, 'qwen2-bias'), join(repo, 'qwen', '12'), { recursive: true });
  mkdirSync(join(repo, 'qwen', '20'));  // a version folder without a checkpoint is passed over
  writeFileSync(
    join(repo, 'qwen', 'config.pbtxt'),
    'name: "qwen"\nbackend: "python"\nmax_batch_size: 4\nparameters { key: "dtype" value { string_value: "fp8" } }\n' +
      'parameters { key: "max_model_len" value { string_value: "128" } }\nparameters { key: "FORCE_CPU_ONLY_INPUT_TENSORS" value { string_value: "no" } }\n',
  );
  const models = readModelRepository(repo);
  assert.deepEqual(models.map((m) => [m.name, m.version]), [['gqa', null], ['qwen', '12']]);
  assert.equal(models[1].dir, join(repo, 'qwen', '12'));
  assert.deepEqual(models[1].settings, { maxNumSeqs: 4, dtype: 'fp8', maxModelLen: '128' });
  assert.deepEqual(models[1].ignored, ['backend', 'parameters.FORCE_CPU_ONLY_INPUT_TENSORS']);
  assert.deepEqual(models[0].settings, {});
});

test('a repository that cannot be served is refused, naming the folder or file', () => {
  assert.throws(() => readModelRepository(join(root, 'nowhere')), /is not a directory/);
  mkdirSync(join(root, 'empty'));
  assert.throws(() => readModelRepository(join(root, 'empty')), /holds no model folders/);
  mkdirSync(join(root, 'bare', 'm', '1'), { recursive: true });
  assert.throws(() => readModelRepository(join(root, 'bare')), /model m: no config.json in .* or in a numeric version folder/);
  cpSync(join(MODELS_DIR, 'llama-gqa-tied'), join(root, 'named', 'm'), { recursive: true });
  writeFileSync(join(root, 'named', 'm', 'config.pbtxt'), 'name: "other"\n');
  assert.throws(() => readModelRepository(join(root, 'named')), /name 'other' does not match its folder 'm'/);
});

test('memory is split over the models: a model\'s own share from config.pbtxt, the rest evenly; cuda fractions add up in load order', async () => {
  const { modelConfigs } = await import('../../app/server.js');
  const { ConfigSchema } = await import('../../config/schema.js');
  const repo = join(root, 'split');
  for (const m of ['a', 'b', 'c']) cpSync(join(MODELS_DIR, 'llama-gqa-tied'), join(repo, m), { recursive: true });
  writeFileSync(join(repo, 'b', 'config.pbtxt'), 'parameters { key: "kv_cache_bytes" value { string_value: "1000000" } }\n');
  const lines: string[] = [];
  const log = { debug() {}, info: (m: string) => void lines.push(m), warn() {}, error() {} } as never;
  const cpu = modelConfigs(ConfigSchema.parse({ modelRepository: repo, kvCacheBytes: 9_000_000 }), log);
  assert.deepEqual(cpu.map((m) => [m.name, m.config.kvCacheBytes]), [['a', 4_000_000], ['b', 1_000_000], ['c', 4_000_000]]);
  assert.ok(lines.some((l) => /model b: 1000000 bytes of KV cache/.test(l)), lines.join('\n'));
  writeFileSync(join(repo, 'b', 'config.pbtxt'), 'parameters { key: "gpu_memory_fraction" value { string_value: "0.3" } }\n');
  const cuda = modelConfigs(ConfigSchema.parse({ modelRepository: repo, device: 'cuda', gpuMemoryFraction: 0.9 }), log);
  // Shares 0.3, 0.3, 0.3 given as what each may fill counting the models before it.
  assert.deepEqual(cuda.map((m) => Number(m.config.gpuMemoryFraction.toFixed(6))), [0.3, 0.6, 0.9]);
  writeFileSync(join(repo, 'b', 'config.pbtxt'), 'parameters { key: "gpu_memory_fraction" value { string_value: "0.95" } }\n');
  assert.throws(() => modelConfigs(ConfigSchema.parse({ modelRepository: repo, device: 'cuda', gpuMemoryFraction: 0.9 }), log), /add up to 0.95, leaving nothing/);
});

test('--model given several times serves each, named after its folder, memory split evenly', async () => {
  const { loadConfig } = await import('../../config/load.js');
  const { modelConfigs } = await import('../../app/server.js');
  const a = join(MODELS_DIR, 'llama-gqa-tied'), b = join(MODELS_DIR, 'qwen2-bias');
  const { config } = loadConfig(['--model', a, '--model', b, '--kv-cache-bytes', '8000000']);
  assert.equal(config.model, a);
  assert.deepEqual(config.models, [b]);
  const log = { debug() {}, info() {}, warn() {}, error() {} } as never;
  assert.deepEqual(modelConfigs(config, log).map((m) => [m.name, m.config.model, m.config.kvCacheBytes]), [['llama-gqa-tied', a, 4_000_000], ['qwen2-bias', b, 4_000_000]]);
  assert.throws(() => modelConfigs(loadConfig(['--model', a, '--model', a]).config, log), /two models are named 'llama-gqa-tied'/);
  assert.throws(() => modelConfigs(loadConfig(['--model', a, '--model', b, '--model-repository', root]).config, log), /either --model-repository or several --model/);
});
