// The per-sequence sampling settings, listed once. Each column travels from
// the engine's batch (engine/sampling-columns.ts, a typed array per column
// named by its camelCase name) through the addon (which reads every column
// off this list) into SamplingParams; a test checks the two lists agree.
// Adding a knob: a line here and in sampling-columns.ts, then its use in the
// samplers (native/cpu/sampler.cc, native/cuda/sampling.cu).
#pragma once
#include <cstdint>

// X(c++ type, member, JS name, napi typed-array type, default)
#define TACHYON_SAMPLING_COLUMNS(X)                                                   \
  X(float, temperature, "temperature", napi_float32_array, 0.0f)   /* 0 = greedy */   \
  X(int32_t, top_k, "topK", napi_int32_array, 0)                   /* <= 0 = off */   \
  X(float, top_p, "topP", napi_float32_array, 1.0f)                /* 1 = off */      \
  X(float, min_p, "minP", napi_float32_array, 0.0f)                /* 0 = off */      \
  X(uint64_t, seed, "seed", napi_biguint64_array, 0)                                  \
  X(int32_t, num_logprobs, "numLogprobs", napi_int32_array, 0)     /* 0..20 */        \
  X(float, presence_penalty, "presencePenalty", napi_float32_array, 0.0f)             \
  X(float, frequency_penalty, "frequencyPenalty", napi_float32_array, 0.0f)           \
  X(float, repetition_penalty, "repetitionPenalty", napi_float32_array, 1.0f)         \
  /* The runtime's token-count row for this sequence's penalties; -1 = none. */       \
  X(int32_t, penalty_slot, "penaltySlot", napi_int32_array, -1)                       \
  /* Row of the step's grammar bitmasks that constrains this sequence; -1 = none. */  \
  X(int32_t, mask_row, "maskRow", napi_int32_array, -1)

namespace tachyon {

struct SamplingParams {
#define TACHYON_DECLARE_COLUMN(type, member, js, napi, init) type member = init;
  TACHYON_SAMPLING_COLUMNS(TACHYON_DECLARE_COLUMN)
#undef TACHYON_DECLARE_COLUMN

  bool penalized() const { return presence_penalty != 0.0f || frequency_penalty != 0.0f || repetition_penalty != 1.0f; }
};

constexpr int kMaxLogprobs = 20;

}  // namespace tachyon
