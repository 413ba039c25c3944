// Token sampling on the GPU with the CPU backend's semantics: temperature,
// then top-k, top-p and min-p, then a draw whose uniform number is the same
// (seed, position) hash the CPU uses. Only chosen tokens and requested
// logprobs are copied back.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

namespace tachyon {

struct DeviceSamplingParams {
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  uint64_t seed;
  int32_t num_logprobs;
  uint64_t counter;  // position the new token will take
  // Logit adjustments (logit_adjust.h): penalties over the slot's counts, this row's range of
  // the step's logit-bias arrays, its grammar bitmask row.
  float presence_penalty;
  float frequency_penalty;
  float repetition_penalty;
  int32_t penalty_slot;  // -1: none
  int32_t bias_begin, bias_end;
  int32_t mask_row;      // -1: none
};

// One row per sampled sequence: raw logits [rows, V]; adjusted: the logits sampling sees
// (after bias, penalties and grammar masks), or raw itself when nothing adjusts them;
// params [rows]; outputs [rows] and [rows, top_n]. Returned logprobs and top logprobs are
// the raw distribution's. workspace: sample_workspace_bytes(rows, V) of device memory.
size_t sample_workspace_bytes(int rows, int V);
void launch_sample(const float* raw, const float* adjusted, int rows, int V, const DeviceSamplingParams* params, int top_n,
                   int32_t* tokens, float* logprobs, int32_t* top_ids, float* top_logprobs, void* workspace, cudaStream_t s);

}  // namespace tachyon
