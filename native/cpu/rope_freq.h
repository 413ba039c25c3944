// Rotary inverse frequencies [rotary_dim / 2] as transformers computes them
// (float32 powers, then default, linear or llama3 scaling); shared by the backends.
#pragma once
#include <cmath>
#include <vector>

#include "cpu/model_config.h"

namespace tachyon {

std::vector<float> rope_inv_freq(const ModelConfig& config);

// The rotation of a pair at a position: the float32 angle position * inv_freq, its cosine
// and sine in double, rounded to float (the one formula both backends use).
inline void rope_rotation(int position, float inv_freq, float& cos_out, float& sin_out) {
  const float angle = static_cast<float>(position) * inv_freq;
  cos_out = static_cast<float>(std::cos(static_cast<double>(angle)));
  sin_out = static_cast<float>(std::sin(static_cast<double>(angle)));
}

// rope_rotation of every position and pair, [positions][inv_freq.size()][cos, sin].
std::vector<float> rope_cos_sin(const std::vector<float>& inv_freq, int positions);

}  // namespace tachyon
