#include <algorithm>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/fp8.h"
#include "cuda/kernels.h"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"
#include "cuda/rope.cuh"
#include "cuda/row_pieces.h"
#include "cuda/widen.cuh"


namespace tachyon {

namespace {

__global__ void feed_tokens_kernel(int32_t* tokens, const int32_t* feed, const int32_t* sampled, int T, int vocab) {
  pdl_wait();
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= T || feed[t] < 0) return;
  const int id = sampled[feed[t]];
  tokens[t] = id >= 0 && id < vocab ? id : 0;
}

// 16-byte pieces of a row (row_pieces.h): 8 bf16, or 8 floats as two float4.
__device__ __forceinline__ void load8(const float* p, float* v) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void store8(float* p, const float* v) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ uint4 pack_bf16(const float* v) {
  uint4 r;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
  return r;
}
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float* v) { widen<false>(*reinterpret_cast<const uint4*>(p), v); }
__device__ __forceinline__ void store8(__nv_bfloat16* p, const float* v) { *reinterpret_cast<uint4*>(p) = pack_bf16(v); }

// x[t] = embed[token] (+ pos_embed[position], learned positions: GPT-2); X: float, or bf16 for
// a bf16 residual stream (the sum rounded once, as transformers adds the two in bf16).
template <typename X>
__global__ void embed_kernel(const __nv_bfloat16* embed, const int32_t* tokens, X* x, int H, const __nv_bfloat16* pos_embed,
                             const int32_t* positions) {
  pdl_wait();
  const int t = blockIdx.x;
  const __nv_bfloat16* row = embed + static_cast<size_t>(tokens[t]) * H;
  const __nv_bfloat16* prow = pos_embed ? pos_embed + static_cast<size_t>(positions[t]) * H : nullptr;
  X* out = x + static_cast<size_t>(t) * H;
  if (H % 8 == 0) {  // 16-byte pieces: 8 bf16 in, 8 values out
    for (int i = threadIdx.x; i < H / 8; i += blockDim.x) {
      float v[8];
      widen<false>(reinterpret_cast<const uint4*>(row)[i], v);
      if (prow) {
        float pv[8];
        widen<false>(reinterpret_cast<const uint4*>(prow)[i], pv);
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] += pv[j];
      }
      store8(out + 8 * i, v);
    }
    return;
  }
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    const float v = __bfloat162float(row[i]) + (prow ? __bfloat162float(prow[i]) : 0.0f);
    if constexpr (std::is_same_v<X, float>) out[i] = v;
    else out[i] = __float2bfloat16(v);
  }
}

// One row per block, kNormVecs float4 per thread at most: the weights are read before waiting on the
// kernel that wrote x, and the row stays in registers between the sum of squares and the output.
constexpr int kNormVecs = 4;
__global__ void rmsnorm_kernel(const float* x, const float* w, float eps, __nv_bfloat16* out, int H) {
  __shared__ float scratch[32];
  const int n4 = H / 4;
  float4 wv[kNormVecs], xv[kNormVecs];
#pragma unroll
  for (int k = 0; k < kNormVecs; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < n4) wv[k] = __ldg(reinterpret_cast<const float4*>(w) + i);
  }
  pdl_wait();
  const size_t t = blockIdx.x;
  const float4* xr = reinterpret_cast<const float4*>(x + t * H);
  float ss = 0.0f;
#pragma unroll
  for (int k = 0; k < kNormVecs; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i >= n4) continue;
    xv[k] = xr[i];
    ss += xv[k].x * xv[k].x + xv[k].y * xv[k].y + xv[k].z * xv[k].z + xv[k].w * xv[k].w;
  }
  const float inv = 1.0f / sqrtf(block_sum(ss, scratch) / static_cast<float>(H) + eps);
