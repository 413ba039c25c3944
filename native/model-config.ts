import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The Llama-family model shape the runtime needs, read from a HF config.json. */
export interface ModelConfig {
  architecture: 'LlamaForCausalLM' | 'Qwen2ForCausalLM' | 'MistralForCausalLM';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: 'none' | 'linear' | 'llama3';
  ropeFactor: number;
  ropeLowFreqFactor: number;
  ropeHighFreqFactor: number;
  ropeOriginalMaxPositions: number;
  tieWordEmbeddings: boolean;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

const ARCHITECTURES = ['LlamaForCausalLM', 'Qwen2ForCausalLM', 'MistralForCausalLM'] as const;

type Json = Record<string, unknown>;

class ConfigReader {
  constructor(private readonly raw: Json, private readonly where: string) {}

  fail(field: string, problem: string): never {
    throw new Error(`${this.where}: ${field} ${problem}`);
  }

  int(field: string, min: number, max: number, fallback?: number): number {
    const v = this.raw[field] ?? fallback;
    if (v === undefined) this.fail(field, 'is missing');
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      this.fail(field, `must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
    return v;
  }

  num(field: string, min: number, max: number, fallback?: number, from: Json = this.raw): number {
    const v = from[field.split('.').pop()!] ?? fallback;
    if (v === undefined) this.fail(field, 'is missing');
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= min || v > max)
      this.fail(field, `must be a number in (${min}, ${max}], got ${JSON.stringify(v)}`);
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.raw[field] ?? fallback;
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  tokenIds(field: string): number[] {
    const v = this.raw[field];
    if (v === undefined || v === null) return [];
    const ids = Array.isArray(v) ? v : [v];
    if (!ids.every((id) => Number.isInteger(id) && id >= 0)) this.fail(field, 'must be a token id or a list of them');
    return ids as number[];
  }
}

function readRope(r: ConfigReader, raw: Json, maxPositions: number) {
  // transformers 5 writes rope_parameters; earlier configs rope_theta + rope_scaling.
  const params = (raw.rope_parameters ?? raw.rope_scaling ?? null) as Json | null;
  if (params !== null && (typeof params !== 'object' || Array.isArray(params)))
    r.fail('rope_scaling', 'must be an object or null');
  const theta = r.num('rope_theta', 0, 1e12, (params?.rope_theta as number | undefined) ?? 10000);
  const type = (params?.rope_type ?? params?.type ?? 'default') as string;
  const base = { ropeTheta: theta, ropeFactor: 1, ropeLowFreqFactor: 1, ropeHighFreqFactor: 4, ropeOriginalMaxPositions: maxPositions };
  if (type === 'default') return { ...base, ropeScaling: 'none' as const };
  const factor = r.num('rope_scaling.factor', 0, 1e6, undefined, params!);
  if (type === 'linear') return { ...base, ropeScaling: 'linear' as const, ropeFactor: factor };
  if (type === 'llama3') {
    const low = r.num('rope_scaling.low_freq_factor', 0, 1e6, undefined, params!);
    const high = r.num('rope_scaling.high_freq_factor', 0, 1e6, undefined, params!);
    if (high <= low) r.fail('rope_scaling.high_freq_factor', `must be greater than low_freq_factor (${low})`);
    const orig = params!.original_max_position_embeddings;
    if (typeof orig !== 'number' || !Number.isInteger(orig) || orig < 1)
      r.fail('rope_scaling.original_max_position_embeddings', 'must be a positive integer');
    return { ...base, ropeScaling: 'llama3' as const, ropeFactor: factor, ropeLowFreqFactor: low, ropeHighFreqFactor: high, ropeOriginalMaxPositions: orig };
  }
  return r.fail('rope_scaling.rope_type', `'${type}' is not supported (supported: default, linear, llama3)`);
}

/** Parses and checks a HF config.json object; throws an Error naming the first bad field. */
export function parseModelConfig(raw: unknown, where = 'config.json'): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where} is not a JSON object`);
  const c = raw as Json;
  const r = new ConfigReader(c, where);
  const arch = Array.isArray(c.architectures) ? c.architectures[0] : undefined;
  if (!ARCHITECTURES.includes(arch as (typeof ARCHITECTURES)[number]))
    r.fail('architectures', `${JSON.stringify(c.architectures)} is not supported (supported: ${ARCHITECTURES.join(', ')})`);
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') r.fail('hidden_act', `'${act}' is not supported (only silu)`);
  if (arch === 'Qwen2ForCausalLM' && c.use_sliding_window === true) r.fail('use_sliding_window', 'true is not supported');
  if (arch === 'MistralForCausalLM' && c.sliding_window != null) r.fail('sliding_window', 'is not supported; it must be null');

  const quant = c.quantization_config as Json | undefined;
  if (quant != null) {
    const method = quant.quant_method;
    // FP8 exports: E4M3 weights with weight_scale (per channel or per tensor); other schemes are not read.
    if (!['fp8', 'compressed-tensors', 'fbgemm_fp8'].includes(method as string))
      r.fail('quantization_config.quant_method', `${JSON.stringify(method)} is not supported (supported: FP8 checkpoints with weight_scale)`);
  }
  const hiddenSize = r.int('hidden_size', 1, 65536);
  const numHeads = r.int('num_attention_heads', 1, 1024);
  const numKvHeads = r.int('num_key_value_heads', 1, 1024, numHeads);
  if (numHeads % numKvHeads !== 0) r.fail('num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  const headDim = r.int('head_dim', 2, 1024, Math.floor(hiddenSize / numHeads));
  if (headDim % 2 !== 0) r.fail('head_dim', `(${headDim}) must be even for rotary embeddings`);
  const maxPositions = r.int('max_position_embeddings', 1, 1 << 24);
  const attentionBias = r.bool('attention_bias', false);
  return {
    architecture: arch as ModelConfig['architecture'],
    vocabSize: r.int('vocab_size', 1, 1 << 24),
    hiddenSize,
    intermediateSize: r.int('intermediate_size', 1, 1 << 18),
    numLayers: r.int('num_hidden_layers', 1, 1024),
    numHeads,
    numKvHeads,
    headDim,
    maxPositions,
    rmsNormEps: r.num('rms_norm_eps', 0, 1, 1e-6),
    ...readRope(r, c, maxPositions),
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    qkvBias: arch === 'Qwen2ForCausalLM' || attentionBias,
    oBias: arch !== 'Qwen2ForCausalLM' && attentionBias,
    mlpBias: r.bool('mlp_bias', false),
    bosTokenId: r.tokenIds('bos_token_id')[0] ?? null,
    eosTokenIds: r.tokenIds('eos_token_id'),
  };
}

export function readModelConfig(modelDir: string): ModelConfig {
  const path = join(modelDir, 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
  return parseModelConfig(raw, path);
}
