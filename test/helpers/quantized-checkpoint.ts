import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { readSafetensorsHeader, readTensorBytes } from '../../native/safetensors.js';
import { writeSafetensors, type RawTensor } from './safetensors-writer.js';

/** float -> E4M3 (round to nearest even, saturating at ±448). */
export function toE4M3(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  let a = Math.abs(x);
  if (Number.isNaN(x)) return 0x7f;
  if (a >= 448) return sign | 0x7e;
  const roundEven = (v: number) => {
    const f = Math.floor(v);
    const d = v - f;
    return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  };
  if (a < 2 ** -6) return sign | roundEven(a / 2 ** -9); // subnormal (8 rounds up to the smallest normal, 0x08)
  let e = Math.floor(Math.log2(a));
  let m = roundEven((a / 2 ** e - 1) * 8);
  if (m === 8) {
    e += 1;
    m = 0;
  }
  if (e + 7 > 15 || (e + 7 === 15 && m === 7)) return sign | 0x7e;
  return sign | ((e + 7) << 3) | m;
}

const PROJECTIONS = /\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$/;

/** How a quantized export stores a weight: its dtype, largest code, the encoder, and its config entry. */
const FORMATS = {
  fp8: {
    dtype: 'F8_E4M3', max: 448, encode: toE4M3,
    config: { quant_method: 'compressed-tensors', format: 'float-quantized', weights: { type: 'float', num_bits: 8, strategy: 'channel' } },
  },
  int8: {
    // Two's complement bytes, rounded to nearest (halves up), clamped to ±127.
    dtype: 'I8', max: 127, encode: (v: number) => Math.max(-127, Math.min(127, Math.round(v))) & 0xff,
    config: { quant_method: 'compressed-tensors', format: 'int-quantized', weights: { type: 'int', num_bits: 8, strategy: 'channel', symmetric: true } },
  },
} as const;

/** A copy of an F32 checkpoint with every projection weight in E4M3 (see writeQuantizedCheckpoint). */
export const writeFp8Checkpoint = (source: string, dir: string) => writeQuantizedCheckpoint(source, dir, 'fp8');

/**
 * A copy of an F32 checkpoint with every projection weight in E4M3 or INT8 and a
 * per-output-channel weight_scale [N, 1] (plus an input_scale, as exports
 * carry), the layout of compressed-tensors checkpoints.
 */
export function writeQuantizedCheckpoint(source: string, dir: string, kind: keyof typeof FORMATS): void {
  const f = FORMATS[kind];
  cpSync(source, dir, { recursive: true });
  const file = join(dir, 'model.safetensors');
  const h = readSafetensorsHeader(file);
  const tensors: Record<string, RawTensor> = {};
  for (const t of h.tensors.values()) {
    const bytes = readTensorBytes(h, t.name);
    if (!PROJECTIONS.test(t.name) || t.dtype !== 'F32') {
      tensors[t.name] = { dtype: t.dtype, shape: t.shape, data: bytes };
      continue;
    }
    const [N, K] = t.shape;
    const w = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    const q = new Uint8Array(N * K);
    const scale = new Float32Array(N);
    for (let n = 0; n < N; n++) {
      let max = 0;
      for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[n * K + k]));
      scale[n] = max > 0 ? max / f.max : 1;
      for (let k = 0; k < K; k++) q[n * K + k] = f.encode(w[n * K + k] / scale[n]);
    }
    tensors[t.name] = { dtype: f.dtype, shape: [N, K], data: q };
    tensors[`${t.name}_scale`] = { dtype: 'F32', shape: [N, 1], data: new Uint8Array(scale.buffer) };
    tensors[t.name.replace(/weight$/, 'input_scale')] = { dtype: 'F32', shape: [], data: new Uint8Array(Float32Array.of(1).buffer) };
  }
  writeSafetensors(file, tensors);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.quantization_config = f.config;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
}
