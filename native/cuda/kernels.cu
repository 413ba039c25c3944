#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace tachyon {

namespace {

__device__ __forceinline__ float dequant(float v, Dequant d, size_t row, int col) {
  if (d.row) v *= d.row[row];
  if (d.col) v *= d.col[col];
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block in a fixed order: warps by shuffle, then warp totals in order.
__device__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

__global__ void embed_kernel(const __nv_bfloat16* embed, const int32_t* tokens, float* x, int H) {
  const int t = blockIdx.x;
  const __nv_bfloat16* row = embed + static_cast<size_t>(tokens[t]) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) x[static_cast<size_t>(t) * H + i] = __bfloat162float(row[i]);
}

__global__ void add_rmsnorm_kernel(float* x, const float* delta, Dequant dq, const float* bias, const float* w, float eps,
                                   __nv_bfloat16* out, const int32_t* rows, int H) {
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
  for (int i = threadIdx.x; i < H; i += blockDim.x) out[static_cast<size_t>(b) * H + i] = __float2bfloat16(w[i] * (xr[i] * inv));
}

__global__ void rope_kv_write_kernel(float* qkv, Dequant dq, const float* bias, const int32_t* positions, const int32_t* token_seq,
                                     const int32_t* block_tables, int table_stride, const float* inv_freq,
                                     __nv_bfloat16* k_cache, __nv_bfloat16* v_cache, int heads, int kv_heads, int D,
                                     int block_size) {
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
    const float angle = static_cast<float>(pos) * inv_freq[i];
    const float cs = static_cast<float>(cos(static_cast<double>(angle)));
    const float sn = static_cast<float>(sin(static_cast<double>(angle)));
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

constexpr int kMaxHeadDim = 256;

// One warp per (token, head): an online softmax over positions 0..pos, in order.
__global__ void paged_attention_kernel(const float* qkv, const int32_t* positions, const int32_t* token_seq,
                                       const int32_t* block_tables, int table_stride, const __nv_bfloat16* k_cache,
                                       const __nv_bfloat16* v_cache, __nv_bfloat16* out, int T, int heads, int kv_heads,
                                       int D, int block_size, float scale) {
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= T * heads) return;
  const int t = warp / heads, h = warp % heads, kvh = h / (heads / kv_heads);
  const int per_lane = (D + 31) / 32;
  const float* q = qkv + static_cast<size_t>(t) * (heads + 2 * kv_heads) * D + h * D;
  float qv[kMaxHeadDim / 32], acc[kMaxHeadDim / 32];
  for (int j = 0; j < per_lane; ++j) {
    const int e = lane + 32 * j;
    qv[j] = e < D ? q[e] : 0.0f;
    acc[j] = 0.0f;
  }
  const int pos = positions[t];
  const int32_t* table = block_tables + static_cast<size_t>(token_seq[t]) * table_stride;
  float m = -INFINITY, l = 0.0f;
  for (int p = 0; p <= pos; ++p) {
    const size_t base = ((static_cast<size_t>(table[p / block_size]) * kv_heads + kvh) * block_size + p % block_size) * D;
    float dot = 0.0f;
    for (int j = 0; j < per_lane; ++j) {
      const int e = lane + 32 * j;
      if (e < D) dot += qv[j] * __bfloat162float(k_cache[base + e]);
    }
    const float s = warp_sum(dot) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new);
    const float w = __expf(s - m_new);
    l = l * corr + w;
    for (int j = 0; j < per_lane; ++j) {
      const int e = lane + 32 * j;
      acc[j] = acc[j] * corr + (e < D ? w * __bfloat162float(v_cache[base + e]) : 0.0f);
    }
    m = m_new;
  }
  __nv_bfloat16* o = out + static_cast<size_t>(t) * heads * D + h * D;
  for (int j = 0; j < per_lane; ++j) {
    const int e = lane + 32 * j;
    if (e < D) o[e] = __float2bfloat16(acc[j] / l);
  }
}

