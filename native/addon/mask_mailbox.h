// Hands a step's grammar bitmasks from the JS thread, which computes them
// while the forward pass runs, to the step's worker thread, which needs them
// only when it samples.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "cpu/error.h"

namespace tachyon {

class MaskMailbox {
 public:
  // Before a step that expects masks: forget the last step's delivery.
  void reset(size_t words) {
    std::lock_guard<std::mutex> lock(mutex_);
    state_ = State::kWaiting;
    words_ = words;
    error_.clear();
  }

  void deliver(const int32_t* data, size_t words) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_ != State::kWaiting) return;
    if (words != words_) {
      error_ = "the grammar masks have " + std::to_string(words) + " words, expected " + std::to_string(words_);
      state_ = State::kFailed;
    } else {
      masks_.assign(data, data + words);
      state_ = State::kReady;
    }
    ready_.notify_all();
  }

  void deliver_error(const std::string& why) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_ != State::kWaiting) return;
    error_ = why;
    state_ = State::kFailed;
    ready_.notify_all();
  }

  // On the worker thread. The JS side always delivers or fails right after starting the
  // step; the timeout only turns a bug there into a failed step instead of a hung runtime.
  const int32_t* wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ready_.wait_for(lock, std::chrono::seconds(60), [this] { return state_ != State::kWaiting; }))
      fail_step("the grammar masks for this step did not arrive within 60 s");
    if (state_ == State::kFailed) fail_step("the grammar masks for this step could not be computed: " + error_);
    return masks_.data();
  }

 private:
  enum class State { kIdle, kWaiting, kReady, kFailed };
  [[noreturn]] static void fail_step(const std::string& why) { tachyon::fail(why); }

  std::mutex mutex_;
  std::condition_variable ready_;
  State state_ = State::kIdle;
  size_t words_ = 0;
  std::vector<int32_t> masks_;
  std::string error_;
};

}  // namespace tachyon
