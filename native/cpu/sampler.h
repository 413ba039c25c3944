// Token sampling from one row of logits. Randomness is a pure function of
// (seed, position), so a seeded request draws the same tokens whatever else
// runs beside it, on any run.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/batch.h"
#include "cpu/seeded_uniform.h"

namespace tachyon {

struct SampleResult {
  int token;
  float logprob;  // log_softmax of the raw logits at token
};

class Sampler {
 public:
  explicit Sampler(int vocab_size);
  // Temperature, then top-k, top-p and min-p (transformers' order), then a
  // draw. counter is the position the new token will take.
  SampleResult sample(const float* logits, const SamplingParams& params, uint64_t counter);
  // The n highest raw-logit tokens with their logprobs, best first.
  void top_logprobs(const float* logits, int n, int32_t* ids, float* logprobs);
  // log(sum(exp(logits))) over the vocabulary.
  float log_sum_exp(const float* logits) const;

 private:
  int vocab_size_;
  std::vector<int32_t> order_;  // [vocab] candidate token ids
  std::vector<float> probs_;    // [vocab]
};

}  // namespace tachyon
