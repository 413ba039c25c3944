// The numbers of a Llama-family model that the forward pass needs. Filled by
// the addon from what native/model-config.ts parsed out of config.json.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tachyon {

enum class RopeScaling { kNone, kLinear, kLlama3 };

struct ModelConfig {
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int max_positions = 0;
  float rms_norm_eps = 1e-5f;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling = RopeScaling::kNone;
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int rope_original_max_positions = 8192;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;   // Qwen2, or Llama with attention_bias
  bool o_bias = false;     // Llama with attention_bias
  bool mlp_bias = false;   // Llama with mlp_bias
};

}  // namespace tachyon
