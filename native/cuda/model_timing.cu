// --profile: one line per step on stderr, with layer 0's ops.
#include "cuda/cuda_model.h"

#include <chrono>
#include <cstdio>
#include <string>

namespace tachyon {

// --profile: one line per step on stderr (host enqueue, GPU forward, GPU sampling + copies).
void CudaModel::report_timing(int T, int S, std::chrono::steady_clock::time_point start,
                              std::chrono::steady_clock::time_point enqueued) {
  float fwd = 0, rest = 0;
  CUDA_CHECK(cudaEventElapsedTime(&fwd, events_[0], events_[1]));
  CUDA_CHECK(cudaEventElapsedTime(&rest, events_[1], events_[2]));
  const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const double host = std::chrono::duration<double, std::milli>(enqueued - start).count();
  std::string ops;
  for (int i = 0; i + 1 < op_marks_; ++i) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, op_events_[i], op_events_[i + 1]));
    ops += std::string(" ") + op_names_[i] + " " + std::to_string(static_cast<int>(ms * 1000)) + "us";
  }
  std::fprintf(stderr, "cuda step: %d tokens %d seqs: host enqueue %.2f ms, gpu forward %.2f ms, gpu sample+copy %.2f ms, wall %.2f ms; layer 0:%s\n",
               T, S, host, fwd, rest, wall, ops.c_str());
}

}  // namespace tachyon