#pragma unroll
  for (int k = 0; k < kNormVecs; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i >= n4) continue;
    __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(out + t * H) + 2 * i;
    o[0] = __floats2bfloat162_rn(wv[k].x * (xv[k].x * inv), wv[k].y * (xv[k].y * inv));
    o[1] = __floats2bfloat162_rn(wv[k].z * (xv[k].z * inv), wv[k].w * (xv[k].w * inv));
  }
}

// 8 values times inv as E4M3 (saturating), 8 bytes.
__device__ __forceinline__ uint2 pack_e4m3(const float* v, float inv) {
  uint32_t w[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const __nv_fp8x2_storage_t lo = __nv_cvt_float2_to_fp8x2(make_float2(v[4 * i] * inv, v[4 * i + 1] * inv), __NV_SATFINITE, __NV_E4M3);
    const __nv_fp8x2_storage_t hi = __nv_cvt_float2_to_fp8x2(make_float2(v[4 * i + 2] * inv, v[4 * i + 3] * inv), __NV_SATFINITE, __NV_E4M3);
    w[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
  return make_uint2(w[0], w[1]);
}
__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16(v)); }

// One row per block, its pieces in registers from the load to the store: x += delta (+ bias), then
// bf16(rmsnorm(x) * w), or those values as E4M3 with the row's scale (the FP8 GEMM input).
// With norm_bias, LayerNorm instead: (x - mean) / sqrt(var + eps) * w + norm_bias (GPT-2, GPT-J).
// X: float, or bf16 (a bf16 residual stream: the sum rounded to bf16 before it is stored and
// normalized, as transformers adds the residual in a bf16 Llama; with projection biases, or GPT-J's
// two deltas, the sum is formed in float32 and rounded once, where transformers rounds twice).
template <typename X>
__global__ void add_rmsnorm_kernel(X* x, const __nv_bfloat16* delta, const float* bias, const float* w, float eps,
                                   __nv_bfloat16* out, const int32_t* rows, int H, __nv_fp8_e4m3* q_out, float* q_scale,
                                   const float* norm_bias, const __nv_bfloat16* delta2) {
  __shared__ float scratch[32];
  const int pieces = H / kPiece;
  // The norm's weights before waiting on the kernel that wrote x: they are the model's, so their
  // loads overlap that wait rather than following the sum of squares (at batch 1 a dependent load
  // on each norm's critical path, 65 norms a Llama-3-8B step). LayerNorm's bias stays a late load,
  // which keeps the registers at about 90 for the prefill's thousands of rows.
  float wv[kRowPieces][kPiece];
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p < pieces) load8(w + p * kPiece, wv[k]);
  }
  pdl_wait();
  const int b = blockIdx.x;
  const size_t r = rows ? rows[b] : b;
  float v[kRowPieces][kPiece];
  float ss = 0.0f;
  // Every piece's loads before any arithmetic or store: the compiler keeps a load after an earlier
  // piece's store to x (it cannot rule out that they alias), so a thread would wait out a memory
  // round trip a piece.
  uint4 dv[kRowPieces];
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p >= pieces) continue;
    load8(x + r * H + p * kPiece, v[k]);
    if (delta) dv[k] = reinterpret_cast<const uint4*>(delta + r * H)[p];
  }
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p >= pieces) continue;
    X* xp = x + r * H + p * kPiece;
    if (delta) {
      float d[kPiece];
      widen<false>(dv[k], d);
#pragma unroll
      for (int j = 0; j < kPiece; ++j) v[k][j] += d[j] + (bias ? bias[p * kPiece + j] : 0.0f);
      if (delta2) {  // GPT-J's parallel block: the MLP output beside the attention output
        widen<false>(reinterpret_cast<const uint4*>(delta2 + r * H)[p], d);
#pragma unroll
        for (int j = 0; j < kPiece; ++j) v[k][j] += d[j];
      }
      if constexpr (!std::is_same_v<X, float>)
#pragma unroll
        for (int j = 0; j < kPiece; ++j) v[k][j] = round_bf16(v[k][j]);
      store8(xp, v[k]);
    }
