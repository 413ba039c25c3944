// The PDL switch pdl.cuh's launches read (tachyon::pdl_enabled), for bench programs built with
// library kernels but without kernels.cu, where the backend defines it. On unless a program turns
// it off.
#pragma once

namespace tachyon {
bool& pdl_enabled() {
  static bool on = true;
  return on;
}
}  // namespace tachyon
