#include <cfloat>

#include "cuda/cuda_check.h"
#include "cpu/seeded_uniform.h"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"
#include "cuda/sampling.h"

namespace tachyon {

namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kStatsThreads = 256;
constexpr int kSlice = 4096;  // logits per block of the first pass

struct Best {
  float v;
  int i;
};

// Higher value first, lower index on ties; NaN ranks last.
__device__ __forceinline__ bool better(Best a, Best b) {
  return a.v > b.v || (a.v == b.v && a.i < b.i && a.i >= 0) || (b.i < 0 && a.i >= 0);
}

__device__ __forceinline__ float clean(float v) { return isnan(v) ? -INFINITY : v; }

__device__ Best block_best(Best b, Best* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    if (better(other, b)) b = other;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = b;
  __syncthreads();
  Best r = scratch[0];
  for (int w = 1; w < static_cast<int>(blockDim.x) / 32; ++w)
    if (better(scratch[w], r)) r = scratch[w];
  __syncthreads();
  return r;
}

// Order-preserving map of floats onto unsigned ints (for threshold searches).
__device__ __forceinline__ uint32_t key_of(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// A row's slice of kSlice logits: its best (value, index) and the sum of exp(logit - best).
struct SliceStats {
  float best;
  int index;
  float sum;
};

// grid (slice, row): the first pass over the logits spread over many blocks, so a few rows do not
// leave most of the GPU idle while one block per row walks 128K logits twice.
__global__ void __launch_bounds__(kStatsThreads) slice_stats_kernel(const float* logits, int V, SliceStats* stats) {
  __shared__ Best best_scratch[kStatsThreads / 32];
  __shared__ float sum_scratch[32];
  pdl_wait();
  const float* l = logits + static_cast<size_t>(blockIdx.y) * V;
  const int begin = blockIdx.x * kSlice, end = min(V, begin + kSlice);
  Best b{-INFINITY, -1};
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x)
    if (better(Best{clean(l[i]), i}, b)) b = Best{clean(l[i]), i};
  const Best top = block_best(b, best_scratch);
  float s = 0.0f;
  if (top.v > -INFINITY)
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) s += __expf(clean(l[i]) - top.v);
  s = block_sum(s, sum_scratch);
  if (threadIdx.x == 0) stats[static_cast<size_t>(blockIdx.y) * gridDim.x + blockIdx.x] = SliceStats{top.v, top.i, s};
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* raw, const float* adjusted, int V,
                                                          const DeviceSamplingParams* params, int top_n, int32_t* tokens,
                                                          float* logprobs, int32_t* top_ids, float* top_logprobs,
                                                          const SliceStats* raw_stats, const SliceStats* adjusted_stats,
                                                          int slices) {
  __shared__ Best best_scratch[kWarps];
  __shared__ float sum_scratch[kWarps];
  __shared__ float chunk_prefix[kThreads];
  __shared__ int chosen;
  pdl_wait();
  const int row = blockIdx.x, tid = threadIdx.x;
  const float* lr = raw + static_cast<size_t>(row) * V;     // logprobs come from these
  const float* l = adjusted + static_cast<size_t>(row) * V;  // the choice from these
  const DeviceSamplingParams p = params[row];

  // The raw distribution's log of the sum of exps, from the slices in order.
  const SliceStats* st = raw_stats + static_cast<size_t>(row) * slices;
  Best raw_top{-INFINITY, -1};
  for (int j = 0; j < slices; ++j)
    if (better(Best{st[j].best, st[j].index}, raw_top)) raw_top = Best{st[j].best, st[j].index};
  float s = 0.0f;
  for (int j = 0; j < slices; ++j)
    if (st[j].best > -INFINITY) s += st[j].sum * __expf(st[j].best - raw_top.v);
  const float lse = raw_top.v + logf(s);
  // The best adjusted logit: the greedy choice and the reference for the filters.
  Best top = raw_top;
  if (adjusted != raw) {
    const SliceStats* sa = adjusted_stats + static_cast<size_t>(row) * slices;
    top = Best{-INFINITY, -1};
    for (int j = 0; j < slices; ++j)
      if (better(Best{sa[j].best, sa[j].index}, top)) top = Best{sa[j].best, sa[j].index};
  }
  const float m = top.v;

  // Top logprobs: repeatedly the best element ranked after the previous one.
  Best prev{INFINITY, -1};
  for (int r = 0; r < p.num_logprobs; ++r) {
    Best c{-INFINITY, -1};
    for (int i = tid; i < V; i += kThreads) {
      const float v = clean(lr[i]);
      const bool after = v < prev.v || (v == prev.v && i > prev.i);
      if (after && better(Best{v, i}, c)) c = Best{v, i};
    }
    prev = block_best(c, best_scratch);
    if (tid == 0) {
      top_ids[static_cast<size_t>(row) * top_n + r] = prev.i;
      top_logprobs[static_cast<size_t>(row) * top_n + r] = prev.v - lse;
    }
  }

  int token = top.i;
  if (p.temperature > 0.0f && p.top_k != 1) {
    const float inv_t = 1.0f / p.temperature;
    uint32_t lo = 0;  // keep logits whose key >= lo
    if (p.top_k > 0 && p.top_k < V) {
      // Largest key with at least k logits at or above it.
      uint32_t kth = 0;
      for (int bit = 31; bit >= 0; --bit) {
        const uint32_t cand = kth | (1u << bit);
        float c = 0.0f;
        for (int i = tid; i < V; i += kThreads) c += key_of(clean(l[i])) >= cand ? 1.0f : 0.0f;
        if (block_sum(c, sum_scratch) >= static_cast<float>(p.top_k)) kth = cand;
      }
      lo = kth;
    }
    if (p.top_p < 1.0f) {
      float part = 0.0f;
      for (int i = tid; i < V; i += kThreads)
        if (key_of(clean(l[i])) >= lo) part += __expf((clean(l[i]) - m) * inv_t);
      const float goal = p.top_p * block_sum(part, sum_scratch);
      // Largest threshold whose kept mass still reaches top_p of the total.
      uint32_t t = 0;
      for (int bit = 31; bit >= 0; --bit) {
        const uint32_t cand = t | (1u << bit);
        const uint32_t at = max(cand, lo);
        float mass = 0.0f;
        for (int i = tid; i < V; i += kThreads)
          if (key_of(clean(l[i])) >= at) mass += __expf((clean(l[i]) - m) * inv_t);
        if (block_sum(mass, sum_scratch) >= goal) t = cand;
      }
      lo = max(lo, t);
    }
    if (p.min_p > 0.0f) lo = max(lo, key_of(m + p.temperature * logf(p.min_p)));
    lo = min(lo, key_of(m));  // the best token is always kept

    // Kept mass per contiguous chunk, then a walk in index order to the drawn point.
    const int chunk = (V + kThreads - 1) / kThreads;
    const int begin = min(V, tid * chunk), end = min(V, begin + chunk);
    float mine = 0.0f;
    for (int i = begin; i < end; ++i)
      if (key_of(clean(l[i])) >= lo) mine += __expf((clean(l[i]) - m) * inv_t);
    chunk_prefix[tid] = mine;
    if (tid == 0) chosen = -1;
    __syncthreads();
    if (tid == 0) {
      float run = 0.0f;
      for (int t = 0; t < kThreads; ++t) {
        const float c = chunk_prefix[t];
        chunk_prefix[t] = run;
        run += c;
      }
      sum_scratch[0] = run;
    }
    __syncthreads();
    const float target = static_cast<float>(uniform_from(p.seed, p.counter)) * sum_scratch[0];
    float cum = chunk_prefix[tid];
    if (target >= cum && target < cum + mine) {
      for (int i = begin; i < end; ++i) {
        if (key_of(clean(l[i])) < lo) continue;
        cum += __expf((clean(l[i]) - m) * inv_t);
        if (target < cum) {
          chosen = i;
          break;
        }
      }
    }
    __syncthreads();
    if (chosen >= 0) token = chosen;
  }
  if (tid == 0) {
    tokens[row] = token;
    logprobs[row] = clean(lr[token]) - lse;
  }
}

}  // namespace