#pragma unroll
    for (int j = 0; j < kPiece; ++j) ss += v[k][j] * v[k][j];
  }
  float inv;
  if (norm_bias) {
    // LayerNorm: the mean, then the sum of squares about it (the row is still in registers).
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < kRowPieces; ++k)
      if (threadIdx.x + k * blockDim.x < pieces)
#pragma unroll
        for (int j = 0; j < kPiece; ++j) sum += v[k][j];
    const float mean = block_sum(sum, scratch) / static_cast<float>(H);
    float cs = 0.0f;
#pragma unroll
    for (int k = 0; k < kRowPieces; ++k)
      if (threadIdx.x + k * blockDim.x < pieces)
#pragma unroll
        for (int j = 0; j < kPiece; ++j) {
          v[k][j] -= mean;
          cs += v[k][j] * v[k][j];
        }
    inv = 1.0f / sqrtf(block_sum(cs, scratch) / static_cast<float>(H) + eps);
  } else {
    inv = 1.0f / sqrtf(block_sum(ss, scratch) / static_cast<float>(H) + eps);
  }
  float m = 0.0f;
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p >= pieces) continue;
    float bv[kPiece] = {};
    if (norm_bias) load8(norm_bias + p * kPiece, bv);
#pragma unroll
    for (int j = 0; j < kPiece; ++j) {
      v[k][j] = round_bf16(wv[k][j] * (v[k][j] * inv) + bv[j]);  // the values the bf16 path writes
      m = fmaxf(m, fabsf(v[k][j]));
    }
    if (!q_out) reinterpret_cast<uint4*>(out + static_cast<size_t>(b) * H)[p] = pack_bf16(v[k]);
  }
  if (!q_out) return;
  const float s = fp8_scale(block_max(m, scratch));
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p < pieces) reinterpret_cast<uint2*>(q_out + static_cast<size_t>(b) * H)[p] = pack_e4m3(v[k], 1.0f / s);
  }
  if (threadIdx.x == 0) q_scale[b] = s;
}

// Eight values into a cache row: bf16 (16 bytes), or E4M3 of value * inv_scale (8 bytes).
__device__ __forceinline__ void store_kv8(__nv_bfloat16* dst, const float* v, float) {
  *reinterpret_cast<uint4*>(dst) = pack_bf16(v);
}
__device__ __forceinline__ void store_kv8(__nv_fp8_e4m3* dst, const float* v, float inv_scale) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
    w[i] = __nv_cvt_float2_to_fp8x2(make_float2(v[2 * i] * inv_scale, v[2 * i + 1] * inv_scale), __NV_SATFINITE, __NV_E4M3);
  *reinterpret_cast<uint2*>(dst) = make_uint2(w[0] | (w[1] << 16), w[2] | (w[3] << 16));
}

// The 8 rotation pairs (c0 + j, c0 + half + j) of a q or k head in a qkv row (bf16, + bias), turned
// by the position's cos_sin from pair index i: a (first halves) and b (second halves).
__device__ __forceinline__ void rotated_pairs(const __nv_bfloat16* row, const float* bias, const float2* rot, int c0, int half,
                                              float* a, float* b) {
  const int c1 = c0 + half;
  widen<false>(*reinterpret_cast<const uint4*>(row + c0), a);
  widen<false>(*reinterpret_cast<const uint4*>(row + c1), b);
  if (bias) {
    float ba[kPiece], bb[kPiece];
    load8(bias + c0, ba);
    load8(bias + c1, bb);
#pragma unroll
    for (int j = 0; j < kPiece; ++j) a[j] += ba[j], b[j] += bb[j];
  }
#pragma unroll
  for (int j = 0; j < kPiece; ++j) {
    float ra, rb;
    rope_rotate(a[j], b[j], rot[j], ra, rb);
    a[j] = ra;
    b[j] = rb;
  }
}

