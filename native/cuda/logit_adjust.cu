#include "cuda/logit_adjust.h"

#include "cuda/cuda_check.h"

namespace tachyon {

namespace {

constexpr int kThreads = 1024;

__global__ void restart_slots_kernel(int32_t* counts, uint8_t* in_prompt, int V, const SlotRestart* restarts,
                                     const int32_t* tokens) {
  const SlotRestart r = restarts[blockIdx.x];
  int32_t* c = counts + static_cast<size_t>(r.slot) * V;
  uint8_t* p = in_prompt + static_cast<size_t>(r.slot) * V;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    c[v] = 0;
    p[v] = 0;
  }
  __syncthreads();
  for (int i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) {
    const int token = tokens[i];
    if (i - r.begin < r.prompt) p[token] = 1;
    else atomicAdd(&c[token], 1);
  }
}

__global__ void __launch_bounds__(kThreads) adjust_kernel(const float* raw, float* adjusted, int V,
                                                          const DeviceSamplingParams* params, const int32_t* counts,
                                                          const uint8_t* in_prompt, const int32_t* bias_ids,
                                                          const float* bias_values, const int32_t* masks, int words) {
  const int row = blockIdx.x, tid = threadIdx.x;
  const DeviceSamplingParams p = params[row];
  const float* r = raw + static_cast<size_t>(row) * V;
  float* a = adjusted + static_cast<size_t>(row) * V;
  for (int v = tid; v < V; v += kThreads) a[v] = r[v];
  if (p.bias_end > p.bias_begin) {
    __syncthreads();
    // Atomic: a min_tokens ban may name a token logit_bias also names.
    for (int k = p.bias_begin + tid; k < p.bias_end; k += kThreads) atomicAdd(&a[bias_ids[k]], bias_values[k]);
    __syncthreads();
  }
  const bool penalized = p.penalty_slot >= 0 &&
                         (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f || p.repetition_penalty != 1.0f);
  const int32_t* mask = p.mask_row >= 0 ? masks + static_cast<size_t>(p.mask_row) * words : nullptr;
  bool masked = false;
  if (mask) {
    int any = 0;
    for (int w = tid; w < words; w += kThreads) any |= mask[w] != 0;
    // A mask that allows nothing would leave nothing to sample; it is ignored, as on the CPU.
    masked = __syncthreads_or(any);
  }
  if (!penalized && !masked) return;
  const int32_t* c = penalized ? counts + static_cast<size_t>(p.penalty_slot) * V : nullptr;
  const uint8_t* in_p = penalized ? in_prompt + static_cast<size_t>(p.penalty_slot) * V : nullptr;
  for (int v = tid; v < V; v += kThreads) {
    float l = a[v];
    if (penalized) {
      const int n = c[v];
      if (p.repetition_penalty != 1.0f && (n > 0 || in_p[v])) l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
      if (n > 0) l -= p.frequency_penalty * static_cast<float>(n) + p.presence_penalty;
    }
    if (masked && !((mask[v >> 5] >> (v & 31)) & 1)) l = -INFINITY;
    a[v] = l;
  }
}

__global__ void count_sampled_kernel(int32_t* counts, int V, const DeviceSamplingParams* params, const int32_t* tokens,
                                     int rows) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const int slot = params[i].penalty_slot;
  // Slots are distinct within a step: no two rows touch one counter.
  if (slot >= 0 && tokens[i] >= 0) counts[static_cast<size_t>(slot) * V + tokens[i]] += 1;
}

}  // namespace

void launch_restart_slots(int32_t* counts, uint8_t* in_prompt, int V, const SlotRestart* restarts, int n,
                          const int32_t* tokens, cudaStream_t s) {
  if (n == 0) return;
  restart_slots_kernel<<<n, kThreads, 0, s>>>(counts, in_prompt, V, restarts, tokens);
  CUDA_CHECK(cudaGetLastError());
}

void launch_adjust_logits(const float* raw, float* adjusted, int rows, int V, const DeviceSamplingParams* params,
                          const int32_t* counts, const uint8_t* in_prompt, const int32_t* bias_ids,
                          const float* bias_values, const int32_t* masks, int words, cudaStream_t s) {
  if (rows == 0) return;
  adjust_kernel<<<rows, kThreads, 0, s>>>(raw, adjusted, V, params, counts, in_prompt, bias_ids, bias_values, masks, words);
  CUDA_CHECK(cudaGetLastError());
}

void launch_count_sampled(int32_t* counts, int V, const DeviceSamplingParams* params, const int32_t* tokens, int rows,
                          cudaStream_t s) {
  if (rows == 0) return;
  count_sampled_kernel<<<(rows + 255) / 256, 256, 0, s>>>(counts, V, params, tokens, rows);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace tachyon
