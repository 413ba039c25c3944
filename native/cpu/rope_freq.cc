#include "cpu/rope_freq.h"

#include <cmath>

namespace tachyon {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int half = c.rotary_dim / 2;  // head_dim, or GPT-J's leading rotary_dim; 0 for learned positions
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(c.rotary_dim);
    inv_freq[i] = 1.0f / std::pow(static_cast<float>(c.rope_theta), exponent);
  }
  if (c.rope_scaling == RopeScaling::kLinear) {
    for (auto& f : inv_freq) f = static_cast<float>(f / c.rope_factor);
  } else if (c.rope_scaling == RopeScaling::kLlama3) {
    const double old_ctx = c.rope_original_max_positions;
    const double low_wavelen = old_ctx / c.rope_low_freq_factor;
    const double high_wavelen = old_ctx / c.rope_high_freq_factor;
    for (auto& f : inv_freq) {
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > low_wavelen) {
        f = static_cast<float>(f / c.rope_factor);
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
        f = static_cast<float>((1.0 - smooth) * f / c.rope_factor + smooth * f);
      }
    }
  }
  return inv_freq;
}

std::vector<float> rope_cos_sin(const std::vector<float>& inv_freq, int positions) {
  const size_t half = inv_freq.size();
  std::vector<float> table(static_cast<size_t>(positions) * half * 2);
  for (int p = 0; p < positions; ++p)
    for (size_t i = 0; i < half; ++i) rope_rotation(p, inv_freq[i], table[(p * half + i) * 2], table[(p * half + i) * 2 + 1]);
  return table;
}

}  // namespace tachyon
