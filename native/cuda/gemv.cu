#include "cuda/cuda_check.h"
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

// One warp per output column n; lane j takes chunks j, j + 32, ... in order, then a butterfly sum.
// (Quantizing a bf16 A on the way in, to save the quantization kernel at batch 1, was tried: each
// warp then needs the row's maximum first, and the step got 0.45 ms slower.)
template <int M, bool FP8>
__global__ void __launch_bounds__(32 * kWarps) gemv_kernel(const uint4* A, const uint4* W, float* out, int N, int chunks) {
  constexpr int kPer = FP8 ? 16 : 8;
  pdl_wait();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n = blockIdx.x * kWarps + warp;
  if (n >= N) return;
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
      widen<FP8>(__ldg(A + static_cast<size_t>(m) * chunks + c), av);
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
void launch_rows(bool fp8, const void* A, const void* W, float* out, int N, int K, cudaStream_t s) {
  const unsigned grid = static_cast<unsigned>((N + kWarps - 1) / kWarps);
  const auto* a = static_cast<const uint4*>(A);
  const auto* w = static_cast<const uint4*>(W);
  if (fp8) launch_pdl("gemv_kernel", gemv_kernel<M, true>, grid, 32 * kWarps, 0, s, a, w, out, N, K / 16);
  else launch_pdl("gemv_kernel", gemv_kernel<M, false>, grid, 32 * kWarps, 0, s, a, w, out, N, K / 8);
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
  with_rows(M, [&](auto m) { launch_rows<decltype(m)::value>(fp8, A, W, out, N, K, s); });
}

}  // namespace tachyon
