#include "cuda/cuda_check.h"
#include "cuda/fp8.h"
#include "cuda/gemv.h"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <type_traits>

namespace tachyon {

namespace {

constexpr int kWarps = 8;   // output rows per block
constexpr int kUnroll = 4;  // 16-byte loads of W in flight per lane

// The 16 E4M3 (or 8 bf16) values of a 16-byte chunk, as floats.
template <bool FP8>
__device__ __forceinline__ void widen(const uint4& raw, float* out) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
  if constexpr (FP8) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const __half2_raw lo = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(words[i] & 0xffff), __NV_E4M3);
      const __half2_raw hi = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(words[i] >> 16), __NV_E4M3);
      const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&lo));
      const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&hi));
      out[4 * i] = a.x;
      out[4 * i + 1] = a.y;
      out[4 * i + 2] = b.x;
      out[4 * i + 3] = b.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
}

// A row's E4M3 scale and its reciprocal, as quantize_rows_kernel / quantize_act_kernel compute them: from
// the maxima of the row's slices when given, else the warp reads the whole bf16 row.
template <int M>
__device__ __forceinline__ void row_scales(const uint4* A16, int chunks16, const float* amax_parts, int parts, float* inv,
                                           float* q_scale, bool writer) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float mx = 0.0f;
    if (parts > 0) {
      for (int j = 0; j < parts; ++j) mx = fmaxf(mx, amax_parts[m * parts + j]);
    } else {
      for (int c = lane; c < chunks16; c += 32) {
        float v[8];
        widen<false>(__ldg(A16 + static_cast<size_t>(m) * chunks16 + c), v);
#pragma unroll
        for (int i = 0; i < 8; ++i) mx = fmaxf(mx, fabsf(v[i]));
      }
      mx = warp_max(mx);
    }
    const float s = fp8_scale(mx);
    inv[m] = 1.0f / s;
    if (writer && lane == 0) q_scale[m] = s;
  }
}

// One warp per output column n; lane j takes chunks j, j + 32, ... in order, then a butterfly sum.
// QUANT (FP8 weights only): A is bf16, quantized per row on the way in exactly as the separate
// quantization kernels would (the row scales go to q_scale), which saves that kernel at small batch.
template <int M, bool FP8, bool QUANT>
__global__ void __launch_bounds__(32 * kWarps) gemv_kernel(const uint4* A, const uint4* W, float* out, int N, int chunks,
                                                           const float* amax_parts, int parts, float* q_scale) {
  constexpr int kPer = FP8 ? 16 : 8;
  pdl_wait();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = blockIdx.x * kWarps + warp;
  if (n >= N) return;
  float inv[M];
  if constexpr (QUANT) row_scales<M>(A, 2 * chunks, amax_parts, parts, inv, q_scale, n == 0);
  const uint4* w = W + static_cast<size_t>(n) * chunks;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
  auto consume = [&](const uint4& raw, int c) {
    float wv[kPer];
    widen<FP8>(raw, wv);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float av[kPer];
      if constexpr (QUANT) {
        widen<false>(__ldg(A + (static_cast<size_t>(m) * chunks + c) * 2), av);
        widen<false>(__ldg(A + (static_cast<size_t>(m) * chunks + c) * 2 + 1), av + 8);
#pragma unroll
        for (int i = 0; i < kPer; ++i) av[i] = static_cast<float>(__nv_fp8_e4m3(av[i] * inv[m]));
      } else {
        widen<FP8>(__ldg(A + static_cast<size_t>(m) * chunks + c), av);
      }
#pragma unroll
      for (int i = 0; i < kPer; ++i) acc[m] = fmaf(wv[i], av[i], acc[m]);
    }
  };
  int c = lane;
  for (; c + 32 * (kUnroll - 1) < chunks; c += 32 * kUnroll) {
    uint4 raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) raw[u] = __ldcs(w + c + 32 * u);  // streamed once: keep it out of L1
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) consume(raw[u], c + 32 * u);
  }
  for (; c < chunks; c += 32) consume(__ldcs(w + c), c);
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float total = warp_sum(acc[m]);
    if (lane == 0) out[static_cast<size_t>(m) * N + n] = total;
  }
}

template <int M>
void launch_rows(bool fp8, const void* A, const void* W, float* out, int N, int K, const float* amax_parts, int parts,
                 float* q_scale, bool quant, cudaStream_t s) {
  const unsigned grid = static_cast<unsigned>((N + kWarps - 1) / kWarps);
  const auto* a = static_cast<const uint4*>(A);
  const auto* w = static_cast<const uint4*>(W);
  if (quant)
    launch_pdl("gemv_kernel", gemv_kernel<M, true, true>, grid, 32 * kWarps, 0, s, a, w, out, N, K / 16, amax_parts, parts, q_scale);
  else if (fp8)
    launch_pdl("gemv_kernel", gemv_kernel<M, true, false>, grid, 32 * kWarps, 0, s, a, w, out, N, K / 16, amax_parts, parts, q_scale);
  else
    launch_pdl("gemv_kernel", gemv_kernel<M, false, false>, grid, 32 * kWarps, 0, s, a, w, out, N, K / 8, amax_parts, parts, q_scale);
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

}  // namespace

bool gemv_supports(bool fp8, int M, int K) {
  return M >= 1 && M <= kGemvMaxRows && K % (fp8 ? 16 : 8) == 0;
}

void launch_gemv(bool fp8, const void* A, const void* W, float* out, int M, int N, int K, cudaStream_t s) {
  if (!gemv_supports(fp8, M, K)) fail("no GEMV kernel for ", M, " rows of ", K);
  with_rows(M, [&](auto m) { launch_rows<decltype(m)::value>(fp8, A, W, out, N, K, nullptr, 0, nullptr, false, s); });
}

void launch_gemv_quantizing(const __nv_bfloat16* A, const float* amax_parts, int parts, const void* W, float* out,
                            float* q_scale, int M, int N, int K, cudaStream_t s) {
  if (!gemv_supports(true, M, K)) fail("no GEMV kernel for ", M, " rows of ", K);
  with_rows(M, [&](auto m) { launch_rows<decltype(m)::value>(true, A, W, out, N, K, amax_parts, parts, q_scale, true, s); });
}

}  // namespace tachyon
