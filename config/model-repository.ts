/**
 * A Triton-style model repository (--model-repository DIR): every folder of DIR
 * is a model named after the folder. Its Hugging Face checkpoint (config.json,
 * safetensors, tokenizer) sits in the folder itself or in its highest numeric
 * version folder (Triton's layout). An optional config.pbtxt gives the fields
 * that apply to Tachyon; the others are listed as ignored for the log.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { parsePbtxt, type PbMessage, type PbValue } from './pbtxt.js';

export interface RepositoryModel {
  name: string;
  /** The checkpoint directory. */
  dir: string;
  /** The version folder the checkpoint came from, or null (the model's own folder). */
  version: string | null;
  /** Settings from config.pbtxt, by setting name (max_batch_size -> maxNumSeqs, parameters -> their settings), unparsed. */
  settings: Record<string, string | number>;
  /** config.pbtxt fields and parameters that do not apply, for the log. */
  ignored: string[];
}

// config.pbtxt parameters Tachyon reads, by key (vLLM's spelling where it has one) -> setting.
const PARAMETERS: Record<string, string> = {
  dtype: 'dtype',
  quantization: 'quantization',
  max_model_len: 'maxModelLen',
  max_num_seqs: 'maxNumSeqs',
  max_num_batched_tokens: 'maxNumBatchedTokens',
  gpu_memory_fraction: 'gpuMemoryFraction',
  gpu_memory_utilization: 'gpuMemoryFraction',
  kv_cache_bytes: 'kvCacheBytes',
  kv_cache_dtype: 'kvCacheDtype',
  tensor_parallel_size: 'tensorParallelSize',
  tool_call_parser: 'toolCallParser',
};
// Top-level fields that describe Triton's own scheduling and I/O: ignored, as the issue allows.
const APPLIED = new Set(['name', 'max_batch_size', 'parameters']);

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** Reads the repository; throws an Error naming the folder or file of the first problem. */
export function readModelRepository(root: string): RepositoryModel[] {
  if (!isDir(root)) throw new Error(`--model-repository ${root} is not a directory`);
  const models: RepositoryModel[] = [];
  for (const name of readdirSync(root).sort()) {
    const folder = join(root, name);
    if (name.startsWith('.') || !isDir(folder)) continue;
    models.push(readModel(name, folder));
  }
  if (models.length === 0) throw new Error(`--model-repository ${root} holds no model folders`);
  return models;
}

function readModel(name: string, folder: string): RepositoryModel {
  let dir = folder;
  let version: string | null = null;
  if (!existsSync(join(folder, 'config.json'))) {
    const versions = readdirSync(folder).filter((v) => /^\d+$/.test(v) && existsSync(join(folder, v, 'config.json')));
    if (versions.length === 0) throw new Error(`model ${name}: no config.json in ${folder} or in a numeric version folder of it`);
    version = versions.sort((a, b) => Number(b) - Number(a))[0];
    dir = join(folder, version);
  }
  const model: RepositoryModel = { name, dir, version, settings: {}, ignored: [] };
  const pbtxt = join(folder, 'config.pbtxt');
  if (existsSync(pbtxt)) applyPbtxt(model, parsePbtxt(readFileSync(pbtxt, 'utf8'), pbtxt), pbtxt);
  return model;
}

function applyPbtxt(model: RepositoryModel, config: PbMessage, where: string): void {
  if (config.name !== undefined && config.name !== model.name)
    throw new Error(`${where}: name '${String(config.name)}' does not match its folder '${model.name}' (Triton requires them to agree)`);
  const batch = config.max_batch_size;
  if (batch !== undefined) {
    if (typeof batch !== 'number' || !Number.isInteger(batch) || batch < 0) throw new Error(`${where}: max_batch_size must be a non-negative integer`);
    if (batch > 0) model.settings.maxNumSeqs = batch;  // 0: Triton's "no batching dimension", no limit from here
  }
  for (const field of Object.keys(config)) if (!APPLIED.has(field)) model.ignored.push(field);
  const params = config.parameters === undefined ? [] : Array.isArray(config.parameters) ? config.parameters : [config.parameters];
  for (const p of params) {
    const entry = p as PbMessage;
    const key = entry.key, value = (entry.value as PbMessage | undefined)?.string_value;
    if (typeof key !== 'string' || value === undefined) throw new Error(`${where}: each parameters entry needs key and value { string_value }`);
    const setting = PARAMETERS[key];
    if (setting === undefined) model.ignored.push(`parameters.${key}`);
    else model.settings[setting] = scalarOf(value);
  }
}

const scalarOf = (v: PbValue): string | number => (typeof v === 'number' ? v : String(v));
