// The benches' timers: CUDA events around repeated calls on one stream (the GEMM benches,
// gemm-invariance.cu and gemm-scale-modes.cu), or around replays of a captured graph (pdl-chain.cu,
// weight-stream.cu).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <functional>
#include <vector>

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

// Median microseconds of a replay of the graph that record() launches into stream st (captured
// once), over `timed` replays after `warm` unmeasured ones.
template <typename Record>
float graph_median_us(cudaStream_t st, Record record, int warm, int timed) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  record();
  CUDA_CHECK(cudaStreamEndCapture(st, &graph));
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> us;
  for (int r = 0; r < warm + timed; ++r) {
    CUDA_CHECK(cudaEventRecord(start, st));
    CUDA_CHECK(cudaGraphLaunch(exec, st));
    CUDA_CHECK(cudaEventRecord(stop, st));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (r >= warm) us.push_back(ms * 1000.0f);
  }
  std::sort(us.begin(), us.end());
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  CUDA_CHECK(cudaGraphDestroy(graph));
  return us[us.size() / 2];
}

}  // namespace bench
