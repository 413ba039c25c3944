// A fixed pool of worker threads for data-parallel loops inside one step.
// parallel_for splits [0, n) into contiguous ranges, one per thread; every
// element is computed by exactly one thread with the same code, so results do
// not depend on the thread count.
#pragma once
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tachyon {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return num_threads_; }
  // fn(begin, end, thread_index) over disjoint ranges covering [0, n).
  void parallel_for(int n, const std::function<void(int, int, int)>& fn);

 private:
  void worker_loop(int index);

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int, int, int)>* job_ = nullptr;
  int job_n_ = 0;
  long generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;
};

}  // namespace tachyon
