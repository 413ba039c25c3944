// cuBLASLt calls checked as cuda_check.h checks CUDA's: a failure throws tachyon::Error naming
// the call.
#pragma once
#include <cublasLt.h>

#include "cuda/cuda_check.h"

#define CUBLAS_CHECK(call)                                                                                    \
  do {                                                                                                        \
    cublasStatus_t st_ = (call);                                                                              \
    if (st_ != CUBLAS_STATUS_SUCCESS) ::tachyon::fail(#call, " failed: cuBLAS status ", static_cast<int>(st_), \
                                                      " (", __FILE__, ":", __LINE__, ")");                    \
  } while (0)
