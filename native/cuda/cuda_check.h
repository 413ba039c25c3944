// Every CUDA and cuBLASLt call is checked; a failure throws tachyon::Error
// naming the call, which reaches JavaScript as an Error (never an abort).
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include "cpu/error.h"

#define CUDA_CHECK(call)                                                                                   \
  do {                                                                                                     \
    cudaError_t err_ = (call);                                                                             \
    if (err_ != cudaSuccess) ::tachyon::fail(#call, " failed: ", cudaGetErrorString(err_), " (", __FILE__, \
                                             ":", __LINE__, ")");                                          \
  } while (0)

#define CUBLAS_CHECK(call)                                                                                    \
  do {                                                                                                        \
    cublasStatus_t st_ = (call);                                                                              \
    if (st_ != CUBLAS_STATUS_SUCCESS) ::tachyon::fail(#call, " failed: cuBLAS status ", static_cast<int>(st_), \
                                                      " (", __FILE__, ":", __LINE__, ")");                    \
  } while (0)

// After a kernel launch: launch errors now, not at the next sync.
#define CUDA_CHECK_LAUNCH(name) CUDA_CHECK(cudaGetLastError())
