#include <algorithm>
#include <cmath>

#include "cuda/attention.h"
#include "cuda/attention_parts.cuh"
#include "cuda/cuda_check.h"
#include "cuda/mma.cuh"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"
#include "cuda/widen.cuh"

namespace tachyon {

namespace {

// Positions staged in shared memory at a time, and the smallest range: 32 measured 3.75 ms per
// token at batch 1 against 3.84 for 64 (fewer positions per block, more blocks).
constexpr int kChunk = 32;
constexpr int kWarps = 4;
constexpr int kMaxGroup = kAttnMaxGroup;  // query heads per KV head (check_attention_shape)
constexpr int kHeadsPerWarp = kMaxGroup / kWarps;
constexpr int kMaxRanges = 64;      // parallel blocks per (token, KV head)

// grid: (token, KV head, range). Block z takes positions [z * per, (z + 1) * per) of the token's
// context, per a multiple of kChunk chosen from the context length at run time (so one CUDA
// graph serves every length); blocks past the context return at once.
// One cached element as float (F8: E4M3, the layer's scale applied by the caller).
template <bool F8>
__device__ __forceinline__ float cached(const unsigned char* row, int d) {
  if constexpr (F8) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(row[d], __NV_E4M3);
    return __half2float(__half(h));
  } else {
    return __bfloat162float(reinterpret_cast<const __nv_bfloat16*>(row)[d]);
  }
}

template <int D, bool F8>
__global__ void __launch_bounds__(32 * kWarps) few_attention_kernel(AttentionArgs a, float scale_log2) {
  constexpr int EB = F8 ? 1 : 2;                    // bytes per cached element
  constexpr int kStride = D * EB + 16;              // bytes per staged row: 16-byte rows spread over banks
  constexpr int kPer16 = 16 / EB;                   // elements per 16-byte piece
  constexpr int kDimsPerLane = (D + 31) / 32;
  constexpr int kLanePositions = kChunk / 32;  // of a chunk's positions, for the scores
  // K and V rows of a chunk; the folding block reuses it for per-range weights ([range][head] + [head]).
  constexpr int kStageBytes = 2 * kChunk * kStride, kFoldBytes = (3 * kMaxRanges + 1) * kMaxGroup * 4;
  __shared__ __align__(16) unsigned char stage[kStageBytes > kFoldBytes ? kStageBytes : kFoldBytes];
  unsigned char* ks = stage;
  unsigned char* vs = ks + kChunk * kStride;
  __shared__ float qs[kMaxGroup * D];
  __shared__ float ps[kWarps][kChunk];
  __shared__ int last_block;
  // The step's positions and block tables come from the host before the first kernel, and K/V of
  // positions before this step's tokens from earlier steps: all of that is read before waiting on
  // the QKV projection (programmatic dependent launch). Only q and this step's K/V rows wait.
  const int t = blockIdx.x, kvh = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int G = a.heads / a.kv_heads;
  const int ctx = a.positions[t] + 1;
  const int settled = ctx - 1 - static_cast<int>(gridDim.x);  // this step's tokens sit past it
  const int ranges = gridDim.z;
  const int per = max(kChunk, (ctx + ranges * kChunk - 1) / (ranges * kChunk) * kChunk);
  const int used = (ctx + per - 1) / per;
  const int begin = blockIdx.z * per, end = min(ctx, begin + per);
  if (begin >= ctx) return;
  const int32_t* table = a.block_tables + static_cast<size_t>(a.token_seq[t]) * a.table_stride;
  // Rows [c0, c0 + n) of the chunk whose positions lie in [lo, hi].
  auto stage_rows = [&](int c0, int n, int lo, int hi) {
    constexpr int kPieces = D * EB / 16;  // 16-byte pieces per row
    for (int c = threadIdx.x; c < n * kPieces; c += blockDim.x) {
      const int r = c / kPieces, b = (c % kPieces) * 16, p = c0 + r;
      if (p < lo || p > hi) continue;
      const size_t off = kv_slot(a, table, kvh, p) * D * EB + b;
      cp_async_16(ks + r * kStride + b, static_cast<const unsigned char*>(a.kv.k) + off, true);
      cp_async_16(vs + r * kStride + b, static_cast<const unsigned char*>(a.kv.v) + off, true);
    }
    cp_async_commit();
  };
  stage_rows(begin, min(kChunk, end - begin), 0, settled);
  pdl_wait();
  stage_rows(begin, min(kChunk, end - begin), settled + 1, ctx - 1);
  const size_t qkv_width = static_cast<size_t>(a.heads + 2 * a.kv_heads) * D;
  for (int i = threadIdx.x; i < G * D; i += blockDim.x)
    qs[i] = a.qkv[t * qkv_width + static_cast<size_t>(kvh * G) * D + i] * scale_log2;

  // Per head of this warp (warp, warp + 4, ...): online-softmax state in the log2 domain.
  float m[kHeadsPerWarp], l[kHeadsPerWarp], acc[kHeadsPerWarp][kDimsPerLane];
#pragma unroll
  for (int j = 0; j < kHeadsPerWarp; ++j) {
    m[j] = -INFINITY;
    l[j] = 0.0f;
#pragma unroll
    for (int k = 0; k < kDimsPerLane; ++k) acc[j][k] = 0.0f;
  }
  for (int c0 = begin; c0 < end; c0 += kChunk) {
    const int n = min(kChunk, end - c0);
    if (c0 != begin) {
      __syncthreads();  // the last chunk is consumed
      stage_rows(c0, n, 0, ctx - 1);
    }
    cp_async_wait<0>();
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kHeadsPerWarp; ++j) {
      const int h = warp + kWarps * j;
      if (h >= G) break;
      // Scores: lane takes positions lane, lane + 32, ... of the chunk.
      float s[kLanePositions];
#pragma unroll
      for (int k = 0; k < kLanePositions; ++k) {
        const int r = lane + 32 * k;
        s[k] = -INFINITY;
        if (r >= n) continue;
        float dot = 0.0f;
#pragma unroll
        for (int d = 0; d < D; d += kPer16) {
          float kv[kPer16];
          widen<F8>(*reinterpret_cast<const uint4*>(ks + r * kStride + d * EB), kv);
#pragma unroll
          for (int i = 0; i < kPer16; ++i) dot = fmaf(kv[i], qs[h * D + d + i], dot);
        }
        s[k] = dot;
      }
      float top = s[0];
#pragma unroll
      for (int k = 1; k < kLanePositions; ++k) top = fmaxf(top, s[k]);
      const float m_new = fmaxf(m[j], warp_max(top));  // finite: the chunk has a position
      const float corr = exp2f(m[j] - m_new);          // 0 on the first chunk
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < kLanePositions; ++k) {
        const float e = exp2f(s[k] - m_new);
        ps[warp][lane + 32 * k] = e;
        sum += e;
      }
      l[j] = l[j] * corr + warp_sum(sum);
      m[j] = m_new;
      __syncwarp();
#pragma unroll
      for (int k = 0; k < kDimsPerLane; ++k) acc[j][k] *= corr;
      for (int r = 0; r < n; ++r) {
        const float e = ps[warp][r];
#pragma unroll
        for (int k = 0; k < kDimsPerLane; ++k) {
          const int d = lane + 32 * k;
          if (d < D) acc[j][k] = fmaf(e, cached<F8>(vs + r * kStride, d), acc[j][k]);
        }
      }
      __syncwarp();
    }
  }

  // Each of this warp's heads' accumulator elements: f(j, h, k, d).
  auto each_element = [&](auto&& f) {
#pragma unroll
    for (int j = 0; j < kHeadsPerWarp; ++j) {
      const int h = warp + kWarps * j;
      if (h >= G) break;
#pragma unroll
      for (int k = 0; k < kDimsPerLane; ++k)
        if (lane + 32 * k < D) f(j, h, k, lane + 32 * k);
    }
  };
  __nv_bfloat16* out = a.out + static_cast<size_t>(t) * a.heads * D + static_cast<size_t>(kvh * G) * D;
  const float v_scale = F8 ? a.kv.v_scale : 1.0f;
  if (used == 1) {  // the whole context in this block
    each_element([&](int j, int h, int k, int d) { out[h * D + d] = __float2bfloat16(acc[j][k] / l[j] * v_scale); });
    return;
  }
  // This range's state: [G][D] accumulators, then m[G], l[G].
  const size_t pair = static_cast<size_t>(t) * a.kv_heads + kvh;
  const size_t state = static_cast<size_t>(G) * (D + 2);
  float* base = a.partial + pair * ranges * state;
  float* part = base + blockIdx.z * state;
  each_element([&](int j, int h, int k, int d) {
    part[h * D + d] = acc[j][k];
    if (lane == 0 && k == 0) {
      part[G * D + h] = m[j];
      part[G * D + G + h] = l[j];
    }
  });
  // The last of the used blocks to finish folds every range.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(a.split_counters + pair, 1) == used - 1;
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  if (threadIdx.x == 0) a.split_counters[pair] = 0;  // ready for the next launch
  // Every range's m and l into shared memory at once (reusing the staging area), then per (range,
  // head) its weight exp2(m - max m) and per head the weighted sum of l.
  float* weight = reinterpret_cast<float*>(stage);  // [range][head]
  float* ms = weight + kMaxRanges * kMaxGroup;      // [range][head]
  float* ls = ms + kMaxRanges * kMaxGroup;          // [range][head]
  float* total = ls + kMaxRanges * kMaxGroup;       // [head]
  for (int i = threadIdx.x; i < used * G; i += blockDim.x) {
    const float* ml = base + (i / G) * state + G * D + i % G;
    ms[i / G * kMaxGroup + i % G] = __ldcg(ml);
    ls[i / G * kMaxGroup + i % G] = __ldcg(ml + G);
  }
  __syncthreads();
  for (int h = threadIdx.x; h < G; h += blockDim.x) {
    float mx = -INFINITY;
    for (int z = 0; z < used; ++z) mx = fmaxf(mx, ms[z * kMaxGroup + h]);
    float sum = 0.0f;
    for (int z = 0; z < used; ++z) {
      const float w = exp2f(ms[z * kMaxGroup + h] - mx);
      weight[z * kMaxGroup + h] = w;
      sum = fmaf(ls[z * kMaxGroup + h], w, sum);
    }
    total[h] = sum;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < G * D; e += blockDim.x) {
    const int h = e / D;
    float v = 0.0f;
#pragma unroll 8
    for (int z = 0; z < used; ++z) v = fmaf(__ldcg(base + z * state + e), weight[z * kMaxGroup + h], v);
    out[e] = __float2bfloat16(v / total[h] * v_scale);
  }
}