// The cache slot of position pos of sequence seq for KV head 0 (a block holds [kv_head][slot] rows).
__device__ __forceinline__ size_t cache_slot_row(const int32_t* block_tables, int table_stride, int seq, int pos, int kv_heads,
                                                 int block_size) {
  const int block = block_tables[static_cast<size_t>(seq) * table_stride + pos / block_size];
  return static_cast<size_t>(block) * kv_heads * block_size + pos % block_size;
}

// One token per block, a thread per 8 consecutive pairs (i, i + D/2) of a q or k head, or per 8 v
// values: qkv[t] (bf16, + bias) rotated, q into q_out[t] (float32, the attention kernels' input, at
// the same columns), k and v into the paged cache.
template <typename C>  // cache element: __nv_bfloat16 or __nv_fp8_e4m3
__global__ void rope_kv_write_kernel(const __nv_bfloat16* qkv, const float* bias, float* q_out, const uint8_t* q_skip,
                                     const int32_t* positions, const int32_t* token_seq, const int32_t* block_tables,
                                     int table_stride, const float2* cos_sin, C* k_cache, C* v_cache, float k_inv_scale,
                                     float v_inv_scale, int heads, int kv_heads, int D, int block_size) {
  const int t = blockIdx.x;
  const int half = D / 2, width = (heads + 2 * kv_heads) * D;
  const __nv_bfloat16* row = qkv + static_cast<size_t>(t) * width;
  // The position and cache slot before waiting on the QKV GEMM: the step's inputs, copied from the
  // host before its first kernel, which no kernel writes (at batch 1 these two dependent loads were
  // on each layer's critical path).
  const int pos = positions[t];
  const size_t slot_row = cache_slot_row(block_tables, table_stride, token_seq[t], pos, kv_heads, block_size);  // + kvh * block_size
  // A prompt row whose q the prefill kernel turns itself (q_skip[t], a step input too): k and v only.
  const int first_unit = q_skip && q_skip[t] ? heads * (half / kPiece) : 0;
  pdl_wait();
  const int rot_units = (heads + kv_heads) * (half / kPiece), v_units = kv_heads * (D / kPiece);
  for (int u = first_unit + threadIdx.x; u < rot_units + v_units; u += blockDim.x) {
    if (u < rot_units) {
      const int head = u / (half / kPiece), i = (u % (half / kPiece)) * kPiece;
      const int c0 = head * D + i, c1 = c0 + half;
      float a[kPiece], b[kPiece];
      rotated_pairs(row, bias, cos_sin + static_cast<size_t>(pos) * half + i, c0, half, a, b);
      if (head < heads) {
        float* q = q_out + static_cast<size_t>(t) * width;
        store8(q + c0, a);
        store8(q + c1, b);
      } else {
        C* dst = k_cache + (slot_row + static_cast<size_t>(head - heads) * block_size) * D;
        store_kv8(dst + i, a, k_inv_scale);
        store_kv8(dst + i + half, b, k_inv_scale);
      }
    } else {
      const int e = (u - rot_units) * kPiece, kvh = e / D, d = e % D;
      const int c = (heads + kv_heads) * D + e;
      const uint4 raw = *reinterpret_cast<const uint4*>(row + c);
      C* dst = v_cache + (slot_row + static_cast<size_t>(kvh) * block_size) * D + d;
      if (!bias && sizeof(C) == 2) {  // bf16 in, bf16 out
        *reinterpret_cast<uint4*>(dst) = raw;
        continue;
      }
      float v[kPiece];
      widen<false>(raw, v);
      if (bias) {
        float bv[kPiece];
        load8(bias + c, bv);
#pragma unroll
        for (int j = 0; j < kPiece; ++j) v[j] += bv[j];
      }
      store_kv8(dst, v, v_inv_scale);
    }
  }
}

