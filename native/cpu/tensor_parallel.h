// Tensor parallelism (Megatron-style): how a model is cut over N ranks, and each
// rank's slice of the weights.
//
// Column-parallel (each rank holds rows of W, its output is its own slice):
// QKV (whole heads; whole KV heads, or one KV head replicated over the ranks
// that share it when N exceeds the KV heads, as vLLM does) and gate/up (a
// slice of the intermediate size). Row-parallel (each rank holds columns of W
// and produces a partial sum of the whole output, all-reduced): O and down.
// The embedding and the LM head are cut by vocabulary: a rank embeds the
// tokens it holds (zeros elsewhere, then the all-reduce) and computes its
// slice of the logits (then an all-gather).
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/model_config.h"
#include "cpu/weights.h"

namespace tachyon {

struct ShardPlan {
  int size = 1;            // ranks
  int heads = 0;           // query heads per rank
  int kv_heads = 0;        // KV heads each rank holds (1 when replicated)
  bool kv_replicated = false;
  int intermediate = 0;    // MLP width per rank
  int vocab_chunk = 0;     // vocabulary rows per rank (the last may hold fewer)
  int group = 1;           // query heads per KV head (the model's)

  int q_head_begin(int rank) const { return rank * heads; }
  int kv_head_begin(int rank) const { return kv_replicated ? rank * heads / group : rank * kv_heads; }
  int inter_begin(int rank) const { return rank * intermediate; }
  int vocab_begin(int rank, int vocab) const;
  int vocab_end(int rank, int vocab) const;
  // The model as one rank sees it: its heads, KV heads and MLP width.
  ModelConfig local(const ModelConfig& c) const;
};

// Throws a clear error unless N ranks can share this model: N must divide the
// query heads and the intermediate size, and divide the KV heads or be a multiple of them.
ShardPlan plan_shards(const ModelConfig& config, int size);

// One rank's weights: views into the full weights where its slice is whole rows
// (column-parallel, vocabulary slices), copies where it is columns (row-parallel).
// Row-parallel biases are kept by rank 0 only, so the all-reduce adds them once.
struct RankWeights {
  Matrix embed, lm_head;  // rows [vocab_begin, vocab_end)
  Matrix pos_embed;       // whole (learned positions), or empty
  std::vector<float> final_norm, final_norm_bias;
  std::vector<float> lm_head_bias;  // [vocab_begin, vocab_end), or empty
  std::vector<LayerWeights> layers;
  std::vector<std::vector<uint8_t>> owned;  // backing store of column slices
};

RankWeights shard_weights(const ModelConfig& config, const ModelWeights& full, const ShardPlan& plan, int rank);

}  // namespace tachyon
