#include "cpu/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tachyon {

// Higher logit first, lower id on ties; NaN ranks last so sorting stays a
// strict weak order whatever the model produced.
static bool ranks_before(const float* logits, int32_t a, int32_t b) {
  const float x = std::isnan(logits[a]) ? -INFINITY : logits[a];
  const float y = std::isnan(logits[b]) ? -INFINITY : logits[b];
  return x > y || (x == y && a < b);
}

Sampler::Sampler(int vocab_size) : vocab_size_(vocab_size), order_(vocab_size), probs_(vocab_size) {}

float Sampler::log_sum_exp(const float* logits) const {
  const float m = *std::max_element(logits, logits + vocab_size_);
  double sum = 0.0;
  for (int i = 0; i < vocab_size_; ++i) sum += std::exp(static_cast<double>(logits[i] - m));
  return m + static_cast<float>(std::log(sum));
}

SampleResult Sampler::sample(const float* logits, const SamplingParams& p, uint64_t counter) {
  const int V = vocab_size_;
  const float lse = log_sum_exp(logits);
  if (p.temperature == 0.0f || p.top_k == 1) {
    const int best = static_cast<int>(std::max_element(logits, logits + V) - logits);
    return {best, logits[best] - lse};
  }
  // Candidates best first; ties keep the lower token id first.
  auto better = [logits](int32_t a, int32_t b) { return ranks_before(logits, a, b); };
  std::iota(order_.begin(), order_.end(), 0);
  int n = V;
  if (p.top_k > 0 && p.top_k < V) {
    n = p.top_k;
    std::nth_element(order_.begin(), order_.begin() + (n - 1), order_.end(), better);
  }
  std::sort(order_.begin(), order_.begin() + n, better);
  const double inv_t = 1.0 / p.temperature;
  const float top = logits[order_[0]];
  double total = 0.0;
  for (int i = 0; i < n; ++i) {
    probs_[i] = static_cast<float>(std::exp((static_cast<double>(logits[order_[i]]) - top) * inv_t));
    total += probs_[i];
  }
  if (p.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double cum = 0.0;
    int keep = 0;
    while (keep < n) {
      cum += probs_[keep++];
      if (cum >= p.top_p * total) break;
    }
    n = keep;
    total = cum;
  }
  if (p.min_p > 0.0f) {  // probs_[0] is the largest
    const float threshold = p.min_p * probs_[0];
    int keep = 1;
    while (keep < n && probs_[keep] >= threshold) ++keep;
    n = keep;
    total = 0.0;
    for (int i = 0; i < n; ++i) total += probs_[i];
  }
  const double target = uniform_from(p.seed, counter) * total;
  double cum = 0.0;
  int chosen = order_[n - 1];
  for (int i = 0; i < n; ++i) {
    cum += probs_[i];
    if (target < cum) {
      chosen = order_[i];
      break;
    }
  }
  return {chosen, logits[chosen] - lse};
}

void Sampler::top_logprobs(const float* logits, int n, int32_t* ids, float* logprobs) {
  const float lse = log_sum_exp(logits);
  n = std::min(n, vocab_size_);
  std::iota(order_.begin(), order_.end(), 0);
  std::partial_sort(order_.begin(), order_.begin() + n, order_.end(),
                    [logits](int32_t a, int32_t b) { return ranks_before(logits, a, b); });
  for (int i = 0; i < n; ++i) {
    ids[i] = order_[i];
    logprobs[i] = logits[order_[i]] - lse;
  }
}

}  // namespace tachyon
