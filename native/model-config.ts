import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The model shape the runtime needs, read from a HF config.json. */
export interface ModelConfig {
  architecture: Architecture;
  /** Weight names and layout (native/cpu/weights.cc): llama (Llama, Mistral, Qwen2), gpt2, gptj. */
  family: 'llama' | 'gpt2' | 'gptj';
  /** RMSNorm (weight) or LayerNorm (weight and bias). */
  norm: 'rms' | 'layer';
  /** Rotary on whole heads in halves (Llama), rotary on the first rotaryDim dimensions in pairs (GPT-J), or learned absolute positions (GPT-2). */
  position: 'rope' | 'rope-interleaved' | 'learned';
  /** silu(gate) * up -> down, or fc -> GELU (tanh or erf) -> proj. */
  mlp: 'swiglu' | 'gelu-tanh' | 'gelu';
  /** Attention and MLP both read one norm of the residual and add into it together (GPT-J). */
  parallelBlock: boolean;
  /** Dimensions of each head the rotary embedding turns (headDim unless the family says otherwise). */
  rotaryDim: number;
  lmHeadBias: boolean;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  /** The norm's epsilon (RMSNorm or LayerNorm). */
  normEps: number;
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
  /**
   * The checkpoint's quantization_config asks for INT8 activations quantized per token at run time
   * (a compressed-tensors W8A8 export: input_activations {type: int, num_bits: 8, dynamic: true}),
   * which the CUDA backend serves as --quantization w8a8 unless told otherwise, as vLLM does.
   */
  int8Activations: boolean;
}

/**
 * What differs between the families the runtime serves, by architecture: the
 * config.json keys of the shape, and the pieces of the block. Everything not
 * here (paged attention, sampling, the engine) is shared.
 */
const FAMILIES = {
  LlamaForCausalLM: llamaLike(),
  MistralForCausalLM: llamaLike(),
  Qwen2ForCausalLM: llamaLike(),
  GPT2LMHeadModel: {
    family: 'gpt2', norm: 'layer', position: 'learned', parallelBlock: false, lmHeadBias: false, tiedByDefault: true,
    keys: { hidden: 'n_embd', intermediate: 'n_inner', layers: 'n_layer', heads: 'n_head', kvHeads: null, positions: 'n_positions', eps: 'layer_norm_epsilon', act: 'activation_function' },
  },
  GPTJForCausalLM: {
    family: 'gptj', norm: 'layer', position: 'rope-interleaved', parallelBlock: true, lmHeadBias: true, tiedByDefault: false,
    keys: { hidden: 'n_embd', intermediate: 'n_inner', layers: 'n_layer', heads: 'n_head', kvHeads: null, positions: 'n_positions', eps: 'layer_norm_epsilon', act: 'activation_function' },
  },
} as const;

function llamaLike() {
  return {
    family: 'llama', norm: 'rms', position: 'rope', parallelBlock: false, lmHeadBias: false, tiedByDefault: false,
    keys: { hidden: 'hidden_size', intermediate: 'intermediate_size', layers: 'num_hidden_layers', heads: 'num_attention_heads', kvHeads: 'num_key_value_heads', positions: 'max_position_embeddings', eps: 'rms_norm_eps', act: 'hidden_act' },
  } as const;
}

export type Architecture = keyof typeof FAMILIES;
const ARCHITECTURES = Object.keys(FAMILIES) as Architecture[];

