#include "cpu/all_reduce.h"

#include <algorithm>
#include <cstring>

#include "cpu/error.h"

namespace tachyon {

AllReduce::AllReduce(int size, size_t max_elems) : size_(size), bufs_(size, nullptr) {
  if (size > 1) result_.resize(max_elems);
}

void AllReduce::barrier() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (aborted_) fail("another tensor-parallel rank failed this step");
  const long gen = generation_;
  if (++waiting_ == size_) {
    waiting_ = 0;
    ++generation_;
    cv_.notify_all();
    return;
  }
  cv_.wait(lock, [&] { return generation_ != gen || aborted_; });
  if (generation_ == gen) fail("another tensor-parallel rank failed this step");
}

void AllReduce::abort() {
  std::lock_guard<std::mutex> lock(mutex_);
  aborted_ = true;
  cv_.notify_all();
}

void AllReduce::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  aborted_ = false;
  waiting_ = 0;
}

void AllReduce::sum(int rank, float* buf, size_t n) {
  if (size_ == 1) return;
  if (n > result_.size()) fail("all-reduce of ", n, " floats exceeds its buffer of ", result_.size());
  bufs_[rank] = buf;
  barrier();  // every rank's partial is written
  // Rank r reduces its share of the elements (reduce-scatter) ...
  const size_t begin = n * rank / size_, end = n * (rank + 1) / size_;
  for (size_t e = begin; e < end; ++e) {
    float s = bufs_[0][e];
    for (int j = 1; j < size_; ++j) s += bufs_[j][e];
    result_[e] = s;
  }
  barrier();  // every share is reduced
  // ... and every rank copies the whole (all-gather). The next call's first barrier keeps result_
  // from being overwritten before every rank has copied it.
  std::memcpy(buf, result_.data(), n * sizeof(float));
}

}  // namespace tachyon
