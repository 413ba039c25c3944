// Rows of bf16 quantized with one scale a row (FP8 weights and activations, INT8 ones): the row's
// largest magnitude, a scale from it, then each value's code. scale[row] is what a code is
// multiplied by to give the value back. Code supplies the element type, the scale and the encoding
// (fp8.cu: E4M3; int8.cu: int8).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "cuda/cuda_check.h"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"
#include "cuda/row_pieces.h"

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

// A GEMM's input each step, one block per token row, its pieces (row_pieces.h) held in registers
// between the row's largest magnitude and the codes: one read of the row, and every load in flight
// at once. The element-at-a-time kernel above read each 2-byte value twice (prefill's O projection
// input at about 1.15 TB/s under ncu, H200). The codes are those of quantize_rows_kernel: a maximum
// does not depend on the order it is taken in, and each code is Code::encode of its value.
template <typename Code>
__global__ void quantize_token_rows_kernel(const __nv_bfloat16* x, typename Code::Element* q, float* scale, int K) {
  static_assert(sizeof(typename Code::Element) == 1, "one-byte codes: kPiece bytes a piece");
  __shared__ float scratch[32];
  pdl_wait();
  const size_t row = blockIdx.x;
  const int pieces = K / kPiece;
  const uint4* xr = reinterpret_cast<const uint4*>(x + row * K);
  uint4 raw[kRowPieces];
  float m = 0.0f;
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p < pieces) raw[k] = xr[p];
  }
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    if (threadIdx.x + k * blockDim.x >= pieces) continue;
    const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&raw[k]);
#pragma unroll
    for (int j = 0; j < kPiece; ++j) m = fmaxf(m, fabsf(__bfloat162float(v[j])));
  }
  m = block_max(m, scratch);
  const float s = Code::scale(m);
  const float inv = 1.0f / s;
#pragma unroll
  for (int k = 0; k < kRowPieces; ++k) {
    const int p = threadIdx.x + k * blockDim.x;
    if (p >= pieces) continue;
    const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&raw[k]);
    union {
      typename Code::Element e[kPiece];
      uint2 u;
    } codes;
#pragma unroll
    for (int j = 0; j < kPiece; ++j) codes.e[j] = Code::encode(__bfloat162float(v[j]), s, inv);
    reinterpret_cast<uint2*>(q + row * K)[p] = codes.u;
  }
  if (threadIdx.x == 0) scale[row] = s;
}

// A GEMM's input each step: T token rows (after the kernel that wrote them: programmatic dependent launch).
template <typename Code>
void launch_quantize_token_rows(const __nv_bfloat16* x, typename Code::Element* q, float* scale, int T, int K, cudaStream_t s) {
  if (T == 0) return;
  if (row_fits_pieces(K) && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(q) % kPiece == 0) {
    // 128 threads for 4,096 values.
    launch_pdl("quantize_token_rows_kernel", quantize_token_rows_kernel<Code>, T, row_threads(K), 0, s, x, q, scale, K);
    return;
  }
  // A few rows (decode at small batch) get wide blocks; the result does not depend on the width.
  launch_pdl("quantize_rows_kernel", quantize_rows_kernel<Code>, T, T < 64 ? 1024 : 256, 0, s, x, q, scale, K);
}

}  // namespace tachyon