template <int D>
void launch_d(const AttentionArgs& a, cudaStream_t s) {
  const int ranges = std::max(1, std::min(kMaxRanges, kAttnPartialSlots / (a.num_tiles * a.kv_heads)));
  const bool f8 = a.kv.type == KvType::kE4M3;
  const float scale_log2 = attention_score_scale_log2(a);
  const dim3 grid(a.num_tiles, a.kv_heads, ranges);
  if (f8) launch_pdl("few_attention_kernel", few_attention_kernel<D, true>, grid, 32 * kWarps, 0, s, a, scale_log2);
  else launch_pdl("few_attention_kernel", few_attention_kernel<D, false>, grid, 32 * kWarps, 0, s, a, scale_log2);
}

}  // namespace

void launch_few_attention(const AttentionArgs& a, cudaStream_t s) {
  if (a.num_tiles == 0) return;
  // The few-row path's QKV GEMV writes K/V element by element; an INT8 row's scale needs the whole row.
  if (a.kv.type == KvType::kInt8) fail("few-token attention does not read an INT8 KV cache (the few-row path is off with one)");
  if (a.num_tiles > kFewAttentionTokens) fail("few-token attention takes at most ", kFewAttentionTokens, " tokens, got ", a.num_tiles);
  if (static_cast<size_t>(a.num_tiles) * a.kv_heads > static_cast<size_t>(kAttnPartialSlots))
    fail("few-token attention: ", a.num_tiles, " tokens x ", a.kv_heads, " KV heads exceed the partial-state buffer");
  const bool built = a.head_dim <= kFewAttentionMaxHeadDim && with_head_dim(a.head_dim, [&](auto d) {
    constexpr int D = decltype(d)::value;
    if constexpr (D <= kFewAttentionMaxHeadDim) launch_d<D>(a, s);
  });
  if (!built) fail("head_dim ", a.head_dim, " is not supported by the few-token attention kernel (a multiple of 16 up to ",
                   kFewAttentionMaxHeadDim, ")");
}

}  // namespace tachyon
