// Rotary inverse frequencies [head_dim / 2] as transformers computes them
// (float32 powers, then default, linear or llama3 scaling); shared by the backends.
#pragma once
#include <vector>

#include "cpu/model_config.h"

namespace tachyon {

std::vector<float> rope_inv_freq(const ModelConfig& config);

}  // namespace tachyon
