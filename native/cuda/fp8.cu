#include "cuda/fp8.h"
#include "cuda/quantize_rows.cuh"

namespace tachyon {

namespace {

// E4M3 codes, saturating: x times the reciprocal of the scale.
struct E4M3Code {
  using Element = __nv_fp8_e4m3;
  __device__ static float scale(float m) { return fp8_scale(m); }
  __device__ static Element encode(float x, float /*s*/, float inv) { return __nv_fp8_e4m3(x * inv); }
};

}  // namespace

void launch_quantize_weight(const __nv_bfloat16* w, __nv_fp8_e4m3* q, float* scale, int N, int K, cudaStream_t s) {
  launch_quantize_weight_rows<E4M3Code>(w, q, scale, N, K, s);
}

void launch_quantize_rows(const __nv_bfloat16* x, __nv_fp8_e4m3* q, float* scale, int T, int K, cudaStream_t s) {
  launch_quantize_token_rows<E4M3Code>(x, q, scale, T, K, s);
}

}  // namespace tachyon
