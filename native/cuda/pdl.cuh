// Programmatic dependent launch (sm_90): a kernel launched with launch_pdl may
// be scheduled while the kernel before it in the stream is still running, and
// waits in pdl_wait() until that kernel has finished and its writes are
// visible. It hides the launch gap between the many small kernels of a decode
// step. Every kernel launched this way calls pdl_wait() before it reads what a
// kernel of the step writes or writes anything: before it, only the model's
// weights, the step's inputs (copied from the host ahead of its first kernel)
// and KV cache positions written by earlier steps, whose loads then overlap the
// kernels before. Elsewhere (older GPUs, TACHYON_PDL=0) launches are ordinary.
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "cuda/cuda_check.h"

namespace tachyon {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Whether launches use it: set once by the backend from the device and the environment.
bool& pdl_enabled();

// Every launch of the backend's kernels: programmatic (PDL where enabled) or ordinary (a kernel that
// a stream orders after an event rather than after a kernel; its pdl_wait() then returns at once);
// with `window`, the kernel's accesses within it take that L2 policy (an access-policy window).
template <typename... Params, typename... Args>
void launch_kernel(const char* name, bool programmatic, const cudaAccessPolicyWindow* window, void (*kernel)(Params...), dim3 grid,
                   dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared;
  config.stream = s;
  cudaLaunchAttribute attrs[2]{};
  attrs[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attrs[0].val.programmaticStreamSerializationAllowed = programmatic && pdl_enabled() ? 1 : 0;
  if (window) {
    attrs[1].id = cudaLaunchAttributeAccessPolicyWindow;
    attrs[1].val.accessPolicyWindow = *window;
  }
  config.attrs = attrs;
  config.numAttrs = window ? 2 : 1;
  const cudaError_t err = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (err != cudaSuccess) fail(name, " launch failed: ", cudaGetErrorString(err));
}

template <typename... Params, typename... Args>
void launch_pdl_window(const char* name, const cudaAccessPolicyWindow* window, void (*kernel)(Params...), dim3 grid,
                       dim3 block, size_t shared, cudaStream_t s, Args&&... args) {
  launch_kernel(name, true, window, kernel, grid, block, shared, s, std::forward<Args>(args)...);
}

template <typename... Params, typename... Args>
void launch_pdl(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared, cudaStream_t s,
                Args&&... args) {
  launch_kernel(name, true, nullptr, kernel, grid, block, shared, s, std::forward<Args>(args)...);
}

}  // namespace tachyon