// Eight values times inv, rounded to INT8 (within +-127 when inv = 127 / absmax), 8 bytes.
__device__ __forceinline__ uint2 pack_i8(const float* v, float inv) {
  uint32_t w[2] = {0u, 0u};
#pragma unroll
  for (int j = 0; j < kPiece; ++j) {
    const int q = max(-127, min(127, __float2int_rn(v[j] * inv)));
    w[j / 4] |= (static_cast<uint32_t>(q) & 0xffu) << (8 * (j % 4));
  }
  return make_uint2(w[0], w[1]);
}

// rope_kv_write_kernel for an INT8 cache (kv_cache.h), in two warp-uniform passes so that the lanes
// holding one head meet for its absmax: q and k heads (D / 16 lanes a head, each 8 rotation pairs
// (i, i + D/2)), then v heads (D / 8 lanes, 8 values each). The groups are aligned in the warp as
// long as D / 8 divides 32 (D = 16, 32, 64, 128, 256; CudaModel allows 32, 64, 128 and 256).
__global__ void rope_kv_write_int8_kernel(const __nv_bfloat16* qkv, const float* bias, float* q_out, const int32_t* positions,
                                          const int32_t* token_seq, const int32_t* block_tables, int table_stride,
                                          const float2* cos_sin, int8_t* k_cache, int8_t* v_cache, float* k_scales,
                                          float* v_scales, int heads, int kv_heads, int D, int block_size) {
  pdl_wait();
  const int t = blockIdx.x;
  const int half = D / 2, width = (heads + 2 * kv_heads) * D;
  const __nv_bfloat16* row = qkv + static_cast<size_t>(t) * width;
  const int pos = positions[t];
  const size_t slot_row = cache_slot_row(block_tables, table_stride, token_seq[t], pos, kv_heads, block_size);  // + kvh * block_size
  const int per_rot = half / kPiece, per_v = D / kPiece;  // lanes per q/k head, per v head
  const int rot_units = (heads + kv_heads) * per_rot, v_units = kv_heads * per_v;
  for (int base = 0; base < rot_units; base += blockDim.x) {
    const int u = base + threadIdx.x;
    const bool active = u < rot_units;
    const int head = u / per_rot, i = (u % per_rot) * kPiece;
    float a[kPiece], b[kPiece], m = 0.0f;
    if (active) {
      const int c0 = head * D + i, c1 = c0 + half;
      rotated_pairs(row, bias, cos_sin + static_cast<size_t>(pos) * half + i, c0, half, a, b);
#pragma unroll
      for (int j = 0; j < kPiece; ++j) m = fmaxf(m, fmaxf(fabsf(a[j]), fabsf(b[j])));
      if (head < heads) {
        float* q = q_out + static_cast<size_t>(t) * width;
        store8(q + c0, a);
        store8(q + c1, b);
      }
    }
    for (int x = 1; x < per_rot; x <<= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, x));
    if (active && head >= heads) {
      const size_t slot = slot_row + static_cast<size_t>(head - heads) * block_size;
      const float inv = m > 0.0f ? 127.0f / m : 0.0f;
      *reinterpret_cast<uint2*>(k_cache + slot * D + i) = pack_i8(a, inv);
      *reinterpret_cast<uint2*>(k_cache + slot * D + i + half) = pack_i8(b, inv);
      if (i == 0) k_scales[slot] = m / 127.0f;
    }
  }
  for (int base = 0; base < v_units; base += blockDim.x) {
    const int u = base + threadIdx.x;
    const bool active = u < v_units;
    const int kvh = u / per_v, d = (u % per_v) * kPiece;
    float v[kPiece], m = 0.0f;
    if (active) {
      const int c = (heads + kv_heads) * D + kvh * D + d;
      widen<false>(*reinterpret_cast<const uint4*>(row + c), v);
      float bv[kPiece] = {};
      if (bias) load8(bias + c, bv);
#pragma unroll
      for (int j = 0; j < kPiece; ++j) {
        v[j] += bv[j];
        m = fmaxf(m, fabsf(v[j]));
      }
    }
    for (int x = 1; x < per_v; x <<= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, x));
    if (active) {
      const size_t slot = slot_row + static_cast<size_t>(kvh) * block_size;
      *reinterpret_cast<uint2*>(v_cache + slot * D + d) = pack_i8(v, m > 0.0f ? 127.0f / m : 0.0f);
      if (d == 0) v_scales[slot] = m / 127.0f;
    }
  }
}

