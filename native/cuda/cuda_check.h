// Every CUDA call is checked (cuBLASLt calls: cublas_check.h); a failure throws tachyon::Error
// naming the call, which reaches JavaScript as an Error (never an abort). Kernels include only
// this, so they compile where cuBLAS is absent (test/native/wgmma-serialization.test.ts).
#pragma once
#include <cuda_runtime.h>

#include "cpu/error.h"

#define CUDA_CHECK(call)                                                                                   \
  do {                                                                                                     \
    cudaError_t err_ = (call);                                                                             \
    if (err_ != cudaSuccess) ::tachyon::fail(#call, " failed: ", cudaGetErrorString(err_), " (", __FILE__, \
                                             ":", __LINE__, ")");                                          \
  } while (0)

// After a kernel launch: launch errors now, not at the next sync.
#define CUDA_CHECK_LAUNCH(name) CUDA_CHECK(cudaGetLastError())
