// Rotary inverse frequencies [head_dim / 2] as transformers computes them
// (float32 powers, then default, linear or llama3 scaling); shared by the backends.
#pragma once
#include <vector>

#include "cpu/model_config.h"

namespace tachyon {

std::vector<float> rope_inv_freq(const ModelConfig& config);

// (cos, sin) of each position's angle for each pair, [positions][inv_freq.size()][2]: the
// float32 angle position * inv_freq[i], its cosine and sine in double, rounded to float.
std::vector<float> rope_cos_sin(const std::vector<float>& inv_freq, int positions);

}  // namespace tachyon
