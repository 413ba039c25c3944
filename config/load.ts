import { readFileSync } from 'node:fs';

import { z } from 'zod';

import { ConfigSchema, type Config } from './schema.js';

/** --kv-cache-bytes <-> kvCacheBytes <-> TACHYON_KV_CACHE_BYTES */
const toFlag = (key: string) => key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
const toEnv = (key: string) => 'TACHYON_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
const fromFlag = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export class ConfigError extends Error {}

const KEYS = Object.keys(ConfigSchema.shape) as (keyof Config)[];

/** vLLM's spellings, which users already type, for the same settings. */
export const VLLM_ALIASES: Record<string, keyof Config> = {
  'api-key': 'apiKeys',
  'gpu-memory-utilization': 'gpuMemoryFraction',
  'enable-prefix-caching': 'enablePrefixCache',
  'long-prefill-token-threshold': 'maxPrefillChunk',
  'enable-log-requests': 'logRequests',
};

/** Settings that may be given bare (--enable-prefix-caching) and negated (--no-enable-prefix-caching). */
const BOOLEAN_KEYS = new Set(Object.entries(ConfigSchema.parse({})).flatMap(([k, v]) => (typeof v === 'boolean' ? [k as keyof Config] : [])));
/** Settings that repeat (--api-key a --api-key b) instead of the last one winning. */
const LIST_KEYS = new Set<keyof Config>(['apiKeys', 'corsOrigins']);

function keyOf(name: string): keyof Config | undefined {
  if (name in VLLM_ALIASES) return VLLM_ALIASES[name];
  const key = fromFlag(name) as keyof Config;
  return KEYS.includes(key) ? key : undefined;
}

function parseFlags(argv: string[]): { values: Record<string, string>; configFile?: string; help: boolean } {
  const values: Record<string, string> = {};
  let configFile: string | undefined;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)} (options start with --; see --help)`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const negated = name.startsWith('no-') ? keyOf(name.slice(3)) : undefined;
    if (negated && BOOLEAN_KEYS.has(negated) && eq < 0) {
      values[negated] = 'false';
      continue;
    }
    const key = name === 'config' ? undefined : keyOf(name);
    if (name !== 'config' && key === undefined) throw new ConfigError(`unknown option --${name} (see --help)`);
    const bare = eq < 0 && key !== undefined && BOOLEAN_KEYS.has(key) && (argv[i + 1] === undefined || argv[i + 1].startsWith('--'));
    const value = eq > 0 ? arg.slice(eq + 1) : bare ? 'true' : argv[++i];
    // `--api-key --port 1` must not make "--port" the key.
    if (value === undefined || (eq < 0 && !bare && value.startsWith('--'))) throw new ConfigError(`--${name} needs a value`);
    // An empty key (`--api-key "$UNSET"`) would otherwise leave the server open without a word.
    if (key === 'apiKeys' && value.trim() === '') throw new ConfigError(`--${name} needs a non-empty key`);
    // vLLM's --long-prefill-token-threshold 0 means no threshold.
    if (name === 'long-prefill-token-threshold' && value === '0') continue;
    if (key === undefined) configFile = value;
    else if (LIST_KEYS.has(key) && values[key] !== undefined) values[key] += ',' + value;
    // --model a --model b: serve both (b and later ones go to --models).
    else if (key === 'model' && values.model !== undefined) values.models = values.models === undefined ? value : `${values.models},${value}`;
    else values[key] = value;
  }
  return { values, configFile, help };
}

function readFile(path: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`config file ${path} is not a JSON object`);
  return raw as Record<string, unknown>;
}

/**
 * Defaults, then the JSON config file (--config or TACHYON_CONFIG), then
 * TACHYON_* environment variables, then flags: later wins.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): { config: Config; help: boolean } {
  const flags = parseFlags(argv);
  const file = flags.configFile ?? env.TACHYON_CONFIG;
  const merged: Record<string, unknown> = file ? readFile(file) : {};
  for (const key of KEYS) if (env[toEnv(key)] !== undefined) merged[key] = env[toEnv(key)];
  Object.assign(merged, flags.values);
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue.path[0] ?? (issue as { keys?: string[] }).keys?.[0] ?? '');
    throw new ConfigError(`invalid setting ${key ? `--${toFlag(key)}` : ''}: ${issue.message}`.trim());
  }
  return { config: parsed.data, help: flags.help };
}

/** The --help text: every option with its environment variable, default and meaning. */
export function helpText(): string {
  const defaults = ConfigSchema.parse({});
  const rows = KEYS.map((key) => {
    const field = ConfigSchema.shape[key] as z.ZodType;
    const d = (defaults as Record<string, unknown>)[key];
    const shown = d === undefined ? '-' : Array.isArray(d) ? (d.length ? d.join(',') : '(none)') : String(d);
    const names = Object.entries(VLLM_ALIASES).filter(([, k]) => k === key).map(([a]) => a);
    const negations = BOOLEAN_KEYS.has(key) ? [toFlag(key), ...names].map((n) => `no-${n}`) : [];
    const aliases = [...names, ...negations].map((n) => `--${n}`);
    const also = aliases.length ? `\n      also: ${aliases.join(', ')}` : '';
    return `  --${toFlag(key).padEnd(32)} ${toEnv(key).padEnd(40)} default: ${shown}\n      ${field.description ?? ''}${also}`;
  });
  return [
    'tachyon: an OpenAI-compatible LLM server',
    '',
    'usage: npm start -- [options]     (or: node dist/app/main.js [options])',
    '',
    'Settings come from defaults, then a JSON file (--config FILE or TACHYON_CONFIG),',
    'then TACHYON_* environment variables, then these flags; later wins.',
    '',
    ...rows,
    `  ${'--config FILE'.padEnd(34)} ${'TACHYON_CONFIG'.padEnd(40)} a JSON file of settings (keys as camelCase names)`,
    `  ${'--help'.padEnd(34)} this text`,
  ].join('\n');
}

export { toEnv, toFlag };
