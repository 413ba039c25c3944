// The token counts behind presence, frequency and repetition penalties: one
// row per penalty slot, restarted from a sequence's history when the engine
// gives it the slot, then advanced by the runtime with each sampled token, so
// a step carries no history for sequences already counted.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/sampling_columns.h"

namespace tachyon {

class PenaltyCounts {
 public:
  PenaltyCounts(int num_slots, int vocab_size);
  // tokens[0, n): the sequence so far; the first n_prompt are its prompt.
  void restart(int slot, const int32_t* tokens, int n, int n_prompt);
  void count(int slot, int token);
  // vLLM's semantics: repetition divides positive logits (multiplies negative ones) of tokens
  // in the prompt or the output; frequency and presence subtract count * f + (count > 0) * p
  // over output tokens only (OpenAI's definition).
  void apply(int slot, const SamplingParams& p, float* logits) const;

 private:
  int vocab_size_;
  std::vector<std::vector<int32_t>> counts_;   // [slots][vocab] output occurrences, allocated on first use
  std::vector<std::vector<uint8_t>> in_prompt_; // [slots][vocab]
};

}  // namespace tachyon
