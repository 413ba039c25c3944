// INT8 weights (--quantization int8: weight-only; w8a8: with INT8 activations).
// Weights: int8 [N, K] with a float32 scale per output channel (absmax / 127),
// value = q * scale, as the CPU backend's int8.h. W8A8 activations: int8 [T, K]
// with a float32 scale per token, quantized before each GEMM; cuBLASLt's IMMA
// kernels sum in int32, and the scales are applied on the way to bf16.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tachyon {

constexpr float kInt8Max = 127.0f;

// w[N, K] bf16 -> q[N, K] int8 and scale[N] (absmax / 127 per row, rounded to nearest).
void launch_quantize_weight_int8(const __nv_bfloat16* w, int8_t* q, float* scale, int N, int K, cudaStream_t s);

// x[T, K] bf16 -> q[T, K] int8 and scale[T] (per token).
void launch_quantize_rows_int8(const __nv_bfloat16* x, int8_t* q, float* scale, int T, int K, cudaStream_t s);

// Weight-only INT8 at more rows than the GEMVs take: q[N, K] * scale[N] -> w[N, K] bf16, for a
// bf16 GEMM. (A bf16 rounding of each weight, relative 2^-9, as a BF16 checkpoint has.)
void launch_dequantize_weight_int8(const int8_t* q, const float* scale, __nv_bfloat16* w, int N, int K, cudaStream_t s);

// W8A8's epilogue: out[M, N] = bf16(acc[m][n] * rows[m] * cols[n]), acc the int32 sums.
void launch_scale_int32(const int32_t* acc, const float* rows, const float* cols, __nv_bfloat16* out, int M, int N,
                        cudaStream_t s);

}  // namespace tachyon
