// NVTX ranges on the host timeline (what nsys shows beside the kernels), only
// while --profile is on: a step, the wait for grammar masks, the wait for the GPU.
#pragma once
#include <nvtx3/nvToolsExt.h>

namespace tachyon {

class NvtxRange {
 public:
  NvtxRange(bool on, const char* name) : on_(on) {
    if (on_) nvtxRangePushA(name);
  }
  ~NvtxRange() {
    if (on_) nvtxRangePop();
  }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;

 private:
  bool on_;
};

}  // namespace tachyon
