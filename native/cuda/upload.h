// Host vectors copied to new device buffers (at load: weights, tables).
#pragma once
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"

namespace tachyon {

template <typename T>
DeviceBuffer upload(const std::vector<T>& host, const char* what) {
  DeviceBuffer d(host.size() * sizeof(T), what);
  if (!host.empty()) CUDA_CHECK(cudaMemcpy(d.as<void>(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

}  // namespace tachyon
