// TACHYON_PROFILE_STEPS=FIRST:COUNT brackets a model's steps FIRST .. FIRST + COUNT - 1 (counted
// from 0 over every launch, prefill and decode alike) with cudaProfilerStart / cudaProfilerStop, so
// `ncu --profile-from-start off` measures whole steps in the steady state, CUDA graph replays
// included, without the events --profile puts between kernels (which break PDL's overlap and add a
// few microseconds an op). bench/profile-step.sh drives it. Unset: nothing happens.
#pragma once
#include <cuda_profiler_api.h>

#include <cstdio>
#include <cstdlib>

#include "cuda/cuda_check.h"

namespace tachyon {

class ProfiledSteps {
 public:
  ProfiledSteps() {
    const char* v = std::getenv("TACHYON_PROFILE_STEPS");
    if (!v || !*v) return;
    long first = 0, count = 0;
    if (std::sscanf(v, "%ld:%ld", &first, &count) != 2 || first < 0 || count < 1) {
      std::fprintf(stderr, "cuda: TACHYON_PROFILE_STEPS=%s is not FIRST:COUNT; ignored\n", v);
      return;
    }
    first_ = first;
    end_ = first + count;
  }

  // At the start of each step's launch, before any of its copies or kernels.
  void at_launch() {
    if (first_ < 0) return;
    if (step_ == first_) CUDA_CHECK(cudaProfilerStart());
    if (step_ == end_) CUDA_CHECK(cudaProfilerStop());
    ++step_;
  }

 private:
  long first_ = -1, end_ = -1, step_ = 0;
};

}  // namespace tachyon
