// 16-byte chunks of packed low-precision values widened to float32: 16 E4M3,
// 16 int8 or 8 bf16 (bf16 is the top half of a float, so widening is a shift).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace tachyon {

// The 16 E4M3 (or 8 bf16) values of a 16-byte chunk, in order, as floats.
template <bool FP8>
__device__ __forceinline__ void widen(const uint4& raw, float* out) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
  if constexpr (FP8) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const __half2_raw lo = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(words[i] & 0xffff), __NV_E4M3);
      const __half2_raw hi = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(words[i] >> 16), __NV_E4M3);
      const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&lo));
      const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&hi));
      out[4 * i] = a.x;
      out[4 * i + 1] = a.y;
      out[4 * i + 2] = b.x;
      out[4 * i + 3] = b.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
}

// The 16 int8 values of a 16-byte chunk, in order, as floats (exact): byte b ^ 0x80 = v + 128 placed
// in the low mantissa bits of 2^23 makes the float 2^23 + 128 + v, one permute and one add a value.
__device__ __forceinline__ void widen_int8(const uint4& raw, float* out) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t biased = words[i] ^ 0x80808080u;
#pragma unroll
    for (int j = 0; j < 4; ++j)
      out[4 * i + j] = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7540u | j)) - 8388736.0f;
  }
}

// A 16-byte chunk of a weight row: what its bytes hold, and how many values.
enum class Packed { kBf16, kE4M3, kI8 };
template <Packed P>
constexpr int packed_values = P == Packed::kBf16 ? 8 : 16;

template <Packed P>
__device__ __forceinline__ void widen_packed(const uint4& raw, float* out) {
  if constexpr (P == Packed::kI8) widen_int8(raw, out);
  else widen<P == Packed::kE4M3>(raw, out);
}

}  // namespace tachyon