// The MLP's activation, one row per block: SwiGLU (silu(gate) * up from gate_up[T, 2I]) or GELU
// of fc[T, I] (tanh approximation, GPT-2's gelu_new, or erf), + bias; bf16 out, or E4M3 with the
// row's scale (the down GEMM's input).
template <MlpKind A>
__device__ __forceinline__ float mlp_act(float g, float u) {
  if constexpr (A == MlpKind::kSwiGLU) return g / (1.0f + __expf(-g)) * u;
  // 0.5 g (1 + tanh(u)) as g * sigmoid(2u): no difference of near-equal terms for negative g, and
  // __expf stays accurate under --use_fast_math where tanhf becomes tanh.approx (2^-11).
  else if constexpr (A == MlpKind::kGeluTanh) return g / (1.0f + __expf(-2.0f * 0.7978845608028654f * (g + 0.044715f * g * g * g)));
  else return 0.5f * g * (1.0f + erff(g * 0.7071067811865476f));
}

template <MlpKind A>
__global__ void mlp_act_kernel(const __nv_bfloat16* in, const float* bias, int I, __nv_bfloat16* act, __nv_fp8_e4m3* q_out,
                               float* q_scale) {
  pdl_wait();
  __shared__ float scratch[32];
  constexpr bool gated = A == MlpKind::kSwiGLU;
  const size_t t = blockIdx.x;
  const uint4* g = reinterpret_cast<const uint4*>(in + t * (gated ? 2 : 1) * I);
  const uint4* up = reinterpret_cast<const uint4*>(in + t * 2 * I + I);  // gated only
  const int pieces = I / kPiece;
  float v[kRowPieces][kPiece];
  float m = 0.0f;
  // Every piece's loads before any arithmetic: the compiler keeps a piece's loads after the
  // earlier piece's (possible) store to act, so a thread would wait out a memory round trip a piece.
  uint4 graw[kRowPieces], uraw[kRowPieces];
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p >= pieces) continue;
    graw[k] = g[p];
    if constexpr (gated) uraw[k] = up[p];
  }
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p >= pieces) continue;
    float gv[kPiece], uv[kPiece];
    widen<false>(graw[k], gv);
    if constexpr (gated) widen<false>(uraw[k], uv);
#pragma unroll
    for (int j = 0; j < kPiece; ++j) {
      const float gg = gv[j] + (bias ? bias[p * kPiece + j] : 0.0f);
      const float uu = gated ? uv[j] + (bias ? bias[I + p * kPiece + j] : 0.0f) : 1.0f;
      v[k][j] = round_bf16(mlp_act<A>(gg, uu));
      m = fmaxf(m, fabsf(v[k][j]));
    }
    if (!q_out) reinterpret_cast<uint4*>(act + t * I)[p] = pack_bf16(v[k]);
  }
  if (!q_out) return;
  const float s = fp8_scale(block_max(m, scratch));
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p < pieces) reinterpret_cast<uint2*>(q_out + t * I)[p] = pack_e4m3(v[k], 1.0f / s);
  }
  if (threadIdx.x == 0) q_scale[t] = s;
}

__global__ void fill_random_kernel(__nv_bfloat16* out, size_t n, float scale, uint64_t seed) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
  out[i] = __float2bfloat16((2.0f * u - 1.0f) * scale);
}

