// One rotary pair (a, b) = (x[i], x[i + D/2]) of a q or k head turned by its position's angle
// (cs = cos, sin), in float32. The RoPE + KV write kernel and the prefill attention kernels (which
// turn prompt rows' q themselves, AttentionArgs::q_raw) both call this, so a q value is the same
// bits whichever of them turned it.
#pragma once

namespace tachyon {

__device__ __forceinline__ void rope_rotate(float a, float b, float2 cs, float& ra, float& rb) {
  ra = a * cs.x - b * cs.y;
  rb = b * cs.x + a * cs.y;
}

}  // namespace tachyon
