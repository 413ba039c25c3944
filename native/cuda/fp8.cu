#include "cuda/cuda_check.h"
#include "cuda/fp8.h"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"

namespace tachyon {

namespace {

// One block per row: absmax, then scaled E4M3 (saturating).
__global__ void quantize_rows_kernel(const __nv_bfloat16* x, __nv_fp8_e4m3* q, float* scale, int K) {
  __shared__ float scratch[32];
  pdl_wait();
  const size_t row = blockIdx.x;
  const __nv_bfloat16* xr = x + row * K;
  float m = 0.0f;
  for (int i = threadIdx.x; i < K; i += blockDim.x) m = fmaxf(m, fabsf(__bfloat162float(xr[i])));
  m = block_max(m, scratch);
  const float s = fp8_scale(m);
  const float inv = 1.0f / s;
  for (int i = threadIdx.x; i < K; i += blockDim.x) q[row * K + i] = __nv_fp8_e4m3(__bfloat162float(xr[i]) * inv);
  if (threadIdx.x == 0) scale[row] = s;
}

}  // namespace

void launch_quantize_weight(const __nv_bfloat16* w, __nv_fp8_e4m3* q, float* scale, int N, int K, cudaStream_t s) {
  quantize_rows_kernel<<<N, 256, 0, s>>>(w, q, scale, K);
  CUDA_CHECK_LAUNCH("quantize_rows_kernel");
}

void launch_quantize_rows(const __nv_bfloat16* x, __nv_fp8_e4m3* q, float* scale, int T, int K, cudaStream_t s) {
  if (T == 0) return;
  // A few rows (decode at small batch) get wide blocks; the result does not depend on the width.
  launch_pdl("quantize_rows_kernel", quantize_rows_kernel, T, T < 64 ? 1024 : 256, 0, s, x, q, scale, K);
}

}  // namespace tachyon
