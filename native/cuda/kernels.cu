#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/fp8.h"
#include "cuda/kernels.h"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"
#include "cuda/widen.cuh"


namespace tachyon {

namespace {

__device__ __forceinline__ float dequant(float v, Dequant d, size_t row, int col) {
  if (d.row) v *= d.row[row];
  if (d.col) v *= d.col[col];
  return v;
}

__global__ void embed_kernel(const __nv_bfloat16* embed, const int32_t* tokens, float* x, int H) {
  pdl_wait();
  const int t = blockIdx.x;
  const __nv_bfloat16* row = embed + static_cast<size_t>(tokens[t]) * H;
  float* out = x + static_cast<size_t>(t) * H;
  if (H % 8 == 0) {  // 16-byte pieces: 8 bf16 in, 8 floats out
    for (int i = threadIdx.x; i < H / 8; i += blockDim.x) {
      float v[8];
      widen<false>(reinterpret_cast<const uint4*>(row)[i], v);
      float4* o = reinterpret_cast<float4*>(out) + 2 * i;
      o[0] = make_float4(v[0], v[1], v[2], v[3]);
      o[1] = make_float4(v[4], v[5], v[6], v[7]);
    }
    return;
  }
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[i] = __bfloat162float(row[i]);
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

__global__ void add_rmsnorm_kernel(float* x, const float* delta, Dequant dq, const float* bias, const float* w, float eps,
                                   __nv_bfloat16* out, const int32_t* rows, int H, __nv_fp8_e4m3* q_out, float* q_scale) {
  pdl_wait();
  __shared__ float scratch[32];
  const int b = blockIdx.x;
  const int r = rows ? rows[b] : b;
  float* xr = x + static_cast<size_t>(r) * H;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float v = xr[i];
    if (delta) {
      v += dequant(delta[static_cast<size_t>(r) * H + i], dq, r, i) + (bias ? bias[i] : 0.0f);
      xr[i] = v;
    }
    ss += v * v;
  }
  const float total = block_sum(ss, scratch);
  const float inv = 1.0f / sqrtf(total / static_cast<float>(H) + eps);
  if (!q_out) {
    for (int i = threadIdx.x; i < H; i += blockDim.x) out[static_cast<size_t>(b) * H + i] = __float2bfloat16(w[i] * (xr[i] * inv));
    return;
  }
  // The values the bf16 path would write, then E4M3 with this row's scale.
  float m = 0.0f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) m = fmaxf(m, fabsf(__bfloat162float(__float2bfloat16(w[i] * (xr[i] * inv)))));
  const float s = fp8_scale(block_max(m, scratch));
  const float qinv = 1.0f / s;
  for (int i = threadIdx.x; i < H; i += blockDim.x)
    q_out[static_cast<size_t>(b) * H + i] = __nv_fp8_e4m3(__bfloat162float(__float2bfloat16(w[i] * (xr[i] * inv))) * qinv);
  if (threadIdx.x == 0) q_scale[b] = s;
}

__global__ void rope_kv_write_kernel(float* qkv, Dequant dq, const float* bias, const int32_t* positions, const int32_t* token_seq,
                                     const int32_t* block_tables, int table_stride, const float2* cos_sin,
                                     __nv_bfloat16* k_cache, __nv_bfloat16* v_cache, int heads, int kv_heads, int D,
                                     int block_size) {
  pdl_wait();
  const int t = blockIdx.x;
  const int half = D / 2;
  const int width = (heads + 2 * kv_heads) * D;
  float* row = qkv + static_cast<size_t>(t) * width;
  const int pos = positions[t];
  const int block = block_tables[static_cast<size_t>(token_seq[t]) * table_stride + pos / block_size];
  const int slot = pos % block_size;
  // Rotate q and k heads: pairs (i, i + D/2) of each head.
  for (int p = threadIdx.x; p < (heads + kv_heads) * half; p += blockDim.x) {
    const int head = p / half, i = p % half;
    const int c0 = head * D + i, c1 = c0 + half;
    const float a = dequant(row[c0], dq, t, c0) + (bias ? bias[c0] : 0.0f);
    const float b = dequant(row[c1], dq, t, c1) + (bias ? bias[c1] : 0.0f);
    const float2 rot = cos_sin[static_cast<size_t>(pos) * half + i];
    const float cs = rot.x, sn = rot.y;
    const float ra = a * cs - b * sn, rb = b * cs + a * sn;
    if (head < heads) {
      row[c0] = ra;
      row[c1] = rb;
    } else {
      const int kvh = head - heads;
      __nv_bfloat16* dst = k_cache + ((static_cast<size_t>(block) * kv_heads + kvh) * block_size + slot) * D;
      dst[i] = __float2bfloat16(ra);
      dst[i + half] = __float2bfloat16(rb);
    }
  }
  const int v0 = (heads + kv_heads) * D;
  for (int e = threadIdx.x; e < kv_heads * D; e += blockDim.x) {
    const int kvh = e / D, d = e % D;
    const float v = dequant(row[v0 + e], dq, t, v0 + e) + (bias ? bias[v0 + e] : 0.0f);
    v_cache[((static_cast<size_t>(block) * kv_heads + kvh) * block_size + slot) * D + d] = __float2bfloat16(v);
  }
}

// silu(gate) * up of row t, column i of gate_up[T, 2I], dequantized (+ bias), in float32.
__device__ __forceinline__ float swiglu(const float* gate_up, Dequant dq, const float* bias, size_t t, int i, int I) {
  const float g = dequant(gate_up[t * 2 * I + i], dq, t, i) + (bias ? bias[i] : 0.0f);
  const float u = dequant(gate_up[t * 2 * I + I + i], dq, t, I + i) + (bias ? bias[I + i] : 0.0f);
  return g / (1.0f + __expf(-g)) * u;
}

__global__ void silu_mul_kernel(const float* gate_up, Dequant dq, const float* bias, __nv_bfloat16* act, size_t n, int I) {
  pdl_wait();
  const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n) return;
  const size_t t = idx / I;
  act[idx] = __float2bfloat16(swiglu(gate_up, dq, bias, t, static_cast<int>(idx % I), I));
}

