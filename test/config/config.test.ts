// One schema, filled from defaults, a JSON file, TACHYON_* variables and flags (flags win).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { ConfigError, helpText, loadConfig } from '../../config/load.js';
import { DEVICE_DEFAULTS } from '../../config/defaults.js';
import { ConfigSchema, DEFAULT_MODEL_DIR, resolveConfig } from '../../config/schema.js';

test('defaults serve the embedded model on 127.0.0.1:8000', () => {
  const { config, help } = loadConfig([], {});
  assert.equal(help, false);
  assert.deepEqual([config.model, config.host, config.port, config.device], [DEFAULT_MODEL_DIR, '127.0.0.1', 8000, 'cpu']);
});

test('file < environment < flags', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tachyon-cfg-'));
  try {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ port: 7000, host: '0.0.0.0', maxNumSeqs: 8, apiKeys: ['from-file'] }));
    const env = { TACHYON_PORT: '7100', TACHYON_MAX_NUM_SEQS: '16', TACHYON_API_KEYS: 'a, b', TACHYON_ENABLE_PREFIX_CACHE: 'false' };
    const { config } = loadConfig(['--config', file, '--port', '7200', '--log-level=debug'], env);
    assert.equal(config.port, 7200);
    assert.equal(config.maxNumSeqs, 16);
    assert.equal(config.host, '0.0.0.0');
    assert.deepEqual(config.apiKeys, ['a', 'b']);
    assert.equal(config.enablePrefixCache, false);
    assert.equal(config.logLevel, 'debug');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad settings are refused naming the option', () => {
  assert.throws(() => loadConfig(['--port', 'eighty'], {}), (e: Error) => e instanceof ConfigError && /--port/.test(e.message));
  assert.throws(() => loadConfig(['--device', 'tpu'], {}), /--device/);
  assert.throws(() => loadConfig(['--frobnicate', '1'], {}), /unknown option --frobnicate/);
  assert.throws(() => loadConfig(['--port'], {}), /--port needs a value/);
  assert.throws(() => loadConfig([], { TACHYON_BLOCK_SIZE: '0' }), /--block-size/);
  assert.throws(() => loadConfig(['--config', '/nonexistent.json'], {}), /cannot read config file/);
});

test('--help lists every option with its variable and default', () => {
  const text = helpText();
  for (const key of Object.keys(ConfigSchema.shape)) {
    const flag = '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
    assert.ok(text.includes(flag), flag);
  }
  assert.match(text, /--port\s+TACHYON_PORT\s+default: 8000/);
  assert.equal(loadConfig(['--help'], {}).help, true);
});

test("vLLM's spellings set the same settings: --api-key repeats, boolean flags stand alone or negated", () => {
  const { config } = loadConfig(['--api-key', 'k1', '--api-key=k2,k3', '--gpu-memory-utilization', '0.8', '--no-enable-prefix-caching', '--tensor-parallel-size', '1', '--long-prefill-token-threshold', '256'], {});
  assert.deepEqual(config.apiKeys, ['k1', 'k2', 'k3']);
  assert.equal(config.gpuMemoryFraction, 0.8);
  assert.equal(config.enablePrefixCache, false);
  assert.equal(config.maxPrefillChunk, 256);
  assert.equal(loadConfig(['--enable-prefix-caching'], { TACHYON_ENABLE_PREFIX_CACHE: 'false' }).config.enablePrefixCache, true);
  assert.equal(loadConfig(['--enable-log-requests', '--port', '1'], {}).config.logRequests, true);
  assert.equal(loadConfig(['--enable-prefix-cache', 'false'], {}).config.enablePrefixCache, false, "today's spelling with a value still works");
});

test('--kv-cache-dtype: fp8 (fp8_e4m3) and int8 on cuda; refused on cpu, whose cache is float32', () => {
  assert.equal(loadConfig([], {}).config.kvCacheDtype, 'auto');
  assert.equal(loadConfig(['--device', 'cuda', '--kv-cache-dtype', 'fp8_e4m3'], {}).config.kvCacheDtype, 'fp8');
  assert.equal(loadConfig(['--device', 'cuda'], { TACHYON_KV_CACHE_DTYPE: 'int8' }).config.kvCacheDtype, 'int8');
  for (const dtype of ['fp8', 'int8'])
    assert.throws(() => loadConfig(['--kv-cache-dtype', dtype], {}), /--kv-cache-dtype: a quantized KV cache runs on cuda only/);
  assert.throws(() => loadConfig(['--device', 'cuda', '--kv-cache-dtype', 'fp8_e5m2'], {}), /--kv-cache-dtype/);
});

