// The GEMM benches' timer (gemm-invariance.cu, gemm-scale-modes.cu): CUDA events around repeated
// calls on one stream.
#pragma once
#include <cuda_runtime.h>

#include <functional>

#include "cuda/cuda_check.h"

namespace bench {

// Mean microseconds of call(i) over kReps calls on stream st after a warm-up; i counts the calls, so
// that the caller can rotate over copies of the weights (the L2 holds 50 MB).
inline float time_us(const std::function<bool(int)>& call, cudaStream_t st) {
  constexpr int kWarm = 5, kReps = 50;
  for (int i = 0; i < kWarm; ++i)
    if (!call(i)) return -1.0f;
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  CUDA_CHECK(cudaEventRecord(start, st));
  for (int i = 0; i < kReps; ++i) call(kWarm + i);
  CUDA_CHECK(cudaEventRecord(stop, st));
  CUDA_CHECK(cudaEventSynchronize(stop));
  CUDA_CHECK(cudaGetLastError());
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms * 1000.0f / kReps;
}

}  // namespace bench
