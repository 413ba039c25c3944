// Pieces both tensor-core attention kernels (attention.cu, attention_decode.cu) use.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>

#include "cuda/kv_cache.h"

namespace tachyon {

// Online-softmax state of one query row, in the log2 domain (scores times log2(e) / sqrt(D)).
// Folding b into a: explicit roundings, so the in-block fold of the sequential walk and the last
// block's fold of split-parallel states produce the same bits.
__device__ __forceinline__ void fold_weights(float ma, float mb, float& wa, float& wb, float& m) {
  m = fmaxf(ma, mb);
  wa = ma == -INFINITY ? 0.0f : exp2f(__fsub_rn(ma, m));
  wb = mb == -INFINITY ? 0.0f : exp2f(__fsub_rn(mb, m));
}
__device__ __forceinline__ float fold_value(float a, float wa, float b, float wb) {
  return __fmaf_rn(b, wb, __fmul_rn(a, wa));
}

// Two E4M3 in the low (hi: high) 16 bits of x as f16x2.
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t x, bool hi) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(hi ? x >> 16 : x & 0xffffu), __NV_E4M3);
  return static_cast<uint32_t>(h.x) | (static_cast<uint32_t>(h.y) << 16);
}

// Two INT8 in the low (hi: high) 16 bits of x as f16x2, exactly: each byte biased to unsigned
// becomes the mantissa of 1024 + byte, and 1152 comes off.
__device__ __forceinline__ uint32_t int8x2_to_f16x2(uint32_t x, bool hi) {
  const uint32_t h = __byte_perm(x ^ 0x80808080u, 0x64646464u, hi ? 0x4342 : 0x4140);
  const __half2 v = __hsub2(*reinterpret_cast<const __half2*>(&h), __floats2half2_rn(1152.0f, 1152.0f));
  return *reinterpret_cast<const uint32_t*>(&v);
}

// A cache of one-byte elements (E4M3 or INT8): two of them as f16x2.
template <KvType T>
__device__ __forceinline__ uint32_t bytes_to_f16x2(uint32_t x, bool hi) {
  static_assert(T != KvType::kBf16, "bf16 is read as it is");
  return T == KvType::kE4M3 ? e4m3x2_to_f16x2(x, hi) : int8x2_to_f16x2(x, hi);
}

// a * b on f16x2 bit patterns.
__device__ __forceinline__ uint32_t mul_f16x2(uint32_t a, uint32_t b) {
  const __half2 v = __hmul2(*reinterpret_cast<const __half2*>(&a), *reinterpret_cast<const __half2*>(&b));
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Bytes of a b16-transposed ldmatrix (p, 2j), (p, 2j + 1), (p + 1, 2j), (p + 1, 2j + 1)
// regrouped as [even dim's position pair | odd dim's position pair].
__device__ __forceinline__ uint32_t split_dim_parity(uint32_t x) { return __byte_perm(x, 0, 0x3120); }

}  // namespace tachyon
