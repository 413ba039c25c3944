// The CPU backend: one forward pass of a Llama-family model over a flat mixed
// batch, then sampling. Plain, multi-threaded float32 arithmetic; the
// reference the other backends are checked against. The forward pass runs on
// tensor_parallel_size ranks (rank.h), threads of this process that each hold
// a slice of the model and meet in all-reduces: one rank is the plain model.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "backend.h"
#include "cpu/all_reduce.h"
#include "cpu/batch.h"
#include "cpu/kernels.h"
#include "cpu/penalties.h"
#include "cpu/rank.h"
#include "cpu/sampler.h"
#include "cpu/tensor_parallel.h"
#include "cpu/weights.h"

namespace tachyon {

// Every field is set by the addon from the TypeScript options; the defaults
// have one owner, config/defaults.ts, so none are repeated here.
struct RuntimeOptions {
  int block_size = 0;
  uint64_t kv_cache_bytes = 0;
  int max_num_tokens = 0;
  int max_num_seqs = 0;
  int num_threads = 0;           // over all ranks
  int tensor_parallel_size = 0;  // ranks the model is cut over
  bool int8 = false;             // weight-only INT8 projections, quantized at load (int8.h)
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
  // Every rank's forward pass, rank 0 on this thread: logits_ for the sampled rows.
  void forward(const StepBatch& batch);
  void restart_penalty_slots(const StepBatch& batch);
  // masks: the step's grammar bitmask rows, or nullptr.
  void sample_tokens(const StepBatch& batch, const int32_t* masks, StepOutput& out);
  // Sampling sees the logits after logit_bias, penalties and the grammar mask (into out);
  // false when the sequence has none of them and samples the raw row.
  bool adjust_logits(const StepBatch& batch, int seq, const float* raw, const int32_t* masks, std::vector<float>& out) const;

  ModelConfig config_;
  ModelWeights weights_;  // the whole checkpoint (mapped); ranks view or copy their slices
  RuntimeOptions options_;
  ShardPlan plan_;
  AllReduce all_reduce_;
  std::vector<std::unique_ptr<CpuRank>> ranks_;
  Rope rope_;
  std::vector<Sampler> samplers_;  // one per thread of rank 0, which samples
  std::vector<std::vector<float>> adjusted_rows_;  // one [vocab] scratch row per thread
  PenaltyCounts penalties_;                        // one slot per sequence a step may carry

  std::vector<int32_t> sampled_rows_;  // token row of each logits row
  std::vector<int32_t> sampled_seqs_;  // sequence index of each logits row
  std::vector<float> logits_;          // [S, vocab]
};

}  // namespace tachyon
