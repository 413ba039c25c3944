// The uniform number a seeded draw uses: a counter-based hash of
// (seed, position of the new token). One definition for the CPU sampler and
// the CUDA sampler, so the two draw from the same stream bit for bit.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define TACHYON_HOST_DEVICE __host__ __device__
#else
#define TACHYON_HOST_DEVICE
#endif

namespace tachyon {

TACHYON_HOST_DEVICE inline uint64_t mix64(uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1).
TACHYON_HOST_DEVICE inline double uniform_from(uint64_t seed, uint64_t counter) {
  const uint64_t z = mix64(mix64(seed + 0x9E3779B97F4A7C15ull) ^ (counter * 0xD1B54A32D192ED03ull));
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

}  // namespace tachyon
