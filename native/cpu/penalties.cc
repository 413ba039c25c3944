#include "cpu/penalties.h"

#include <algorithm>

namespace tachyon {

PenaltyCounts::PenaltyCounts(int num_slots, int vocab_size) : vocab_size_(vocab_size), counts_(num_slots), in_prompt_(num_slots) {}

void PenaltyCounts::restart(int slot, const int32_t* tokens, int n, int n_prompt) {
  std::vector<int32_t>& counts = counts_[slot];
  std::vector<uint8_t>& prompt = in_prompt_[slot];
  counts.assign(vocab_size_, 0);
  prompt.assign(vocab_size_, 0);
  for (int i = 0; i < n_prompt; ++i) prompt[tokens[i]] = 1;
  for (int i = n_prompt; i < n; ++i) ++counts[tokens[i]];
}

void PenaltyCounts::count(int slot, int token) { ++counts_[slot][token]; }

void PenaltyCounts::apply(int slot, const SamplingParams& p, float* logits) const {
  const int32_t* counts = counts_[slot].data();
  const uint8_t* prompt = in_prompt_[slot].data();
  const float rep = p.repetition_penalty, freq = p.frequency_penalty, pres = p.presence_penalty;
  for (int v = 0; v < vocab_size_; ++v) {
    const int c = counts[v];
    float l = logits[v];
    if (rep != 1.0f && (c > 0 || prompt[v])) l = l > 0 ? l / rep : l * rep;
    if (c > 0) l -= freq * static_cast<float>(c) + pres;
    logits[v] = l;
  }
}

}  // namespace tachyon
