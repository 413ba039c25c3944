// The all-reduce of CPU tensor parallelism: ranks are threads of one process,
// each with its own buffer, as each GPU has its own memory under NCCL. Every
// element is summed in rank order (0, 1, ..., N-1), so all ranks hold the
// same bits, and with one rank the buffer is left as it is.
#pragma once
#include <condition_variable>
#include <mutex>
#include <vector>

namespace tachyon {

class AllReduce {
 public:
  // max_elems: the largest buffer any call sums.
  AllReduce(int size, size_t max_elems);

  int size() const { return size_; }
  // Every rank calls with its own buf of n floats (the same n); on return each holds the sum.
  void sum(int rank, float* buf, size_t n);
  // Every rank calls; returns when all have. Throws once abort() was called.
  void barrier();
  // A rank failed: every rank waiting now or later throws instead of waiting for it.
  void abort();
  // Ready for the next step after an abort (no rank may be inside sum or barrier).
  void reset();

 private:
  int size_;
  std::vector<float*> bufs_;
  std::vector<float> result_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;
  long generation_ = 0;
  bool aborted_ = false;
};

}  // namespace tachyon
