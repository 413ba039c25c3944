// Pieces both tensor-core attention kernels (attention.cu, attention_decode.cu) use.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>

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

// E4M3 bytes of a b16-transposed ldmatrix (p, 2j), (p, 2j + 1), (p + 1, 2j), (p + 1, 2j + 1)
// regrouped as [even dim's position pair | odd dim's position pair].
__device__ __forceinline__ uint32_t split_dim_parity(uint32_t x) { return __byte_perm(x, 0, 0x3120); }

}  // namespace tachyon
