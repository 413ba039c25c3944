#include "cpu/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "cpu/attention.h"
#include "cpu/error.h"
#include "cpu/int8.h"

namespace tachyon {

CpuModel::CpuModel(const ModelConfig& c, ModelWeights weights, const RuntimeOptions& o)
    : config_(c),
      weights_(std::move(weights)),
      options_(o),
      plan_(plan_shards(c, std::max(1, o.tensor_parallel_size))),
      all_reduce_(plan_.size, static_cast<size_t>(o.max_num_tokens) * c.hidden_size),
      rope_(c),
      penalties_(o.max_num_seqs, c.vocab_size) {
  if (o.int8) quantize_int8(weights_);
  const int n = plan_.size;
  for (int r = 0; r < n; ++r)
    ranks_.push_back(std::make_unique<CpuRank>(c, plan_, r, shard_weights(c, weights_, plan_, r),
                                               std::max(1, o.num_threads / n), o.block_size, o.kv_cache_bytes / n,
                                               o.max_num_tokens, o.max_num_seqs, all_reduce_));
  for (int i = 0; i < ranks_[0]->pool().size(); ++i) samplers_.emplace_back(c.vocab_size);
  adjusted_rows_.resize(ranks_[0]->pool().size());
  try {
    logits_.resize(static_cast<size_t>(o.max_num_seqs) * c.vocab_size);
    sampled_rows_.reserve(o.max_num_seqs);
    sampled_seqs_.reserve(o.max_num_seqs);
  } catch (const std::bad_alloc&) {
    fail("cannot allocate logits for max_num_seqs ", o.max_num_seqs);
  }
}

BackendInfo CpuModel::info() const {
  const KvCache& kv = ranks_[0]->kv();
  BackendInfo i;
  i.num_blocks = kv.num_blocks();
  i.block_size = kv.block_size();
  i.bytes_per_block = kv.bytes_per_block() * plan_.size;  // every rank holds its heads of each block
  i.num_threads = 0;
  for (const auto& r : ranks_) i.num_threads += r->threads();
  i.device_name = "cpu";
  i.weight_dtype = dtype_name(weights_.layers.empty() ? DType::kF32 : weights_.layers[0].wq.dtype);
  return i;
}

BatchLimits CpuModel::limits() const {
  const KvCache& kv = ranks_[0]->kv();
  return BatchLimits{options_.max_num_tokens, options_.max_num_seqs, kv.num_blocks(), kv.block_size()};
}

void CpuModel::step(const StepBatch& b, StepOutput& out) {
  restart_penalty_slots(b);
  forward(b);
  // The engine computes grammar masks while the forward pass runs; they are needed only now.
  const int32_t* masks = b.num_mask_rows > 0 ? b.await_masks() : nullptr;
  sample_tokens(b, masks, out);
}

void CpuModel::forward(const StepBatch& b) {
  // Logits for the last token of each sequence that samples.
  sampled_rows_.clear();
  sampled_seqs_.clear();
  for (int s = 0; s < b.num_seqs(); ++s) {
    if (!b.sample[s]) continue;
    sampled_rows_.push_back(b.seq_start[s] + b.query_lens[s] - 1);
    sampled_seqs_.push_back(s);
  }
  rope_.prepare(b.positions.data(), b.num_tokens());
  // Ranks 1.. on their own threads for the step. A rank that fails aborts the all-reduce, so the
  // others stop waiting for it; the first failure is this step's error.
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto run = [&](size_t r) {
    try {
      ranks_[r]->forward(b, rope_, sampled_rows_, logits_.data());
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
      }
      all_reduce_.abort();
    }
  };
  std::vector<std::thread> others;
  try {
    for (size_t r = 1; r < ranks_.size(); ++r) others.emplace_back(run, r);
  } catch (...) {
    all_reduce_.abort();  // ranks already started must not wait for ones that never will
    for (std::thread& t : others) t.join();
    all_reduce_.reset();
    throw;
  }
  run(0);
  for (std::thread& t : others) t.join();
  if (failure) {
    all_reduce_.reset();
    std::rethrow_exception(failure);
  }
}

