#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/int8.h"
#include "cuda/pdl.cuh"
#include "cuda/quantize_rows.cuh"

namespace tachyon {

namespace {

// int8 codes: round(x / scale) within [-127, 127]. A true division, not x * (1 / s): a row's largest
// value must land on 127, not 127.00001.
struct Int8Code {
  using Element = int8_t;
  __device__ static float scale(float m) { return m > 0.0f ? m / kInt8Max : 1.0f; }
  __device__ static Element encode(float x, float s, float /*inv*/) {
    return static_cast<int8_t>(__float2int_rn(fminf(fmaxf(__fdiv_rn(x, s), -kInt8Max), kInt8Max)));
  }
};

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
  launch_quantize_weight_rows<Int8Code>(w, q, scale, N, K, s);
}

void launch_quantize_rows_int8(const __nv_bfloat16* x, int8_t* q, float* scale, int T, int K, cudaStream_t s) {
  launch_quantize_token_rows<Int8Code>(x, q, scale, T, K, s);
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
