// Page-locked host memory for the step's staging vectors: copies from it are
// true DMA (asynchronous, no staging copy by the driver), which matters when
// a decode step's block tables are a megabyte and the step is a few ms.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <new>
#include <vector>

namespace tachyon {

template <typename T>
struct PinnedAllocator {
  using value_type = T;
  PinnedAllocator() = default;
  template <typename U>
  PinnedAllocator(const PinnedAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = nullptr;
    if (cudaHostAlloc(&p, n * sizeof(T), cudaHostAllocDefault) != cudaSuccess) {
      cudaGetLastError();
      throw std::bad_alloc();
    }
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { cudaFreeHost(p); }
  template <typename U>
  bool operator==(const PinnedAllocator<U>&) const { return true; }
  template <typename U>
  bool operator!=(const PinnedAllocator<U>&) const { return false; }
};

template <typename T>
using PinnedVector = std::vector<T, PinnedAllocator<T>>;

}  // namespace tachyon