__global__ void silu_mul_kernel(const float* gate_up, Dequant dq, const float* bias, __nv_bfloat16* act, size_t n, int I) {
  const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n) return;
  const size_t t = idx / I;
  const int i = static_cast<int>(idx % I);
  const float g = dequant(gate_up[t * 2 * I + i], dq, t, i) + (bias ? bias[i] : 0.0f);
  const float u = dequant(gate_up[t * 2 * I + I + i], dq, t, I + i) + (bias ? bias[I + i] : 0.0f);
  act[idx] = __float2bfloat16(g / (1.0f + __expf(-g)) * u);
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

void launch_embed(const __nv_bfloat16* embed, const int32_t* tokens, float* x, int T, int H, cudaStream_t s) {
  embed_kernel<<<T, 256, 0, s>>>(embed, tokens, x, H);
  CUDA_CHECK_LAUNCH("embed_kernel");
}

void launch_add_rmsnorm(float* x, const float* delta, Dequant dq, const float* bias, const float* w, float eps,
                        __nv_bfloat16* out, const int32_t* rows, int n, int H, cudaStream_t s) {
  if (n == 0) return;
  add_rmsnorm_kernel<<<n, 256, 0, s>>>(x, delta, dq, bias, w, eps, out, rows, H);
  CUDA_CHECK_LAUNCH("add_rmsnorm_kernel");
}

void launch_rope_kv_write(float* qkv, Dequant dq, const float* bias, const int32_t* positions, const int32_t* token_seq,
                          const int32_t* block_tables, int table_stride, const float* inv_freq, __nv_bfloat16* k_cache,
                          __nv_bfloat16* v_cache, int T, int heads, int kv_heads, int D, int block_size, cudaStream_t s) {
  rope_kv_write_kernel<<<T, 256, 0, s>>>(qkv, dq, bias, positions, token_seq, block_tables, table_stride, inv_freq, k_cache,
                                         v_cache, heads, kv_heads, D, block_size);
  CUDA_CHECK_LAUNCH("rope_kv_write_kernel");
}

void launch_paged_attention(const float* qkv, const int32_t* positions, const int32_t* token_seq, const int32_t* block_tables,
                            int table_stride, const __nv_bfloat16* k_cache, const __nv_bfloat16* v_cache, __nv_bfloat16* out,
                            int T, int heads, int kv_heads, int D, int block_size, cudaStream_t s) {
  if (D > kMaxHeadDim) fail("head_dim ", D, " is larger than the attention kernel's ", kMaxHeadDim);
  const int warps_per_block = 4;
  const unsigned grid = blocks_for(static_cast<size_t>(T) * heads, warps_per_block);
  paged_attention_kernel<<<grid, 32 * warps_per_block, 0, s>>>(qkv, positions, token_seq, block_tables, table_stride, k_cache,
                                                                v_cache, out, T, heads, kv_heads, D, block_size,
                                                                1.0f / sqrtf(static_cast<float>(D)));
  CUDA_CHECK_LAUNCH("paged_attention_kernel");
}

void launch_silu_mul(const float* gate_up, Dequant dq, const float* bias, __nv_bfloat16* act, int T, int I, cudaStream_t s) {
  const size_t n = static_cast<size_t>(T) * I;
  silu_mul_kernel<<<blocks_for(n, 256), 256, 0, s>>>(gate_up, dq, bias, act, n, I);
  CUDA_CHECK_LAUNCH("silu_mul_kernel");
}

void launch_fill_random(__nv_bfloat16* out, size_t n, float scale, uint64_t seed, cudaStream_t s) {
  fill_random_kernel<<<blocks_for(n, 256), 256, 0, s>>>(out, n, scale, seed);
  CUDA_CHECK_LAUNCH("fill_random_kernel");
}

}  // namespace tachyon
