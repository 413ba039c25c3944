// Whether wgmma kernels can run here: an sm_90 device, and the sm_90a code of this build is what it
// runs. A kernel built for 80, 89 and 90a reports from whichever code the device picked.
#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"
#include "cuda/wgmma.cuh"

namespace tachyon {

namespace {

__global__ void wgmma_built_kernel(int* out) { *out = wgmma_built() ? 1 : 0; }

}  // namespace

bool wgmma_available() {
  static const bool available = [] {
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess || major != 9 || minor != 0)
      return false;
    DeviceBuffer flag(sizeof(int), "the wgmma probe");
    wgmma_built_kernel<<<1, 1>>>(flag.as<int>());
    int v = 0;
    CUDA_CHECK(cudaMemcpy(&v, flag.as<void>(), sizeof(int), cudaMemcpyDeviceToHost));
    return v == 1;
  }();
  return available;
}

}  // namespace tachyon