unsigned blocks_for(size_t n, unsigned threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// rows[i, j] += bias[j] (GPT-J's LM head bias on the logits).
__global__ void add_row_bias_kernel(float* rows, const float* bias, size_t total, int cols) {
  pdl_wait();
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < total) rows[i] += bias[i % cols];
}

}  // namespace

bool& pdl_enabled() {
  static bool on = false;
  return on;
}

void launch_feed_tokens(int32_t* tokens, const int32_t* feed, const int32_t* sampled, int T, int vocab, cudaStream_t s) {
  if (T == 0) return;
  launch_pdl("feed_tokens_kernel", feed_tokens_kernel, (T + 255) / 256, 256, 0, s, tokens, feed, sampled, T, vocab);
}

// f(the stream as float* or __nv_bfloat16*): the kernels' instance for its type.
template <typename F>
void with_stream_type(ResidualStream x, F&& f) {
  if (x.bf16) f(static_cast<__nv_bfloat16*>(x.x));
  else f(static_cast<float*>(x.x));
}

void launch_embed(const __nv_bfloat16* embed, const int32_t* tokens, ResidualStream x, int T, int H, cudaStream_t s,
                  const __nv_bfloat16* pos_embed, const int32_t* positions) {
  with_stream_type(x, [&](auto* xp) {
    using X = std::remove_pointer_t<decltype(xp)>;
    launch_pdl("embed_kernel", embed_kernel<X>, T, 256, 0, s, embed, tokens, xp, H, pos_embed, positions);
  });
}

bool rmsnorm_supports(int H) { return H % 4 == 0 && H <= 4 * kNormVecs * 1024; }

void launch_rmsnorm(const float* x, const float* w, float eps, __nv_bfloat16* out, int T, int H, cudaStream_t s) {
  if (T == 0) return;
  if (!rmsnorm_supports(H)) fail("no RMS norm kernel for rows of ", H);
  // Enough threads that kNormVecs float4 each cover the row (rounded up: H / 4 need not divide).
  const int per_thread = (H / 4 + kNormVecs - 1) / kNormVecs;
  const int threads = std::min(1024, std::max(32, (per_thread + 31) / 32 * 32));
  launch_pdl("rmsnorm_kernel", rmsnorm_kernel, T, threads, 0, s, x, w, eps, out, H);
}

bool row_kernels_support(int H, int I) {
  return row_fits_pieces(H) && row_fits_pieces(I);
}

void launch_add_rmsnorm(ResidualStream x, const __nv_bfloat16* delta, const float* bias, const float* w, float eps,
                        __nv_bfloat16* out, const int32_t* rows, int n, int H, cudaStream_t s, __nv_fp8_e4m3* q_out,
                        float* q_scale, const float* norm_bias, const __nv_bfloat16* delta2) {
  if (n == 0) return;
  if (delta2 && !delta) fail("add_rmsnorm: a second delta needs a first");  // the kernel adds delta2 beside delta
  with_stream_type(x, [&](auto* xp) {
    using X = std::remove_pointer_t<decltype(xp)>;
    launch_pdl("add_rmsnorm_kernel", add_rmsnorm_kernel<X>, n, row_threads(H), 0, s, xp, delta, bias, w, eps, out, rows, H, q_out,
               q_scale, norm_bias, delta2);
  });
}

void launch_add_row_bias(float* rows, const float* bias, int n, int cols, cudaStream_t s) {
  if (n == 0) return;
  const size_t total = static_cast<size_t>(n) * cols;
  launch_pdl("add_row_bias_kernel", add_row_bias_kernel, blocks_for(total, 256), 256, 0, s, rows, bias, total, cols);
}

