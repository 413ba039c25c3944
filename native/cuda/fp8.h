// FP8 (E4M3) weights and activations: per-output-channel weight scales and
// per-token activation scales, both float32 with value = fp8 * scale. The
// GEMM applies both in its epilogue (gemm.h) and writes bf16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace tachyon {

constexpr float kFp8Max = 448.0f;  // largest finite E4M3

// The E4M3 scale of a row whose largest magnitude is m.
__device__ __forceinline__ float fp8_scale(float m) { return m > 0.0f ? m / kFp8Max : 1.0f; }

// w[N, K] bf16 -> q[N, K] e4m3 and scale[N] (absmax / 448 per row).
void launch_quantize_weight(const __nv_bfloat16* w, __nv_fp8_e4m3* q, float* scale, int N, int K, cudaStream_t s);

// x[T, K] bf16 -> q[T, K] e4m3 and scale[T] (per token).
void launch_quantize_rows(const __nv_bfloat16* x, __nv_fp8_e4m3* q, float* scale, int T, int K, cudaStream_t s);

}  // namespace tachyon
