// Kernels with more than 48 KB of dynamic shared memory must be allowed it once per kernel
// (cudaFuncSetAttribute is per device function, so per template instantiation).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "cuda/cuda_check.h"

namespace tachyon {

// Before Kernel's first launch: allow it `bytes` of dynamic shared memory (a constant of the instantiation).
template <auto Kernel>
void allow_dynamic_shared(size_t bytes) {
  static bool allowed = false;
  if (allowed) return;
  CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  allowed = true;
}

}  // namespace tachyon
