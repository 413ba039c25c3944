// One rank of the CPU backend's tensor parallelism: its slice of the weights
// (tensor_parallel.h), its own KV cache (its KV heads), threads and
// activations, and a replica of the residual stream that the all-reduces keep
// equal on every rank. With one rank this is the whole model.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/all_reduce.h"
#include "cpu/batch.h"
#include "cpu/kernels.h"
#include "cpu/kv_cache.h"
#include "cpu/tensor_parallel.h"
#include "cpu/thread_pool.h"

namespace tachyon {

class CpuRank {
 public:
  // kv_budget: this rank's share of the KV cache bytes.
  CpuRank(const ModelConfig& config, const ShardPlan& plan, int rank, RankWeights weights, int threads, int block_size,
          uint64_t kv_budget, int max_num_tokens, int max_num_seqs, AllReduce& all_reduce);

  // Embedding, every layer, and this rank's vocabulary slice of the logits of the sampled rows
  // (rows: the last token of each sampled sequence), written at its columns of logits[rows.size(), vocab].
  void forward(const StepBatch& batch, const Rope& rope, const std::vector<int32_t>& rows, float* logits);

  ThreadPool& pool() { return pool_; }
  int threads() const { return pool_.size(); }
  const KvCache& kv() const { return kv_; }

 private:
  void forward_layer(int layer, const StepBatch& batch, const Rope& rope);
  // The block's pieces, as the model's family has them (model_config.h).
  void norm(const float* x, int rows, const std::vector<float>& weight, const std::vector<float>& bias, float* y);
  void attention(int layer, const LayerWeights& w, const StepBatch& batch, const Rope& rope, const float* h, float* out);
  void mlp(const LayerWeights& w, const float* h, int num_tokens, float* out);

  ModelConfig config_;  // the whole model's
  ModelConfig local_;   // this rank's heads, KV heads and MLP width
  int rank_;
  int vocab_begin_, vocab_end_;
  RankWeights w_;
  ThreadPool pool_;
  KvCache kv_;
  AllReduce& all_reduce_;

  std::vector<float> x_, h_;         // [T, hidden]: the residual stream (replica), norm output / partial sums
  std::vector<float> out_;           // [T, hidden]: parallel blocks' attention partial sum
  std::vector<float> q_, attn_;      // [T, local heads * head_dim]
  std::vector<float> k_, v_;         // [T, local KV heads * head_dim]
  std::vector<float> gate_, up_;     // [T, local intermediate]
  std::vector<float> scores_;        // [threads, max_positions]
  std::vector<float> last_hidden_;   // [S, hidden]
  std::vector<float> logits_;        // [S, local vocabulary]
};

}  // namespace tachyon
