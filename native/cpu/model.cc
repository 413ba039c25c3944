#include "cpu/model.h"

#include <cmath>
#include <cstring>

#include "cpu/attention.h"
#include "cpu/error.h"

namespace tachyon {

CpuModel::CpuModel(const ModelConfig& c, ModelWeights weights, const RuntimeOptions& o)
    : config_(c),
      weights_(std::move(weights)),
      options_(o),
      pool_(o.num_threads),
      kv_(c, o.block_size, o.kv_cache_bytes),
      rope_(c),
      penalties_(o.max_num_seqs, c.vocab_size) {
  const size_t T = o.max_num_tokens;
  for (int i = 0; i < pool_.size(); ++i) samplers_.emplace_back(c.vocab_size);
  adjusted_rows_.resize(pool_.size());
  try {
    x_.resize(T * c.hidden_size);
    h_.resize(T * c.hidden_size);
    q_.resize(T * c.num_heads * c.head_dim);
    attn_.resize(q_.size());
    k_.resize(T * c.num_kv_heads * c.head_dim);
    v_.resize(k_.size());
    gate_.resize(T * c.intermediate_size);
    up_.resize(gate_.size());
    scores_.resize(static_cast<size_t>(pool_.size()) * c.max_positions);
    last_hidden_.resize(static_cast<size_t>(o.max_num_seqs) * c.hidden_size);
    logits_.resize(static_cast<size_t>(o.max_num_seqs) * c.vocab_size);
    sampled_seqs_.reserve(o.max_num_seqs);
  } catch (const std::bad_alloc&) {
    fail("cannot allocate activations for max_num_tokens ", o.max_num_tokens, " and max_num_seqs ", o.max_num_seqs);
  }
}

BackendInfo CpuModel::info() const {
  BackendInfo i;
  i.num_blocks = kv_.num_blocks();
  i.block_size = kv_.block_size();
  i.bytes_per_block = kv_.bytes_per_block();
  i.num_threads = pool_.size();
  i.device_name = "cpu";
  i.weight_dtype = dtype_name(weights_.layers.empty() ? DType::kF32 : weights_.layers[0].wq.dtype);
  return i;
}

BatchLimits CpuModel::limits() const {
  return BatchLimits{options_.max_num_tokens, options_.max_num_seqs, kv_.num_blocks(), kv_.block_size()};
}

void CpuModel::step(const StepBatch& b, StepOutput& out) {
  const ModelConfig& c = config_;
  restart_penalty_slots(b);
  const int T = b.num_tokens();
  for (int t = 0; t < T; ++t)
    widen_row(weights_.embed, b.token_ids[t], x_.data() + static_cast<size_t>(t) * c.hidden_size);
  rope_.prepare(b.positions.data(), T);
  for (int layer = 0; layer < c.num_layers; ++layer) forward_layer(layer, b);
  compute_logits(b);
  // The engine computes grammar masks while the forward pass runs; they are needed only now.
  const int32_t* masks = b.num_mask_rows > 0 ? b.await_masks() : nullptr;
  sample_tokens(b, masks, out);
}

void CpuModel::restart_penalty_slots(const StepBatch& b) {
  if (b.history_start.empty()) return;
  for (int s = 0; s < b.num_seqs(); ++s) {
    const int begin = b.history_start[s], n = b.history_start[s + 1] - begin;
    if (n > 0) penalties_.restart(b.params[s].penalty_slot, b.history_tokens.data() + begin, n, b.history_prompt[s]);
  }
}

void CpuModel::forward_layer(int layer, const StepBatch& b) {
  const ModelConfig& c = config_;
  const LayerWeights& w = weights_.layers[layer];
  const int T = b.num_tokens();
  rms_norm(pool_, x_.data(), T, c.hidden_size, w.attn_norm, c.rms_norm_eps, h_.data());
  matmul(pool_, h_.data(), T, w.wq, w.bq, q_.data());
  matmul(pool_, h_.data(), T, w.wk, w.bk, k_.data());
  matmul(pool_, h_.data(), T, w.wv, w.bv, v_.data());
  rope_.apply(pool_, q_.data(), T, c.num_heads);
  rope_.apply(pool_, k_.data(), T, c.num_kv_heads);
  write_kv(kv_, layer, b, k_.data(), v_.data(), c.num_kv_heads, c.head_dim);
  paged_attention(pool_, kv_, layer, b, q_.data(), c.num_heads, c.num_kv_heads, c.head_dim, scores_.data(),
                  c.max_positions, attn_.data());
  matmul(pool_, attn_.data(), T, w.wo, w.bo, h_.data());
  add_in_place(x_.data(), h_.data(), static_cast<long>(T) * c.hidden_size);

  rms_norm(pool_, x_.data(), T, c.hidden_size, w.mlp_norm, c.rms_norm_eps, h_.data());
  matmul(pool_, h_.data(), T, w.w_gate, w.b_gate, gate_.data());
  matmul(pool_, h_.data(), T, w.w_up, w.b_up, up_.data());
  silu_mul(pool_, gate_.data(), up_.data(), T, c.intermediate_size);
  matmul(pool_, gate_.data(), T, w.w_down, w.b_down, h_.data());
  add_in_place(x_.data(), h_.data(), static_cast<long>(T) * c.hidden_size);
}

// Final norm and LM head for the last token of each sequence that samples.
void CpuModel::compute_logits(const StepBatch& b) {
  const int H = config_.hidden_size;
  sampled_seqs_.clear();
  for (int s = 0; s < b.num_seqs(); ++s) {
    if (!b.sample[s]) continue;
    const int last = b.seq_start[s] + b.query_lens[s] - 1;
    std::memcpy(last_hidden_.data() + sampled_seqs_.size() * H, x_.data() + static_cast<size_t>(last) * H,
                H * sizeof(float));
    sampled_seqs_.push_back(s);
  }
  const int n = static_cast<int>(sampled_seqs_.size());
  if (n == 0) return;
  rms_norm(pool_, last_hidden_.data(), n, H, weights_.final_norm, config_.rms_norm_eps, h_.data());
  matmul(pool_, h_.data(), n, weights_.lm_head, {}, logits_.data());
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
  pool_.parallel_for(n, [&](int begin, int end, int thread) {
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
