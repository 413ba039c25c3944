// The CPU backend: one forward pass of a Llama-family model over a flat mixed
// batch, then sampling. Plain, multi-threaded float32 arithmetic; the
// reference the other backends are checked against.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend.h"
#include "cpu/batch.h"
#include "cpu/kernels.h"
#include "cpu/kv_cache.h"
#include "cpu/penalties.h"
#include "cpu/sampler.h"
#include "cpu/thread_pool.h"
#include "cpu/weights.h"

namespace tachyon {

// Every field is set by the addon from the TypeScript options; the defaults
// have one owner, config/defaults.ts, so none are repeated here.
struct RuntimeOptions {
  int block_size = 0;
  uint64_t kv_cache_bytes = 0;
  int max_num_tokens = 0;
  int max_num_seqs = 0;
  int num_threads = 0;
};

class CpuModel : public Backend {
 public:
  CpuModel(const ModelConfig& config, ModelWeights weights, const RuntimeOptions& options);

  const ModelConfig& config() const override { return config_; }
  BatchLimits limits() const override;
  BackendInfo info() const override;
  // batch must have passed validate_batch.
  void step(const StepBatch& batch, StepOutput& out) override;

 private:
  void forward_layer(int layer, const StepBatch& batch);
  void compute_logits(const StepBatch& batch);
  void restart_penalty_slots(const StepBatch& batch);
  // masks: the step's grammar bitmask rows, or nullptr.
  void sample_tokens(const StepBatch& batch, const int32_t* masks, StepOutput& out);
  // Sampling sees the logits after logit_bias, penalties and the grammar mask (into out);
  // false when the sequence has none of them and samples the raw row.
  bool adjust_logits(const StepBatch& batch, int seq, const float* raw, const int32_t* masks, std::vector<float>& out) const;

  ModelConfig config_;
  ModelWeights weights_;
  RuntimeOptions options_;
  ThreadPool pool_;
  KvCache kv_;
  Rope rope_;
  std::vector<Sampler> samplers_;  // one per thread
  std::vector<std::vector<float>> adjusted_rows_;  // one [vocab] scratch row per thread
  PenaltyCounts penalties_;                        // one slot per sequence a step may carry

  // Activations, sized for max_num_tokens at load.
  std::vector<float> x_, h_;          // [T, hidden]
  std::vector<float> q_, attn_;       // [T, heads * head_dim]
  std::vector<float> k_, v_;          // [T, kv_heads * head_dim]
  std::vector<float> gate_, up_;      // [T, intermediate]
  std::vector<float> scores_;         // [threads, max_positions]
  std::vector<float> last_hidden_;    // [S, hidden] rows that sample
  std::vector<float> logits_;         // [S, vocab]
  std::vector<int32_t> sampled_seqs_; // sequence index of each logits row
};

}  // namespace tachyon