// Stats of the raw logits, then of the adjusted ones.
size_t sample_workspace_bytes(int rows, int V) {
  return 2 * static_cast<size_t>(rows) * ((V + kSlice - 1) / kSlice) * sizeof(SliceStats);
}

void launch_sample(const float* raw, const float* adjusted, int rows, int V, const DeviceSamplingParams* params, int top_n,
                   int32_t* tokens, float* logprobs, int32_t* top_ids, float* top_logprobs, void* workspace, cudaStream_t s) {
  if (rows == 0) return;
  const int slices = (V + kSlice - 1) / kSlice;
  auto* raw_stats = static_cast<SliceStats*>(workspace);
  SliceStats* adjusted_stats = raw_stats + static_cast<size_t>(rows) * slices;
  launch_pdl("slice_stats_kernel", slice_stats_kernel, dim3(slices, rows), kStatsThreads, 0, s, raw, V, raw_stats);
  if (adjusted != raw)
    launch_pdl("slice_stats_kernel", slice_stats_kernel, dim3(slices, rows), kStatsThreads, 0, s, adjusted, V, adjusted_stats);
  launch_pdl("sample_kernel", sample_kernel, rows, kThreads, 0, s, raw, adjusted, V, params, top_n, tokens, logprobs,
             top_ids, top_logprobs, static_cast<const SliceStats*>(raw_stats), static_cast<const SliceStats*>(adjusted_stats),
             slices);
}

}  // namespace tachyon
