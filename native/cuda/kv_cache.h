// One layer of the paged KV cache as the kernels see it. Rows are
// [block][kv_head][slot][head_dim]; elements are bf16, or E4M3 (--kv-cache-dtype
// fp8) with one scale per layer for K and one for V: value = stored * scale,
// stored = saturate(value / scale). The scales are 1.0 unless the checkpoint
// names its own (vLLM's convention), so values past +-448 clip.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstddef>

namespace tachyon {

struct KvLayer {
  void* k = nullptr;
  void* v = nullptr;
  bool fp8 = false;
  float k_scale = 1.0f, v_scale = 1.0f;
};

inline size_t kv_element_bytes(bool fp8) { return fp8 ? sizeof(__nv_fp8_e4m3) : sizeof(__nv_bfloat16); }

#ifdef __CUDACC__
// A cache element from a float value: bf16, or E4M3 of value * inv_scale, saturated to +-448.
template <typename T>
__device__ __forceinline__ T kv_store(float value, float inv_scale);
template <>
__device__ __forceinline__ __nv_bfloat16 kv_store<__nv_bfloat16>(float value, float) {
  return __float2bfloat16(value);
}
template <>
__device__ __forceinline__ __nv_fp8_e4m3 kv_store<__nv_fp8_e4m3>(float value, float inv_scale) {
  __nv_fp8_e4m3 r;
  r.__x = __nv_cvt_float_to_fp8(value * inv_scale, __NV_SATFINITE, __NV_E4M3);
  return r;
}
#endif

}  // namespace tachyon