void CpuModel::restart_penalty_slots(const StepBatch& b) {
  if (b.history_start.empty()) return;
  for (int s = 0; s < b.num_seqs(); ++s) {
    const int begin = b.history_start[s], n = b.history_start[s + 1] - begin;
    if (n > 0) penalties_.restart(b.params[s].penalty_slot, b.history_tokens.data() + begin, n, b.history_prompt[s]);
  }
}

bool CpuModel::adjust_logits(const StepBatch& b, int s, const float* raw, const int32_t* masks, std::vector<float>& out) const {
  const SamplingParams& p = b.params[s];
  const bool biased = !b.bias_start.empty() && b.bias_start[s + 1] > b.bias_start[s];
  const bool penalized = p.penalty_slot >= 0 && p.penalized();
  if (!biased && !penalized && p.mask_row < 0) return false;
  const int V = config_.vocab_size;
  out.assign(raw, raw + V);
  if (biased)
    for (int k = b.bias_start[s]; k < b.bias_start[s + 1]; ++k) out[b.bias_ids[k]] += b.bias_values[k];
  if (penalized) penalties_.apply(p.penalty_slot, p, out.data());
  if (p.mask_row >= 0) {
    const int32_t* mask = masks + static_cast<size_t>(p.mask_row) * ((V + 31) / 32);
    bool any = false;
    for (int v = 0; v < V && !any; ++v) any = (mask[v >> 5] >> (v & 31)) & 1;
    // A mask that allows nothing would leave nothing to sample; it is ignored rather than crash the step.
    if (any)
      for (int v = 0; v < V; ++v)
        if (!((mask[v >> 5] >> (v & 31)) & 1)) out[v] = -INFINITY;
  }
  return true;
}

void CpuModel::sample_tokens(const StepBatch& b, const int32_t* masks, StepOutput& out) {
  const int S = b.num_seqs(), V = config_.vocab_size, n = static_cast<int>(sampled_seqs_.size());
  out.tokens.assign(S, -1);
  out.logprobs.assign(S, NAN);
  out.top_n = b.max_logprobs;
  out.top_ids.assign(static_cast<size_t>(S) * out.top_n, -1);
  out.top_logprobs.assign(static_cast<size_t>(S) * out.top_n, NAN);
  out.logits.clear();
  if (b.return_logits) out.logits.assign(static_cast<size_t>(S) * V, NAN);
  ranks_[0]->pool().parallel_for(n, [&](int begin, int end, int thread) {
    Sampler& sampler = samplers_[thread];
    for (int i = begin; i < end; ++i) {
      const int s = sampled_seqs_[i];
      const float* row = logits_.data() + static_cast<size_t>(i) * V;
      const SamplingParams& p = b.params[s];
      const int last = b.seq_start[s] + b.query_lens[s] - 1;
      const uint64_t counter = static_cast<uint64_t>(b.positions[last]) + 1;
      std::vector<float>& adjusted = adjusted_rows_[thread];
      SampleResult r;
      if (adjust_logits(b, s, row, masks, adjusted)) {
        r = sampler.sample(adjusted.data(), p, counter);
        r.logprob = row[r.token] - sampler.log_sum_exp(row);  // the raw distribution's, as documented
      } else {
        r = sampler.sample(row, p, counter);
      }
      // Slots are distinct within a step, so threads never share a row.
      if (p.penalty_slot >= 0) penalties_.count(p.penalty_slot, r.token);
      out.tokens[s] = r.token;
      out.logprobs[s] = r.logprob;
      if (p.num_logprobs > 0)
        sampler.top_logprobs(row, p.num_logprobs, out.top_ids.data() + static_cast<size_t>(s) * out.top_n,
                             out.top_logprobs.data() + static_cast<size_t>(s) * out.top_n);
      if (b.return_logits) std::memcpy(out.logits.data() + static_cast<size_t>(s) * V, row, V * sizeof(float));
    }
  });
}

}  // namespace tachyon
