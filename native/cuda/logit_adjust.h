// What sampling sees beyond the raw logits, on the device: logit_bias,
// presence / frequency / repetition penalties over per-slot token counts kept
// here (never copied back), and grammar bitmasks. Semantics and order as the
// CPU backend (native/cpu/model.cc adjust_logits, native/cpu/penalties.h).
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

#include "cuda/sampling.h"

namespace tachyon {

// One slot restart: counts and prompt flags of `slot` rebuilt from tokens [begin, end), the
// first `prompt` of them prompt tokens.
struct SlotRestart {
  int32_t slot, begin, end, prompt;
};

// counts [slots, V] int32 (output occurrences), in_prompt [slots, V] uint8.
void launch_restart_slots(int32_t* counts, uint8_t* in_prompt, int V, const SlotRestart* restarts, int n,
                          const int32_t* tokens, cudaStream_t s);

// adjusted[rows, V] from raw[rows, V]: + bias (CSR ranges in params), penalties, then -inf
// where the row's grammar mask ([mask_rows, words] int32, bit set = allowed) forbids.
void launch_adjust_logits(const float* raw, float* adjusted, int rows, int V, const DeviceSamplingParams* params,
                          const int32_t* counts, const uint8_t* in_prompt, const int32_t* bias_ids,
                          const float* bias_values, const int32_t* masks, int words, cudaStream_t s);

// counts[slot, token] += 1 for each sampled row with a penalty slot.
void launch_count_sampled(int32_t* counts, int V, const DeviceSamplingParams* params, const int32_t* tokens, int rows,
                          cudaStream_t s);

}  // namespace tachyon
