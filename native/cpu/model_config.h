// The numbers and the block pieces of a model that the forward pass needs.
// Filled by the addon from what native/model-config.ts parsed out of
// config.json, where the table of families (Llama, GPT-2, GPT-J) lives.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tachyon {

enum class RopeScaling { kNone, kLinear, kLlama3 };
// Weight names and layout: llama (Llama, Mistral, Qwen2), gpt2 (Conv1D [in, out] matrices, fused c_attn), gptj.
enum class Family { kLlama, kGpt2, kGptj };
enum class NormKind { kRms, kLayer };  // RMSNorm(weight), or LayerNorm(weight, bias)
// Rotary on whole heads in halves (i, i + D/2); rotary on the first rotary_dim dimensions in
// pairs (2i, 2i + 1) (GPT-J); learned absolute position embeddings added to the token's (GPT-2).
enum class PositionKind { kRope, kRopeInterleaved, kLearned };
enum class MlpKind { kSwiGLU, kGeluTanh, kGelu };  // silu(gate) * up -> down, or fc -> GELU -> proj

struct ModelConfig {
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int max_positions = 0;
  float norm_eps = 1e-5f;  // RMSNorm's or LayerNorm's epsilon
  Family family = Family::kLlama;
  NormKind norm = NormKind::kRms;
  PositionKind position = PositionKind::kRope;
  MlpKind mlp = MlpKind::kSwiGLU;
  bool parallel_block = false;  // attention and MLP from one norm, added together (GPT-J)
  int rotary_dim = 0;           // dimensions of a head the rotary embedding turns (head_dim unless GPT-J says less)
  bool lm_head_bias = false;
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
