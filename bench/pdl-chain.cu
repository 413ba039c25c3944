// What a kernel boundary costs at batch 1, where a Llama-3-8B step is 326 kernels and 0.9 ms more
// than reading its weights (bench/RESULTS.md, fourteenth session). A CUDA graph of LAYERS x 5 small
// kernels, replayed; each kernel one block, as batch 1's norms, RoPE and quantization are:
//   empty  pdl_wait() and nothing else: the launch and the wait alone
//   row    pdl_wait(), then a 4,096-float row the previous kernel wrote: load, block sum, scale,
//          store (an RMSNorm's shape: one dependent round trip to L2 and two barriers)
//   row+w  the same with a second, constant row (the norm weights) loaded before pdl_wait()
// each with programmatic dependent launch (as the backend launches) and without. Microseconds a
// kernel, the median of 20 replays. Build and run on the GPU machine: bash bench/pdl-chain.sh
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

#include "cuda/pdl.cuh"
#include "event-timing.h"
#include "pdl-switch.h"
#include "cuda/reduce.cuh"

using namespace tachyon;

constexpr int kRow = 4096;
constexpr int kThreads = 128;
constexpr int kKernels = 32 * 5;

__global__ void empty_kernel(float*, const float*, const float*) { pdl_wait(); }

template <bool PRELOAD>
__global__ void row_kernel(float* out, const float* in, const float* w) {
  __shared__ float scratch[32];
  float4 wv[kRow / 4 / kThreads];
  if (PRELOAD)
    for (int k = 0; k < kRow / 4 / kThreads; ++k) wv[k] = reinterpret_cast<const float4*>(w)[threadIdx.x + k * kThreads];
  pdl_wait();
  if (!PRELOAD)
    for (int k = 0; k < kRow / 4 / kThreads; ++k) wv[k] = reinterpret_cast<const float4*>(w)[threadIdx.x + k * kThreads];
  float4 v[kRow / 4 / kThreads];
  float ss = 0.0f;
  for (int k = 0; k < kRow / 4 / kThreads; ++k) {
    v[k] = reinterpret_cast<const float4*>(in)[threadIdx.x + k * kThreads];
    ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
  }
  const float inv = rsqrtf(block_sum(ss, scratch) / kRow + 1e-5f);
  for (int k = 0; k < kRow / 4 / kThreads; ++k)
    reinterpret_cast<float4*>(out)[threadIdx.x + k * kThreads] =
        make_float4(v[k].x * inv * wv[k].x, v[k].y * inv * wv[k].y, v[k].z * inv * wv[k].z, v[k].w * inv * wv[k].w);
}

// us a kernel: a graph of kKernels launches of `kernel` ping-ponging between two rows, replayed
// (the median of 20 replays after 3).
float time_chain(void (*kernel)(float*, const float*, const float*), bool programmatic, float* a, float* b, const float* w,
                 cudaStream_t s) {
  return bench::graph_median_us(s, [&] {
    for (int i = 0; i < kKernels; ++i) {
      float* out = i % 2 ? a : b;
      const float* in = i % 2 ? b : a;
      launch_kernel("chain", programmatic, nullptr, kernel, dim3(1), dim3(kThreads), 0, s, out, in, w);
    }
  }, 3, 20) / kKernels;
}

int main() {
  try {
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float *a, *b, *w;
    CUDA_CHECK(cudaMalloc(&a, kRow * 4));
    CUDA_CHECK(cudaMalloc(&b, kRow * 4));
    CUDA_CHECK(cudaMalloc(&w, kRow * 4));
    std::vector<float> ones(kRow, 1.0f);
    for (float* p : {a, b, w}) CUDA_CHECK(cudaMemcpy(p, ones.data(), kRow * 4, cudaMemcpyHostToDevice));
    std::printf("%d one-block kernels a graph, us a kernel (median of 20 replays)\n", kKernels);
    std::printf("%-8s %10s %10s\n", "kernel", "PDL", "plain");
    const struct {
      const char* name;
      void (*kernel)(float*, const float*, const float*);
    } kinds[] = {{"empty", empty_kernel}, {"row", row_kernel<false>}, {"row+w", row_kernel<true>}};
    for (const auto& k : kinds)
      std::printf("%-8s %10.2f %10.2f\n", k.name, time_chain(k.kernel, true, a, b, w, s), time_chain(k.kernel, false, a, b, w, s));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
