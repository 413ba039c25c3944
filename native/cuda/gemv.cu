#include "cuda/cuda_check.h"
#include "cuda/gemv.h"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"
#include "cuda/widen.cuh"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace tachyon {

namespace {

constexpr int kWarps = 8;   // warps per block; each takes a pair of W rows at a time
constexpr int kUnroll = 4;  // 16-byte loads per W row in flight per lane
constexpr int kPrefetchBytes = 8192;  // of each first row, past the loads already in flight

__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// Row pairs: kStore (2u, 2u + 1); kSwiGLU (gate u, up u + N/2); kRopeKv the rotation pair
// (i, i + D/2) of a q or k head, then consecutive v columns.
template <GemvEpilogue E>
__device__ __forceinline__ void unit_rows(const FusedGemv& g, int u, int& r0, int& r1) {
  if constexpr (E == GemvEpilogue::kSwiGLU) {
    r0 = u;
    r1 = u + g.N / 2;
  } else if constexpr (E == GemvEpilogue::kRopeKv) {
    const int D = g.rope.head_dim, half = D / 2, rotated = (g.rope.heads + g.rope.kv_heads) * half;
    if (u < rotated) {
      r0 = (u / half) * D + u % half;
      r1 = r0 + half;
    } else {
      r0 = (g.rope.heads + g.rope.kv_heads) * D + 2 * (u - rotated);
      r1 = r0 + 1;
    }
  } else {
    r0 = 2 * u;
    r1 = 2 * u + 1;
  }
}

// Row pairs (warp tasks) of a product.
template <GemvEpilogue E>
__host__ __device__ __forceinline__ int units_of(const FusedGemv& g) {
  return E == GemvEpilogue::kStore ? (g.N + 1) / 2 : g.N / 2;
}

// What a unit's epilogue reads besides its sums, for token row m. None of it depends on the kernels
// before (weights, the step's positions and block tables), so it is read before waiting on them.
struct EpilogueInputs {
  float scale0 = 1.0f, scale1 = 1.0f, bias0 = 0.0f, bias1 = 0.0f;
  float cos = 1.0f, sin = 0.0f;  // kRopeKv, q and k rows: the pair's rotation
  size_t cache_row = 0;          // kRopeKv, k and v rows: the token's row of this head in the cache
};

template <GemvEpilogue E>
__device__ __forceinline__ EpilogueInputs epilogue_inputs(const FusedGemv& g, int m, int r0, int r1) {
  EpilogueInputs in;
  const bool has1 = r1 < g.N;
  if (g.scale) {
    in.scale0 = g.scale[r0];
    if (has1) in.scale1 = g.scale[r1];
  }
  if (g.bias) {
    in.bias0 = g.bias[r0];
    if (has1) in.bias1 = g.bias[r1];
  }
  if constexpr (E == GemvEpilogue::kRopeKv) {
    const RopeKvTarget& t = g.rope;
    const int D = t.head_dim, head = r0 / D;
    const int pos = t.positions[m];
    if (head < t.heads + t.kv_heads) {
      const float2 rot = t.cos_sin[static_cast<size_t>(pos) * (D / 2) + r0 % D];
      in.cos = rot.x;
      in.sin = rot.y;
    }
    if (head >= t.heads) {
      const int kvh = head < t.heads + t.kv_heads ? head - t.heads : head - t.heads - t.kv_heads;
      const int block = t.block_tables[static_cast<size_t>(t.token_seq[m]) * t.table_stride + pos / t.block_size];
      in.cache_row = ((static_cast<size_t>(block) * t.kv_heads + kvh) * t.block_size + pos % t.block_size) * D;
    }
  }
  return in;
}

__device__ __forceinline__ void cache_write(void* cache, bool fp8, size_t i, float value, float inv_scale) {
  if (fp8) static_cast<__nv_fp8_e4m3*>(cache)[i] = kv_store<__nv_fp8_e4m3>(value, inv_scale);
  else static_cast<__nv_bfloat16*>(cache)[i] = kv_store<__nv_bfloat16>(value, inv_scale);
}

// Token row m's results for W rows r0 and r1 (r1 absent past N): scaled, biased, and handed on.
template <GemvEpilogue E>
__device__ __forceinline__ void finish(const FusedGemv& g, const EpilogueInputs& in, int m, int u, int r0, int r1, float v0,
                                       float v1) {
  const bool has1 = r1 < g.N;
  v0 = v0 * in.scale0 + in.bias0;
  v1 = v1 * in.scale1 + in.bias1;
  const size_t row = static_cast<size_t>(m) * g.N;
  if constexpr (E == GemvEpilogue::kStore) {
    // Each element has one writer, and this kernel reads only A: the residual is updated in place.
    float* out = g.residual ? g.residual : g.out;
    out[row + r0] = g.residual ? out[row + r0] + v0 : v0;
    if (has1) out[row + r1] = g.residual ? out[row + r1] + v1 : v1;
  } else if constexpr (E == GemvEpilogue::kSwiGLU) {
    // silu(gate) * up in float32, then bf16, as mlp_act_kernel<kSwiGLU> (kernels.cu) computes it.
    g.act[static_cast<size_t>(m) * (g.N / 2) + u] = __float2bfloat16(v0 / (1.0f + __expf(-v0)) * v1);
  } else {
    const RopeKvTarget& t = g.rope;
    const int D = t.head_dim, head = r0 / D;
    if (head < t.heads + t.kv_heads) {
      // As rope_kv_write_kernel: (a, b) -> (a cos - b sin, b cos + a sin).
      const float ra = v0 * in.cos - v1 * in.sin, rb = v1 * in.cos + v0 * in.sin;
      if (head < t.heads) {
        g.out[row + r0] = ra;
        g.out[row + r1] = rb;
      } else {
        cache_write(t.kv.k, t.kv.type == KvType::kE4M3, in.cache_row + r0 % D, ra, t.k_inv_scale);
        cache_write(t.kv.k, t.kv.type == KvType::kE4M3, in.cache_row + r1 % D, rb, t.k_inv_scale);
      }
    } else {
      cache_write(t.kv.v, t.kv.type == KvType::kE4M3, in.cache_row + r0 % D, v0, t.v_inv_scale);
      cache_write(t.kv.v, t.kv.type == KvType::kE4M3, in.cache_row + r1 % D, v1, t.v_inv_scale);
    }
  }
}

// Lane j takes chunks j, j + 32, ... of both rows in order, then a butterfly sum: a row's result
// depends only on K, never on M or the grid. A_FP8: A is E4M3 (plain FP8 product); else bf16.
template <int M, Packed W_TYPE, bool A_FP8, GemvEpilogue E>
__global__ void __launch_bounds__(32 * kWarps) gemv_kernel(FusedGemv g, const uint4* A) {
  constexpr int kPer = packed_values<W_TYPE>;          // K values per 16-byte W chunk
  constexpr int kAPer = (kPer == 16 && !A_FP8) ? 2 : 1;  // 16-byte A chunks per W chunk
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int chunks = g.K / kPer;
  const uint4* W = static_cast<const uint4*>(g.W);
  const int units = units_of<E>(g);
  const int first_unit = blockIdx.x * kWarps + warp;
  int r0 = 0, r1 = 0;
  const uint4 *w0 = W, *w1 = W;
  auto select = [&](int u) {
    unit_rows<E>(g, u, r0, r1);
    w0 = W + static_cast<size_t>(r0) * chunks;
    w1 = W + static_cast<size_t>(r1 < g.N ? r1 : r0) * chunks;
  };
  uint4 raw0[kUnroll], raw1[kUnroll];
  auto load_batch = [&](int c) {
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      raw0[k] = __ldcs(w0 + c + 32 * k);  // streamed once: keep it out of L1
      raw1[k] = __ldcs(w1 + c + 32 * k);
    }
  };
  // The weights never depend on the kernels before: while those finish (programmatic dependent
  // launch), the first batch of this warp's loads goes out and the rest of its first row pair is
  // prefetched into L2 (a 128-byte line per lane at a time, at most kPrefetchBytes a row).
  bool preloaded = first_unit < units && chunks >= 32 * kUnroll;
  EpilogueInputs epi;  // lane m < M: token row m's, for the unit at hand
  if (first_unit < units) {
    select(first_unit);
    if (lane < M) epi = epilogue_inputs<E>(g, lane, r0, r1);
  }
  if (preloaded) {
    load_batch(lane);
    const int stop = min(chunks, 32 * kUnroll + kPrefetchBytes / 16);
    for (int c = 32 * kUnroll + 8 * lane; c < stop; c += 8 * 32) {
      prefetch_l2(w0 + c);
      prefetch_l2(w1 + c);
    }
  }
  pdl_wait();
  const size_t a_stride = static_cast<size_t>(chunks) * kAPer;
  auto a_values = [&](int m, int c, float* av) {
    const uint4* p = A + m * a_stride + static_cast<size_t>(c) * kAPer;
    widen<A_FP8>(__ldg(p), av);
    if constexpr (kAPer == 2) widen<false>(__ldg(p + 1), av + 8);
  };
  for (int u = first_unit; u < units; u += gridDim.x * kWarps) {
    if (u != first_unit) {
      select(u);
      if (lane < M) epi = epilogue_inputs<E>(g, lane, r0, r1);
    }
    float acc0[M], acc1[M];
#pragma unroll
    for (int m = 0; m < M; ++m) acc0[m] = acc1[m] = 0.0f;
    auto consume = [&](const uint4& raw_0, const uint4& raw_1, int c) {
      float wv0[kPer], wv1[kPer];
      widen_packed<W_TYPE>(raw_0, wv0);
      widen_packed<W_TYPE>(raw_1, wv1);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float av[kPer];
        a_values(m, c, av);
#pragma unroll
        for (int i = 0; i < kPer; ++i) {
          acc0[m] = fmaf(wv0[i], av[i], acc0[m]);
          acc1[m] = fmaf(wv1[i], av[i], acc1[m]);
        }
      }
    };
    int c = lane;
    for (; c + 32 * (kUnroll - 1) < chunks; c += 32 * kUnroll) {
      if (!preloaded) load_batch(c);
      preloaded = false;
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) consume(raw0[k], raw1[k], c + 32 * k);
    }
    for (; c < chunks; c += 32) consume(__ldcs(w0 + c), __ldcs(w1 + c), c);
    // Every lane holds the sums after the butterfly; lane m finishes token row m.
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float t0 = warp_sum(acc0[m]), t1 = warp_sum(acc1[m]);
      if (lane == m) finish<E>(g, epi, m, u, r0, r1, t0, t1);
    }
  }
}