// Activations by config value: Llama's SwiGLU reads silu; GPT-2 and GPT-J name their GELU.
const ACTIVATIONS: Record<string, ModelConfig['mlp']> = { silu: 'swiglu', gelu_new: 'gelu-tanh', gelu_pytorch_tanh: 'gelu-tanh', gelu: 'gelu' };

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
  if (!ARCHITECTURES.includes(arch as Architecture))
    r.fail('architectures', `${JSON.stringify(c.architectures)} is not supported (supported: ${ARCHITECTURES.join(', ')})`);
  const f = FAMILIES[arch as Architecture];
  const k = f.keys;
  const act = (c[k.act] ?? (f.family === 'llama' ? 'silu' : 'gelu_new')) as string;
  const mlp = ACTIVATIONS[act];
  if (mlp === undefined || (f.family === 'llama') !== (mlp === 'swiglu'))
    r.fail(k.act, `'${act}' is not supported (${f.family === 'llama' ? 'only silu' : 'gelu_new, gelu_pytorch_tanh or gelu'})`);
  if (arch === 'Qwen2ForCausalLM' && c.use_sliding_window === true) r.fail('use_sliding_window', 'true is not supported');
  if (arch === 'MistralForCausalLM' && c.sliding_window != null) r.fail('sliding_window', 'is not supported; it must be null');
  if (f.family === 'gpt2') {
    if (c.scale_attn_by_inverse_layer_idx === true) r.fail('scale_attn_by_inverse_layer_idx', 'true is not supported');
    if (c.scale_attn_weights === false) r.fail('scale_attn_weights', 'false is not supported');
    if (c.add_cross_attention === true) r.fail('add_cross_attention', 'true is not supported');
  }

  const quant = c.quantization_config as Json | undefined;
  if (quant != null) {
    const method = quant.quant_method;
    // FP8 exports: E4M3 weights with weight_scale (per channel or per tensor); other schemes are not read.
    if (!['fp8', 'compressed-tensors', 'fbgemm_fp8'].includes(method as string))
      r.fail('quantization_config.quant_method', `${JSON.stringify(method)} is not supported (supported: FP8 and INT8 checkpoints with weight_scale)`);
    // Asymmetric schemes carry zero points the runtime does not apply.
    if (JSON.stringify(quant).includes('"symmetric":false'))
      r.fail('quantization_config', 'has symmetric: false; only symmetric FP8 / INT8 weights (a scale, no zero point) are supported');
  }
  const hiddenSize = r.int(k.hidden, 1, 65536);
  const numHeads = r.int(k.heads, 1, 1024);
  const numKvHeads = k.kvHeads === null ? numHeads : r.int(k.kvHeads, 1, 1024, numHeads);
  if (numHeads % numKvHeads !== 0) r.fail('num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  const headDim = f.family === 'llama' ? r.int('head_dim', 2, 1024, Math.floor(hiddenSize / numHeads)) : Math.floor(hiddenSize / numHeads);
  if (f.family !== 'llama' && headDim * numHeads !== hiddenSize) r.fail(k.heads, `(${numHeads}) must divide ${k.hidden} (${hiddenSize})`);
  if (f.position !== 'learned' && headDim % 2 !== 0) r.fail('head_dim', `(${headDim}) must be even for rotary embeddings`);
  let rotaryDim = headDim;
  if (f.position === 'rope-interleaved') {
    rotaryDim = c.rotary_dim == null ? headDim : r.int('rotary_dim', 2, headDim);
    if (rotaryDim % 2 !== 0) r.fail('rotary_dim', `(${rotaryDim}) must be even`);
  }
  const maxPositions = r.int(k.positions, 1, 1 << 24);
  const attentionBias = r.bool('attention_bias', false);
  const gptBiases = f.family === 'gpt2';
  return {
    architecture: arch as Architecture,
    family: f.family,
    norm: f.norm,
    position: f.position,
    mlp,
    parallelBlock: f.parallelBlock,
    rotaryDim,
    lmHeadBias: f.lmHeadBias,
    vocabSize: r.int('vocab_size', 1, 1 << 24),
    hiddenSize,
    // GPT-2 and GPT-J leave n_inner null for 4 x the width.
    intermediateSize: f.family === 'llama' ? r.int(k.intermediate, 1, 1 << 18) : c[k.intermediate] == null ? 4 * hiddenSize : r.int(k.intermediate, 1, 1 << 18),
    numLayers: r.int(k.layers, 1, 1024),
    numHeads,
    numKvHeads,
    headDim,
    maxPositions,
    normEps: r.num(k.eps, 0, 1, f.family === 'llama' ? 1e-6 : 1e-5),
    ...(f.family === 'gptj' ? gptjRope(maxPositions) : readRope(r, c, maxPositions)),
    tieWordEmbeddings: r.bool('tie_word_embeddings', f.tiedByDefault),
    // GPT-2 has biases on every projection, GPT-J on its MLP only (and the LM head).
    qkvBias: arch === 'Qwen2ForCausalLM' || attentionBias || gptBiases,
    oBias: (f.family === 'llama' && arch !== 'Qwen2ForCausalLM' && attentionBias) || gptBiases,
    mlpBias: f.family === 'llama' ? r.bool('mlp_bias', false) : true,
    bosTokenId: r.tokenIds('bos_token_id')[0] ?? null,
    eosTokenIds: r.tokenIds('eos_token_id'),
    int8Activations: int8ActivationsIn(quant),
  };
}

// Whether a quantization_config holds, at any depth (compressed-tensors keeps schemes under
// config_groups), input_activations of dynamic 8-bit integers.
function int8ActivationsIn(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  const acts = (v as Json).input_activations as Json | undefined;
  if (acts && acts.type === 'int' && acts.num_bits === 8 && acts.dynamic === true) return true;
  return Object.values(v as Json).some(int8ActivationsIn);
}

// GPT-J's rotary: base 10,000 over rotaryDim dimensions, no scaling.
function gptjRope(maxPositions: number) {
  return { ropeTheta: 10000, ropeScaling: 'none' as const, ropeFactor: 1, ropeLowFreqFactor: 1, ropeHighFreqFactor: 4, ropeOriginalMaxPositions: maxPositions };
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