void launch_rope_kv_write(const __nv_bfloat16* qkv, const float* bias, float* q_out, const int32_t* positions,
                          const int32_t* token_seq, const int32_t* block_tables, int table_stride, const float2* cos_sin,
                          const KvLayer& kv, int T, int heads, int kv_heads, int D, int block_size, cudaStream_t s,
                          const uint8_t* q_skip) {
  if (T == 0) return;
  // A thread per 8 values: 448 for Llama-3-8B's 6,144 columns (q and k pairs count once). A step with
  // q_skip rows (prompt rows whose q the prefill kernel turns) sizes its blocks for their k and v
  // units alone (192 there): the block is register-bound at 2 an SM with 448 threads, of which such
  // a row used 192, and it is latency-bound (a chain of dependent loads a token), so more rows in
  // flight is what makes it faster (H200, 8,192-token prompt steps: 52 us at 448, 1 TB/s). Rows
  // with q (decode rows beside them) loop over the rest; the same arithmetic a unit, so the same bits.
  const int kv_units = kv_heads * (D / 2 / kPiece) + kv_heads * (D / kPiece);
  const int units = heads * (D / 2 / kPiece) + kv_units;
  const bool kv_only = q_skip && kv.type != KvType::kInt8;  // the INT8 kernel writes every q
  const int threads = std::min(1024, ((kv_only ? kv_units : units) + 31) / 32 * 32);
  if (kv.type == KvType::kInt8)
    launch_pdl("rope_kv_write_int8_kernel", rope_kv_write_int8_kernel, T, threads, 0, s, qkv, bias, q_out, positions,
               token_seq, block_tables, table_stride, cos_sin, static_cast<int8_t*>(kv.k), static_cast<int8_t*>(kv.v),
               kv.k_scales, kv.v_scales, heads, kv_heads, D, block_size);
  else if (kv.type == KvType::kE4M3)
    launch_pdl("rope_kv_write_kernel", rope_kv_write_kernel<__nv_fp8_e4m3>, T, threads, 0, s, qkv, bias, q_out, q_skip, positions,
               token_seq, block_tables, table_stride, cos_sin, static_cast<__nv_fp8_e4m3*>(kv.k),
               static_cast<__nv_fp8_e4m3*>(kv.v), 1.0f / kv.k_scale, 1.0f / kv.v_scale, heads, kv_heads, D, block_size);
  else
    launch_pdl("rope_kv_write_kernel", rope_kv_write_kernel<__nv_bfloat16>, T, threads, 0, s, qkv, bias, q_out, q_skip, positions,
               token_seq, block_tables, table_stride, cos_sin, static_cast<__nv_bfloat16*>(kv.k),
               static_cast<__nv_bfloat16*>(kv.v), 1.0f, 1.0f, heads, kv_heads, D, block_size);
}

void launch_mlp_act(MlpKind kind, const __nv_bfloat16* in, const float* bias, __nv_bfloat16* act, int T, int I, cudaStream_t s,
                    __nv_fp8_e4m3* q_out, float* q_scale) {
  if (T == 0) return;
  if (kind == MlpKind::kSwiGLU)
    launch_pdl("silu_mul_kernel", mlp_act_kernel<MlpKind::kSwiGLU>, T, row_threads(I), 0, s, in, bias, I, act, q_out, q_scale);
  else if (kind == MlpKind::kGeluTanh)
    launch_pdl("gelu_tanh_kernel", mlp_act_kernel<MlpKind::kGeluTanh>, T, row_threads(I), 0, s, in, bias, I, act, q_out, q_scale);
  else
    launch_pdl("gelu_kernel", mlp_act_kernel<MlpKind::kGelu>, T, row_threads(I), 0, s, in, bias, I, act, q_out, q_scale);
}

void launch_fill_random(__nv_bfloat16* out, size_t n, float scale, uint64_t seed, cudaStream_t s) {
  fill_random_kernel<<<blocks_for(n, 256), 256, 0, s>>>(out, n, scale, seed);
  CUDA_CHECK_LAUNCH("fill_random_kernel");
}

}  // namespace tachyon
