// One layer of the paged KV cache as the kernels see it. Rows are
// [block][kv_head][slot][head_dim], in one of three element types
// (--kv-cache-dtype):
// - bf16 (auto);
// - E4M3 (fp8) with one scale per layer for K and one for V: value = stored *
//   scale, stored = saturate(value / scale). The scales are 1.0 (vLLM's
//   convention when a checkpoint names none), so values past +-448 clip;
// - INT8 (int8) with a scale per (block, kv_head, slot) for K and for V: a
//   cached head row is round(value * 127 / absmax), its scale absmax / 127
//   (float32, [block][kv_head][slot] beside the rows).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstddef>

namespace tachyon {

enum class KvType { kBf16, kE4M3, kInt8 };

struct KvLayer {
  void* k = nullptr;
  void* v = nullptr;
  KvType type = KvType::kBf16;
  float k_scale = 1.0f, v_scale = 1.0f;              // kE4M3
  float* k_scales = nullptr, *v_scales = nullptr;  // kInt8: [block][kv_head][slot]
};

inline size_t kv_element_bytes(KvType t) { return t == KvType::kBf16 ? 2 : 1; }

#ifdef __CUDACC__
// A bf16 or E4M3 cache element from a float value (E4M3: of value * inv_scale, saturated to +-448).
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
