// One schema, filled from defaults, a JSON file, TACHYON_* variables and flags (flags win).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { ConfigError, helpText, loadConfig } from '../../config/load.js';
import { ConfigSchema, DEFAULT_MODEL_DIR } from '../../config/schema.js';

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