test('--tensor-parallel-size shards on cpu and is refused on cuda until the CUDA backend has it', () => {
  assert.equal(loadConfig(['--tensor-parallel-size', '2'], {}).config.tensorParallelSize, 2);
  assert.throws(
    () => loadConfig(['--tensor-parallel-size', '2', '--device', 'cuda'], {}),
    /--tensor-parallel-size: tensor parallelism is not available on cuda yet/,
  );
  assert.throws(() => loadConfig(['--tensor-parallel-size', '0'], {}), /--tensor-parallel-size/);
});

test('each default that depends on the device comes from one table: cuda sizes the KV pool from the memory fraction', () => {
  const cpu = resolveConfig(loadConfig([], {}).config);
  assert.equal(cpu.kvCacheBytes, DEVICE_DEFAULTS.cpu.kvCacheBytes);
  assert.equal(cpu.maxNumSeqs, DEVICE_DEFAULTS.cpu.maxNumSeqs);
  const cuda = resolveConfig(loadConfig(['--device', 'cuda'], {}).config);
  assert.equal(cuda.kvCacheBytes, undefined, 'no byte budget: the pool takes what --gpu-memory-fraction leaves');
  assert.deepEqual([cuda.maxNumSeqs, cuda.maxNumBatchedTokens, cuda.maxPrefillTokensWithDecodes], [DEVICE_DEFAULTS.cuda.maxNumSeqs, DEVICE_DEFAULTS.cuda.maxNumBatchedTokens, DEVICE_DEFAULTS.cuda.maxPrefillTokensWithDecodes]);
  const explicit = resolveConfig(loadConfig(['--device', 'cuda', '--kv-cache-bytes', '1000000', '--max-num-seqs', '8'], {}).config);
  assert.deepEqual([explicit.kvCacheBytes, explicit.maxNumSeqs], [1000000, 8]);
  assert.ok(cpu.tokenizerWorkers >= 1 && cpu.tokenizerWorkers <= 8);
});

test('--help shows the vLLM spellings beside each setting', () => {
  const text = helpText();
  for (const flag of ['--api-key', '--gpu-memory-utilization', '--enable-prefix-caching', '--no-enable-prefix-caching', '--tensor-parallel-size', '--long-prefill-token-threshold'])
    assert.ok(text.includes(flag), flag);
});

test('a value-taking flag never swallows the next flag, and an empty API key is refused rather than leaving the server open', () => {
  assert.throws(() => loadConfig(['--api-key', '--port', '1'], {}), /--api-key needs a value/);
  assert.throws(() => loadConfig(['--api-key', ''], {}), /--api-key needs a non-empty key/);
  assert.throws(() => loadConfig(['--api-key='], {}), /--api-key needs a non-empty key/);
  assert.equal(loadConfig(['--long-prefill-token-threshold', '0'], {}).config.maxPrefillChunk, undefined, "vLLM's 0 means no threshold");
});

test('every boolean setting may stand alone or be negated: the CUDA knobs too', () => {
  const { config } = loadConfig(['--profile', '--no-cuda-graphs', '--no-batch-invariant', '--no-pdl', '--fused-gemv', 'false', '--no-fast-attention', '--no-fp8-prefill-scores', '--no-residual-in-gemm', '--no-fp8-prefill-values'], {});
  assert.deepEqual([config.profile, config.cudaGraphs, config.batchInvariant, config.pdl, config.fusedGemv, config.fastAttention, config.fp8PrefillScores, config.residualInGemm, config.fp8PrefillValues], [true, false, false, false, false, false, false, false, false]);
  assert.equal(loadConfig([], {}).config.fastAttention, true);
  assert.equal(loadConfig([], {}).config.fp8PrefillScores, true);
  assert.equal(loadConfig([], { TACHYON_FP8_PREFILL_SCORES: 'false' }).config.fp8PrefillScores, false);
  assert.equal(loadConfig([], {}).config.residualInGemm, true);
  assert.equal(loadConfig([], {}).config.fp8PrefillValues, true);
  assert.equal(loadConfig([], { TACHYON_FP8_PREFILL_VALUES: '0' }).config.fp8PrefillValues, false);
  assert.equal(loadConfig([], { TACHYON_RESIDUAL_IN_GEMM: 'false' }).config.residualInGemm, false);
  assert.equal(loadConfig([], {}).config.batchInvariant, true, 'batch invariance is on by default');
  assert.equal(loadConfig([], { TACHYON_BATCH_INVARIANT: '0' }).config.batchInvariant, false);
});