template <typename F>
void with_rows(int M, F&& f) {
  switch (M) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    default: return f(std::integral_constant<int, 8>{});
  }
}

template <int M, Packed W_TYPE, bool A_FP8, GemvEpilogue E>
void launch_one(const FusedGemv& g, const void* A, cudaStream_t s) {
  const unsigned grid = static_cast<unsigned>((units_of<E>(g) + kWarps - 1) / kWarps);
  launch_pdl("gemv_kernel", gemv_kernel<M, W_TYPE, A_FP8, E>, grid, 32 * kWarps, 0, s, g, static_cast<const uint4*>(A));
}

template <int M, GemvEpilogue E>
void launch_fused(const FusedGemv& g, cudaStream_t s) {
  switch (g.w_type) {
    case WeightType::kFp8: return launch_one<M, Packed::kE4M3, false, E>(g, g.rows, s);
    case WeightType::kInt8: return launch_one<M, Packed::kI8, false, E>(g, g.rows, s);
    case WeightType::kBf16: return launch_one<M, Packed::kBf16, false, E>(g, g.rows, s);
  }
}

}  // namespace

bool gemv_supports(WeightType w, int M, int K) {
  return M >= 1 && M <= kGemvMaxRows && K % (w == WeightType::kBf16 ? 8 : 16) == 0;
}

bool fused_gemv_supports(const FusedGemv& f, int M) {
  return f.rows && gemv_supports(f.w_type, M, f.K) && f.N % 2 == 0 &&
         (f.epilogue != GemvEpilogue::kRopeKv || f.rope.head_dim % 2 == 0);
}

void launch_fused_gemv(const FusedGemv& f, int M, cudaStream_t s) {
  if (M == 0) return;
  if (!fused_gemv_supports(f, M)) fail("no fused GEMV kernel for ", M, " rows of ", f.N, "x", f.K);
  with_rows(M, [&](auto m) {
    constexpr int kM = decltype(m)::value;
    switch (f.epilogue) {
      case GemvEpilogue::kStore: return launch_fused<kM, GemvEpilogue::kStore>(f, s);
      case GemvEpilogue::kSwiGLU: return launch_fused<kM, GemvEpilogue::kSwiGLU>(f, s);
      case GemvEpilogue::kRopeKv: return launch_fused<kM, GemvEpilogue::kRopeKv>(f, s);
    }
  });
}

}  // namespace tachyon
