// Rows of bf16 quantized with one scale a row (FP8 weights and activations, INT8 ones): the row's
// largest magnitude, a scale from it, then each value's code. scale[row] is what a code is
// multiplied by to give the value back. Code supplies the element type, the scale and the encoding
// (fp8.cu: E4M3; int8.cu: int8).
#pragma once
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>

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

// A GEMM's input each step, one block per token row, 16-byte pieces (8 values) held in registers
// between the row's largest magnitude and the codes: one read of the row, and every load in flight
// at once. The element-at-a-time kernel above read each 2-byte value twice (prefill's O projection
// input at about 1.15 TB/s under ncu, H200). The codes are those of quantize_rows_kernel: a maximum
// does not depend on the order it is taken in, and each code is Code::encode of its value.
constexpr int kQuantPieces = 4;  // pieces a thread: rows of up to 4 x 8 x 1,024 values
template <typename Code>
__global__ void quantize_token_rows_kernel(const __nv_bfloat16* x, typename Code::Element* q, float* scale, int K) {
  static_assert(sizeof(typename Code::Element) == 1, "one-byte codes: 8 bytes a piece");
  __shared__ float scratch[32];
  pdl_wait();
  const size_t row = blockIdx.x;
  const int pieces = K / 8;
  const uint4* xr = reinterpret_cast<const uint4*>(x + row * K);
  uint4 raw[kQuantPieces];
  float m = 0.0f;
#pragma unroll
  for (int k = 0; k < kQuantPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p < pieces) raw[k] = xr[p];
  }
#pragma unroll
  for (int k = 0; k < kQuantPieces; ++k) {
    if (threadIdx.x + k * blockDim.x >= pieces) continue;
    const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&raw[k]);
#pragma unroll
    for (int j = 0; j < 8; ++j) m = fmaxf(m, fabsf(__bfloat162float(v[j])));
  }
  m = block_max(m, scratch);
  const float s = Code::scale(m);
  const float inv = 1.0f / s;
#pragma unroll
  for (int k = 0; k < kQuantPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p >= pieces) continue;
    const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&raw[k]);
    union {
      typename Code::Element e[8];
      uint2 u;
    } codes;
#pragma unroll
    for (int j = 0; j < 8; ++j) codes.e[j] = Code::encode(__bfloat162float(v[j]), s, inv);
    reinterpret_cast<uint2*>(q + row * K)[p] = codes.u;
  }
  if (threadIdx.x == 0) scale[row] = s;
}

// A GEMM's input each step: T token rows (after the kernel that wrote them: programmatic dependent launch).
template <typename Code>
void launch_quantize_token_rows(const __nv_bfloat16* x, typename Code::Element* q, float* scale, int T, int K, cudaStream_t s) {
  if (T == 0) return;
  const bool vectors = K % 8 == 0 && K <= kQuantPieces * 8 * 1024 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(q) % 8 == 0;
  if (vectors) {
    // Enough whole warps that each thread holds at most kQuantPieces pieces (128 threads for 4,096 values).
    const int threads = std::min(1024, std::max(32, ((K / 8 + kQuantPieces - 1) / kQuantPieces + 31) / 32 * 32));
    launch_pdl("quantize_token_rows_kernel", quantize_token_rows_kernel<Code>, T, threads, 0, s, x, q, scale, K);
    return;
  }
  // A few rows (decode at small batch) get wide blocks; the result does not depend on the width.
  launch_pdl("quantize_rows_kernel", quantize_rows_kernel<Code>, T, T < 64 ? 1024 : 256, 0, s, x, q, scale, K);
}

}  // namespace tachyon
