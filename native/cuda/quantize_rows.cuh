// Rows of bf16 quantized with one scale a row (FP8 weights and activations, INT8 ones): the row's
// largest magnitude, a scale from it, then each value's code. scale[row] is what a code is
// multiplied by to give the value back. Code supplies the element type, the scale and the encoding
// (fp8.cu: E4M3; int8.cu: int8).
#pragma once
#include <cuda_bf16.h>

#include "cuda/cuda_check.h"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"

namespace tachyon {

// One block per row of x [rows, K].
template <typename Code>
__global__ void quantize_rows_kernel(const __nv_bfloat16* x, typename Code::Element* q, float* scale, int K) {
  __shared__ float scratch[32];
  pdl_wait();
  const size_t row = blockIdx.x;
  const __nv_bfloat16* xr = x + row * K;
  float m = 0.0f;
  for (int i = threadIdx.x; i < K; i += blockDim.x) m = fmaxf(m, fabsf(__bfloat162float(xr[i])));
  m = block_max(m, scratch);
  const float s = Code::scale(m);
  const float inv = 1.0f / s;
  for (int i = threadIdx.x; i < K; i += blockDim.x) q[row * K + i] = Code::encode(__bfloat162float(xr[i]), s, inv);
  if (threadIdx.x == 0) scale[row] = s;
}

// Weights at load: N rows.
template <typename Code>
void launch_quantize_weight_rows(const __nv_bfloat16* w, typename Code::Element* q, float* scale, int N, int K, cudaStream_t s) {
  quantize_rows_kernel<Code><<<N, 256, 0, s>>>(w, q, scale, K);
  CUDA_CHECK_LAUNCH("quantize_rows_kernel");
}

// A GEMM's input each step: T token rows (after the kernel that wrote them: programmatic dependent launch).
template <typename Code>
void launch_quantize_token_rows(const __nv_bfloat16* x, typename Code::Element* q, float* scale, int T, int K, cudaStream_t s) {
  if (T == 0) return;
  // A few rows (decode at small batch) get wide blocks; the result does not depend on the width.
  launch_pdl("quantize_rows_kernel", quantize_rows_kernel<Code>, T, T < 64 ? 1024 : 256, 0, s, x, q, scale, K);
}

}  // namespace tachyon