constexpr int kSiluSlice = 2048;  // activations per block of the quantizing SwiGLU (256 threads x 8)

// SwiGLU rounded as the bf16 path would, into act; each block's largest magnitude into act_max[t][slice].
__global__ void silu_act_kernel(const float* gate_up, Dequant dq, const float* bias, int I, __nv_bfloat16* act,
                                float* act_max) {
  pdl_wait();
  __shared__ float scratch[32];
  const size_t t = blockIdx.y;
  float m = 0.0f;
  for (int i = blockIdx.x * kSiluSlice + threadIdx.x; i < min(I, (blockIdx.x + 1) * kSiluSlice); i += blockDim.x) {
    const __nv_bfloat16 v = __float2bfloat16(swiglu(gate_up, dq, bias, t, i, I));
    act[t * I + i] = v;
    m = fmaxf(m, fabsf(__bfloat162float(v)));
  }
  m = block_max(m, scratch);
  if (threadIdx.x == 0) act_max[t * gridDim.x + blockIdx.x] = m;
}

// act -> E4M3 with the row's scale (from the slices' maxima, the same in every block).
__global__ void quantize_act_kernel(const __nv_bfloat16* act, const float* act_max, int I, __nv_fp8_e4m3* q_out,
                                    float* q_scale) {
  pdl_wait();
  const size_t t = blockIdx.y;
  float m = 0.0f;
  for (int j = 0; j < gridDim.x; ++j) m = fmaxf(m, act_max[t * gridDim.x + j]);
  const float s = fp8_scale(m);
  const float inv = 1.0f / s;
  for (int i = blockIdx.x * kSiluSlice + threadIdx.x; i < min(I, (blockIdx.x + 1) * kSiluSlice); i += blockDim.x)
    q_out[t * I + i] = __nv_fp8_e4m3(__bfloat162float(act[t * I + i]) * inv);
  if (blockIdx.x == 0 && threadIdx.x == 0) q_scale[t] = s;
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

}  // namespace

bool& pdl_enabled() {
  static bool on = false;
  return on;
}

void launch_embed(const __nv_bfloat16* embed, const int32_t* tokens, float* x, int T, int H, cudaStream_t s) {
  launch_pdl("embed_kernel", embed_kernel, T, 256, 0, s, embed, tokens, x, H);
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

void launch_add_rmsnorm(float* x, const float* delta, Dequant dq, const float* bias, const float* w, float eps,
                        __nv_bfloat16* out, const int32_t* rows, int n, int H, cudaStream_t s, __nv_fp8_e4m3* q_out,
                        float* q_scale) {
  if (n == 0) return;
  // Wide rows get wide blocks (a decode step at small batch waits on one row). By H alone, so the
  // order of the sums, and so the result, never depends on the batch.
  const int threads = std::min(1024, std::max(32, (H / 4 + 31) / 32 * 32));
  launch_pdl("add_rmsnorm_kernel", add_rmsnorm_kernel, n, threads, 0, s, x, delta, dq, bias, w, eps, out, rows, H, q_out, q_scale);
}

void launch_rope_kv_write(float* qkv, Dequant dq, const float* bias, const int32_t* positions, const int32_t* token_seq,
                          const int32_t* block_tables, int table_stride, const float2* cos_sin, __nv_bfloat16* k_cache,
                          __nv_bfloat16* v_cache, int T, int heads, int kv_heads, int D, int block_size, cudaStream_t s) {
  launch_pdl("rope_kv_write_kernel", rope_kv_write_kernel, T, T < 64 ? 1024 : 256, 0, s, qkv, dq, bias, positions, token_seq,
             block_tables, table_stride, cos_sin, k_cache, v_cache, heads, kv_heads, D, block_size);
}

int silu_partials(int I) { return (I + kSiluSlice - 1) / kSiluSlice; }

void launch_silu_mul(const float* gate_up, Dequant dq, const float* bias, __nv_bfloat16* act, int T, int I, cudaStream_t s,
                     __nv_fp8_e4m3* q_out, float* q_scale, float* act_max) {
  if (T == 0) return;
  if (act_max) {
    const dim3 grid(silu_partials(I), T);
    launch_pdl("silu_act_kernel", silu_act_kernel, grid, 256, 0, s, gate_up, dq, bias, I, act, act_max);
    if (q_out) launch_pdl("quantize_act_kernel", quantize_act_kernel, grid, 256, 0, s, act, act_max, I, q_out, q_scale);
    return;
  }
  const size_t n = static_cast<size_t>(T) * I;
  launch_pdl("silu_mul_kernel", silu_mul_kernel, blocks_for(n, 256), 256, 0, s, gate_up, dq, bias, act, n, I);
}

void launch_fill_random(__nv_bfloat16* out, size_t n, float scale, uint64_t seed, cudaStream_t s) {
  fill_random_kernel<<<blocks_for(n, 256), 256, 0, s>>>(out, n, scale, seed);
  CUDA_CHECK_LAUNCH("fill_random_kernel");
}

}  // namespace tachyon
