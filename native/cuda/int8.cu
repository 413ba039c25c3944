#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/int8.h"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"

namespace tachyon {

namespace {

__device__ __forceinline__ float int8_scale(float m) { return m > 0.0f ? m / kInt8Max : 1.0f; }

// One block per row: absmax, then q = round(x / scale), which stays within [-127, 127].
__global__ void quantize_rows_int8_kernel(const __nv_bfloat16* x, int8_t* q, float* scale, int K) {
  __shared__ float scratch[32];
  pdl_wait();
  const size_t row = blockIdx.x;
  const __nv_bfloat16* xr = x + row * K;
  float m = 0.0f;
  for (int i = threadIdx.x; i < K; i += blockDim.x) m = fmaxf(m, fabsf(__bfloat162float(xr[i])));
  m = block_max(m, scratch);
  const float s = int8_scale(m);
  // A true division, not x * (1 / s): a row's largest value must land on 127, not 127.00001.
  for (int i = threadIdx.x; i < K; i += blockDim.x)
    q[row * K + i] = static_cast<int8_t>(__float2int_rn(fminf(fmaxf(__fdiv_rn(__bfloat162float(xr[i]), s), -kInt8Max), kInt8Max)));
  if (threadIdx.x == 0) scale[row] = s;
}

__global__ void dequantize_weight_int8_kernel(const char4* q, const float* scale, __nv_bfloat162* w, int K4, size_t n4) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n4; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float s = scale[i / K4];
    const char4 v = q[i];
    w[2 * i] = __floats2bfloat162_rn(v.x * s, v.y * s);
    w[2 * i + 1] = __floats2bfloat162_rn(v.z * s, v.w * s);
  }
}

// Four columns a thread (N % 4 == 0): int4 in, four bf16 out.
__global__ void scale_int32_kernel(const int4* acc, const float* rows, const float4* cols, __nv_bfloat162* out, int N4, size_t n4) {
  pdl_wait();
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n4; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float r = rows[i / N4];
    const float4 c = cols[i % N4];
    const int4 a = acc[i];
    out[2 * i] = __floats2bfloat162_rn(static_cast<float>(a.x) * r * c.x, static_cast<float>(a.y) * r * c.y);
    out[2 * i + 1] = __floats2bfloat162_rn(static_cast<float>(a.z) * r * c.z, static_cast<float>(a.w) * r * c.w);
  }
}

// Blocks of 256 threads for n items, at most kMaxBlocks (the grid-stride loops take the rest): a few
// waves on any current GPU, whatever its SM count.
constexpr size_t kMaxBlocks = 2048;
unsigned grid_for(size_t n) { return static_cast<unsigned>(std::min<size_t>((n + 255) / 256, kMaxBlocks)); }

}  // namespace

void launch_quantize_weight_int8(const __nv_bfloat16* w, int8_t* q, float* scale, int N, int K, cudaStream_t s) {
  quantize_rows_int8_kernel<<<N, 256, 0, s>>>(w, q, scale, K);
  CUDA_CHECK_LAUNCH("quantize_rows_int8_kernel");
}

void launch_quantize_rows_int8(const __nv_bfloat16* x, int8_t* q, float* scale, int T, int K, cudaStream_t s) {
  if (T == 0) return;
  launch_pdl("quantize_rows_int8_kernel", quantize_rows_int8_kernel, T, T < 64 ? 1024 : 256, 0, s, x, q, scale, K);
}

void launch_dequantize_weight_int8(const int8_t* q, const float* scale, __nv_bfloat16* w, int N, int K, cudaStream_t s) {
  if (K % 4 != 0) fail("int8 weights need in-features divisible by 4, got ", K);
  const size_t n4 = static_cast<size_t>(N) * K / 4;
  dequantize_weight_int8_kernel<<<grid_for(n4), 256, 0, s>>>(reinterpret_cast<const char4*>(q), scale,
                                                              reinterpret_cast<__nv_bfloat162*>(w), K / 4, n4);
  CUDA_CHECK_LAUNCH("dequantize_weight_int8_kernel");
}

void launch_scale_int32(const int32_t* acc, const float* rows, const float* cols, __nv_bfloat16* out, int M, int N,
                        cudaStream_t s) {
  if (M == 0) return;
  if (N % 4 != 0) fail("w8a8 needs out-features divisible by 4, got ", N);
  const size_t n4 = static_cast<size_t>(M) * N / 4;
  launch_pdl("scale_int32_kernel", scale_int32_kernel, grid_for(n4), 256, 0, s, reinterpret_cast<const int4*>(acc), rows,
             reinterpret_cast<const float4*>(cols), reinterpret_cast<__nv_bfloat162*>(out), N / 4, n4);
}

}  // namespace tachyon
