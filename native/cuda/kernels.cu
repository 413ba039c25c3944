#include "cuda/cuda_check.h"
#include "cuda/fp8.h"
#include "cuda/kernels.h"
#include "cuda/reduce.cuh"

#include <type_traits>

namespace tachyon {

namespace {

__device__ __forceinline__ float dequant(float v, Dequant d, size_t row, int col) {
  if (d.row) v *= d.row[row];
  if (d.col) v *= d.col[col];
  return v;
}

__global__ void embed_kernel(const __nv_bfloat16* embed, const int32_t* tokens, float* x, int H) {
  const int t = blockIdx.x;
  const __nv_bfloat16* row = embed + static_cast<size_t>(tokens[t]) * H;
  for (int i = threadIdx.x; i < H; i += blockDim.x) x[static_cast<size_t>(t) * H + i] = __bfloat162float(row[i]);
}


__global__ void add_rmsnorm_kernel(float* x, const float* delta, Dequant dq, const float* bias, const float* w, float eps,
                                   __nv_bfloat16* out, const int32_t* rows, int H, __nv_fp8_e4m3* q_out, float* q_scale) {
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
constexpr int kMaxGroup = 8;  // query heads per KV head

// PER_LANE consecutive bf16 values from row[first..] as floats (zeros past D).
template <int PER_LANE>
__device__ __forceinline__ void load_bf16(const __nv_bfloat16* row, int first, int D, float* out) {
  if (first + PER_LANE <= D && PER_LANE % 2 == 0) {
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(row + first);
#pragma unroll
    for (int j = 0; j < PER_LANE / 2; ++j) {
      const float2 f = __bfloat1622float2(pairs[j]);
      out[2 * j] = f.x;
      out[2 * j + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int j = 0; j < PER_LANE; ++j) out[j] = first + j < D ? __bfloat162float(row[first + j]) : 0.0f;
  }
}

// q · k for one cached key row, by one lane over the whole head (16-byte loads when D % 8 == 0).
__device__ __forceinline__ float dot_row(const float* q, const __nv_bfloat16* k, int D) {
  float s = 0.0f;
  if ((D & 7) == 0) {
    for (int d = 0; d < D; d += 8) {
      const uint4 raw = *reinterpret_cast<const uint4*>(k + d);
      const __nv_bfloat162* pair = reinterpret_cast<const __nv_bfloat162*>(&raw);
      for (int j = 0; j < 4; ++j) {
        const float2 f = __bfloat1622float2(pair[j]);
        s += q[d + 2 * j] * f.x + q[d + 2 * j + 1] * f.y;
      }
    }
  } else {
    for (int d = 0; d < D; ++d) s += q[d] * __bfloat162float(k[d]);
  }
  return s;
}

// One warp per (token, KV head), serving the group of query heads that share
// it, so each cached K and V row is read once per token. Positions 0..pos go
// in tiles of 32, one position per lane for the scores, then the warp
// accumulates V with each lane owning head dimensions; an online softmax
// across tiles. Every sum's order is fixed by (token, head, position), never
// by the batch.
// GROUP query heads per KV head and PER_LANE = ceil(D / 32) are template
// arguments so the accumulators stay in registers.
template <int GROUP, int PER_LANE, int QT>
__global__ void __launch_bounds__(32 * QT) paged_attention_kernel(
    const float* qkv, const int32_t* positions, const int32_t* token_seq, const int32_t* block_tables, int table_stride,
    const __nv_bfloat16* k_cache, const __nv_bfloat16* v_cache, __nv_bfloat16* out, const int2* tiles, int heads,
    int kv_heads, int D, int block_size, float scale) {
  extern __shared__ float shared[];  // q [QT][GROUP][D] floats, then K and V tiles [32][D] bf16 each
  constexpr int group = GROUP;
  constexpr int per_lane = PER_LANE;
  __nv_bfloat16* k_tile = reinterpret_cast<__nv_bfloat16*>(shared + QT * GROUP * D);
  __nv_bfloat16* v_tile = k_tile + 32 * D;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int2 tile = tiles[blockIdx.x / kv_heads];  // (first token, count): consecutive tokens of one sequence
  const int kvh = blockIdx.x % kv_heads;
  const bool active = warp < tile.y;
  const int t = tile.x + (active ? warp : 0);
  const float* q = qkv + static_cast<size_t>(t) * (heads + 2 * kv_heads) * D + static_cast<size_t>(kvh) * group * D;
  float* qs = shared + static_cast<size_t>(warp) * group * D;
  for (int e = lane; e < group * D; e += 32) qs[e] = q[e];
  float acc[GROUP][PER_LANE];
  float m[GROUP], l[GROUP];
  for (int g = 0; g < group; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
    for (int j = 0; j < per_lane; ++j) acc[g][j] = 0.0f;
  }
  const int pos = positions[t];
  const int last = positions[tile.x + tile.y - 1];
  const int32_t* table = block_tables + static_cast<size_t>(token_seq[tile.x]) * table_stride;
  auto row = [&](const __nv_bfloat16* cache, int p) {
    return cache + ((static_cast<size_t>(table[p / block_size]) * kv_heads + kvh) * block_size + p % block_size) * D;
  };
  for (int base = 0; base <= last; base += 32) {
    // The block loads each K and V row of this tile of positions once, for all its query tokens.
    const int rows = min(32, last - base + 1);
    const int chunks = D / 8;
    __syncthreads();
    for (int c = threadIdx.x; c < rows * chunks; c += blockDim.x) {
      const int r = c / chunks, d = (c % chunks) * 8;
      *reinterpret_cast<uint4*>(k_tile + r * D + d) = *reinterpret_cast<const uint4*>(row(k_cache, base + r) + d);
      *reinterpret_cast<uint4*>(v_tile + r * D + d) = *reinterpret_cast<const uint4*>(row(v_cache, base + r) + d);
    }
    __syncthreads();
    if (!active || base > pos) continue;
    const int p = base + lane;
    const bool valid = p <= pos;
    float w[GROUP];
#pragma unroll
    for (int g = 0; g < group; ++g) {
      const float s = valid ? dot_row(qs + g * D, k_tile + lane * D, D) * scale : -INFINITY;
      const float m_new = fmaxf(m[g], warp_max(s));
      const float corr = __expf(m[g] - m_new);
      w[g] = valid ? __expf(s - m_new) : 0.0f;
      l[g] = l[g] * corr + warp_sum(w[g]);
      for (int j = 0; j < per_lane; ++j) acc[g][j] *= corr;
      m[g] = m_new;
    }
    const int count = min(32, pos - base + 1);
    // Lane owns head dimensions [lane * PER_LANE, lane * PER_LANE + PER_LANE).
    auto accumulate = [&](int jj) {
      float vv[PER_LANE];
      load_bf16<PER_LANE>(v_tile + jj * D, lane * PER_LANE, D, vv);
#pragma unroll
      for (int g = 0; g < group; ++g) {
        const float wj = __shfl_sync(0xffffffffu, w[g], jj);
#pragma unroll
        for (int j = 0; j < per_lane; ++j) acc[g][j] += wj * vv[j];
      }
    };
    if (count == 32) {
#pragma unroll 8
      for (int jj = 0; jj < 32; ++jj) accumulate(jj);
    } else {
      for (int jj = 0; jj < count; ++jj) accumulate(jj);
    }
  }
  if (!active) return;
  for (int g = 0; g < group; ++g) {
    __nv_bfloat16* o = out + static_cast<size_t>(t) * heads * D + (static_cast<size_t>(kvh) * group + g) * D;
    for (int j = 0; j < per_lane; ++j) {
      const int e = lane * PER_LANE + j;
      if (e < D) o[e] = __float2bfloat16(acc[g][j] / l[g]);
    }
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

// One block per token row: SwiGLU rounded as the bf16 path would, then E4M3 with the row's scale.
__global__ void silu_mul_quant_kernel(const float* gate_up, Dequant dq, const float* bias, int I, __nv_fp8_e4m3* q_out,
                                      float* q_scale) {
  __shared__ float scratch[32];
  const size_t t = blockIdx.x;
  auto act = [&](int i) {
    const float g = dequant(gate_up[t * 2 * I + i], dq, t, i) + (bias ? bias[i] : 0.0f);
    const float u = dequant(gate_up[t * 2 * I + I + i], dq, t, I + i) + (bias ? bias[I + i] : 0.0f);
    return __bfloat162float(__float2bfloat16(g / (1.0f + __expf(-g)) * u));
  };
  float m = 0.0f;
  for (int i = threadIdx.x; i < I; i += blockDim.x) m = fmaxf(m, fabsf(act(i)));
  const float s = fp8_scale(block_max(m, scratch));
  const float inv = 1.0f / s;
  for (int i = threadIdx.x; i < I; i += blockDim.x) q_out[t * I + i] = __nv_fp8_e4m3(act(i) * inv);
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

template <typename F>
void for_each_lane_count(F&& f) {
  f(std::integral_constant<int, 1>{});
  f(std::integral_constant<int, 2>{});
  f(std::integral_constant<int, 4>{});
  f(std::integral_constant<int, 8>{});
}

template <typename F>
void for_each_group(F&& f) {
  f(std::integral_constant<int, 1>{});
  f(std::integral_constant<int, 2>{});
  f(std::integral_constant<int, 3>{});
  f(std::integral_constant<int, 4>{});
  f(std::integral_constant<int, 5>{});
  f(std::integral_constant<int, 6>{});
  f(std::integral_constant<int, 7>{});
  f(std::integral_constant<int, 8>{});
}

unsigned blocks_for(size_t n, unsigned threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

}  // namespace

void launch_embed(const __nv_bfloat16* embed, const int32_t* tokens, float* x, int T, int H, cudaStream_t s) {
  embed_kernel<<<T, 256, 0, s>>>(embed, tokens, x, H);
  CUDA_CHECK_LAUNCH("embed_kernel");
}

void launch_add_rmsnorm(float* x, const float* delta, Dequant dq, const float* bias, const float* w, float eps,
                        __nv_bfloat16* out, const int32_t* rows, int n, int H, cudaStream_t s, __nv_fp8_e4m3* q_out,
                        float* q_scale) {
  if (n == 0) return;
  add_rmsnorm_kernel<<<n, 256, 0, s>>>(x, delta, dq, bias, w, eps, out, rows, H, q_out, q_scale);
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
                            const int2* tiles, int num_tiles, int tile_tokens, int heads, int kv_heads, int D, int block_size,
                            cudaStream_t s) {
  if (D > kMaxHeadDim || D % 8 != 0) fail("head_dim ", D, " is not supported by the attention kernel (a multiple of 8 up to ", kMaxHeadDim, ")");
  if (heads / kv_heads > kMaxGroup) fail(heads / kv_heads, " query heads per KV head is more than the attention kernel's ", kMaxGroup);
  if (num_tiles == 0) return;
  const unsigned grid = static_cast<unsigned>(num_tiles) * kv_heads;
  const int group = heads / kv_heads, per_lane = (D + 31) / 32;
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  bool launched = false;
  auto try_launch = [&](auto g, auto pl, auto qt) {
    constexpr int G = decltype(g)::value, PL = decltype(pl)::value, QT = decltype(qt)::value;
    if (launched || G != group || QT != tile_tokens || PL < per_lane || (PL > 1 && PL / 2 >= per_lane)) return;
    const size_t shared = static_cast<size_t>(QT) * G * D * sizeof(float) + 2 * 32 * D * sizeof(__nv_bfloat16);
    if (shared > 48 * 1024)
      CUDA_CHECK(cudaFuncSetAttribute(paged_attention_kernel<G, PL, QT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(shared)));
    paged_attention_kernel<G, PL, QT><<<grid, 32 * QT, shared, s>>>(qkv, positions, token_seq, block_tables, table_stride,
                                                                    k_cache, v_cache, out, tiles, heads, kv_heads, D,
                                                                    block_size, scale);
    launched = true;
  };
  auto each = [&](auto g) {
    for_each_lane_count([&](auto pl) {
      try_launch(g, pl, std::integral_constant<int, 1>{});
      try_launch(g, pl, std::integral_constant<int, kAttnTileTokens>{});
    });
  };
  for_each_group(each);
  if (!launched) fail("no attention kernel for ", group, " query heads per KV head and head_dim ", D);
  CUDA_CHECK_LAUNCH("paged_attention_kernel");
}

void launch_silu_mul(const float* gate_up, Dequant dq, const float* bias, __nv_bfloat16* act, int T, int I, cudaStream_t s,
                     __nv_fp8_e4m3* q_out, float* q_scale) {
  if (q_out) {
    if (T > 0) silu_mul_quant_kernel<<<T, 256, 0, s>>>(gate_up, dq, bias, I, q_out, q_scale);
    CUDA_CHECK_LAUNCH("silu_mul_quant_kernel");
    return;
  }
  const size_t n = static_cast<size_t>(T) * I;
  silu_mul_kernel<<<blocks_for(n, 256), 256, 0, s>>>(gate_up, dq, bias, act, n, I);
  CUDA_CHECK_LAUNCH("silu_mul_kernel");
}

void launch_fill_random(__nv_bfloat16* out, size_t n, float scale, uint64_t seed, cudaStream_t s) {
  fill_random_kernel<<<blocks_for(n, 256), 256, 0, s>>>(out, n, scale, seed);
  CUDA_CHECK_LAUNCH("fill_random_kernel");
}

}  // namespace tachyon
