// CudaModel::step: a batch's inputs to the GPU, the forward (graph or not), grammar masks, logit adjustments, sampling, results back.
#include "cuda/cuda_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "cuda/kernels.h"
#include "cuda/nvtx_range.h"

namespace tachyon {

void CudaModel::step(const StepBatch& b, StepOutput& out) {
  NvtxRange step_range(timing_, "tachyon step");
  CUDA_CHECK(cudaSetDevice(options_.device));
  const auto host_start = std::chrono::steady_clock::now();
  if (timing_ && !events_[0]) {
    for (auto& e : events_) CUDA_CHECK(cudaEventCreate(&e));
    for (auto& e : op_events_) CUDA_CHECK(cudaEventCreate(&e));
  }
  const int T = b.num_tokens(), S = b.num_seqs(), V = config_.vocab_size;
  if (b.table_stride > max_table_stride_) fail("block table stride ", b.table_stride, " exceeds ", max_table_stride_);
  table_stride_ = b.table_stride;
  // Sampled rows: the last token of each sequence that samples.
  h_rows_.clear();
  h_sampled_seq_.clear();
  h_params_.clear();
  bool adjusted = false;  // any sampled row with a bias, penalty or grammar mask
  bool counted = false;   // any sampled row whose slot counts its token
  for (int s = 0; s < S; ++s) {
    if (!b.sample[s]) continue;
    const int last = b.seq_start[s] + b.query_lens[s] - 1;
    const SamplingParams& p = b.params[s];
    const int bias_begin = b.bias_start.empty() ? 0 : b.bias_start[s];
    const int bias_end = b.bias_start.empty() ? 0 : b.bias_start[s + 1];
    h_rows_.push_back(last);
    h_sampled_seq_.push_back(s);
    h_params_.push_back(DeviceSamplingParams{p.temperature, p.top_k, p.top_p, p.min_p, p.seed, p.num_logprobs,
                                             static_cast<uint64_t>(b.positions[last]) + 1, p.presence_penalty,
                                             p.frequency_penalty, p.repetition_penalty, p.penalty_slot, bias_begin,
                                             bias_end, p.mask_row});
    adjusted = adjusted || bias_end > bias_begin || (p.penalty_slot >= 0 && p.penalized()) || p.mask_row >= 0;
    counted = counted || p.penalty_slot >= 0;
  }
  const int n = static_cast<int>(h_rows_.size());
  auto copy = [&](DeviceBuffer& d, const void* src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(d.as<void>(), src, bytes, cudaMemcpyHostToDevice, stream_));
  };
  copy(d_params_, h_params_.data(), n * sizeof(DeviceSamplingParams));
  upload_adjustments(b, adjusted);
  if (timing_) CUDA_CHECK(cudaEventRecord(events_[0], stream_));
  if (!forward_decode_graph(b)) {
    copy(d_tokens_, b.token_ids.data(), T * 4);
    copy(d_positions_, b.positions.data(), T * 4);
    copy(d_token_seq_, b.token_seq.data(), T * 4);
    copy(d_tables_, b.block_tables.data(), b.block_tables.size() * 4);
    copy(d_rows_, h_rows_.data(), n * 4);
    make_tiles(b);
    copy(d_tiles_, h_tiles_.data(), h_tiles_.size() * sizeof(int2));
    forward(T, n);
  }
  if (timing_) CUDA_CHECK(cudaEventRecord(events_[1], stream_));
  // The engine computes grammar masks while the GPU runs the forward pass; the host waits
  // for them only now, with the forward already queued.
  if (b.num_mask_rows > 0) {
    NvtxRange wait_range(timing_, "await grammar masks");
    const int32_t* masks = b.await_masks();
    const size_t words = static_cast<size_t>(b.num_mask_rows) * ((V + 31) / 32);
    h_masks_.assign(masks, masks + words);
    ensure(d_masks_, words * 4, "grammar masks");
    copy(d_masks_, h_masks_.data(), words * 4);
  }
  const float* sample_from = logits_.as<float>();
  if (adjusted && n > 0) {
    launch_adjust_logits(logits_.as<float>(), d_adjusted_.as<float>(), n, V, d_params_.as<DeviceSamplingParams>(),
                         d_pen_counts_.as<int32_t>(), d_pen_prompt_.as<uint8_t>(), d_bias_ids_.as<int32_t>(),
                         d_bias_values_.as<float>(), d_masks_.as<int32_t>(), (V + 31) / 32, stream_);
    sample_from = d_adjusted_.as<float>();
  }
  if (n > 0)
    launch_sample(logits_.as<float>(), sample_from, n, V, d_params_.as<DeviceSamplingParams>(), std::max(1, b.max_logprobs),
                  d_out_tokens_.as<int32_t>(), d_out_logprobs_.as<float>(), d_top_ids_.as<int32_t>(),
                  d_top_logprobs_.as<float>(), d_sample_ws_.as<void>(), stream_);
  if (counted)
    launch_count_sampled(d_pen_counts_.as<int32_t>(), V, d_params_.as<DeviceSamplingParams>(), d_out_tokens_.as<int32_t>(), n,
                         stream_);
  const int top_n = b.max_logprobs;
  h_tokens_.resize(n);
  h_logprobs_.resize(n);
  h_top_ids_.resize(static_cast<size_t>(n) * std::max(1, top_n));
  h_top_lps_.resize(h_top_ids_.size());
  auto back = [&](void* dst, const DeviceBuffer& src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src.as<void>(), bytes, cudaMemcpyDeviceToHost, stream_));
  };
  back(h_tokens_.data(), d_out_tokens_, n * 4);
  back(h_logprobs_.data(), d_out_logprobs_, n * 4);
  if (top_n > 0) {
    back(h_top_ids_.data(), d_top_ids_, static_cast<size_t>(n) * top_n * 4);
    back(h_top_lps_.data(), d_top_logprobs_, static_cast<size_t>(n) * top_n * 4);
  }
  if (b.return_logits) {
    h_logits_.resize(static_cast<size_t>(n) * V);
    back(h_logits_.data(), logits_, static_cast<size_t>(n) * V * 4);
  }
  if (timing_) CUDA_CHECK(cudaEventRecord(events_[2], stream_));
  const auto enqueued = std::chrono::steady_clock::now();
  {
    NvtxRange sync_range(timing_, "wait for the GPU");
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  if (timing_) report_timing(T, S, host_start, enqueued);

  out.tokens.assign(S, -1);
  out.logprobs.assign(S, NAN);
  out.top_n = top_n;
  out.top_ids.assign(static_cast<size_t>(S) * top_n, -1);
  out.top_logprobs.assign(static_cast<size_t>(S) * top_n, NAN);
  out.logits.clear();
  if (b.return_logits) out.logits.assign(static_cast<size_t>(S) * V, NAN);
  for (int i = 0; i < n; ++i) {
    const int s = h_sampled_seq_[i];
    out.tokens[s] = h_tokens_[i];
    out.logprobs[s] = h_logprobs_[i];
    const int want = b.params[s].num_logprobs;
    for (int k = 0; k < want; ++k) {
      out.top_ids[static_cast<size_t>(s) * top_n + k] = h_top_ids_[static_cast<size_t>(i) * top_n + k];
      out.top_logprobs[static_cast<size_t>(s) * top_n + k] = h_top_lps_[static_cast<size_t>(i) * top_n + k];
    }
    if (b.return_logits) std::memcpy(&out.logits[static_cast<size_t>(s) * V], &h_logits_[static_cast<size_t>(i) * V], V * 4);
  }
}

// Bias arrays, penalty slot restarts and the buffers adjusted sampling needs, before the forward.
void CudaModel::upload_adjustments(const StepBatch& b, bool adjusted) {
  const size_t V = config_.vocab_size, slots = options_.max_num_seqs;
  auto copy = [&](DeviceBuffer& d, const void* src, size_t bytes, const char* what) {
    if (!bytes) return;
    ensure(d, bytes * 2, what);
    CUDA_CHECK(cudaMemcpyAsync(d.as<void>(), src, bytes, cudaMemcpyHostToDevice, stream_));
  };
  bool slots_used = false;
  for (const SamplingParams& p : b.params) slots_used = slots_used || p.penalty_slot >= 0;
  if (slots_used) {
    ensure(d_pen_counts_, slots * V * 4, "penalty token counts");
    ensure(d_pen_prompt_, slots * V, "penalty prompt flags");
  }
  if (adjusted) ensure(d_adjusted_, slots * V * 4, "adjusted logits");
  copy(d_bias_ids_, b.bias_ids.data(), b.bias_ids.size() * 4, "logit bias");
  copy(d_bias_values_, b.bias_values.data(), b.bias_values.size() * 4, "logit bias");
  if (b.history_start.empty()) return;
  h_restarts_.clear();
  for (int s = 0; s < b.num_seqs(); ++s)
    if (b.history_start[s + 1] > b.history_start[s])
      h_restarts_.push_back(SlotRestart{b.params[s].penalty_slot, b.history_start[s], b.history_start[s + 1], b.history_prompt[s]});
  copy(d_history_, b.history_tokens.data(), b.history_tokens.size() * 4, "penalty history");
  copy(d_restarts_, h_restarts_.data(), h_restarts_.size() * sizeof(SlotRestart), "penalty history");
  launch_restart_slots(d_pen_counts_.as<int32_t>(), d_pen_prompt_.as<uint8_t>(), static_cast<int>(V), d_restarts_.as<SlotRestart>(),
                       static_cast<int>(h_restarts_.size()), d_history_.as<int32_t>(), stream_);
}

// One query token per tile when every sequence brings one token (decode); else runs of
// consecutive tokens of a sequence, as many as the attention kernel serves in one block.
void CudaModel::make_tiles(const StepBatch& b) {
  bool decode = true;
  int max_position = 0;
  for (int s = 0; s < b.num_seqs(); ++s) decode = decode && b.query_lens[s] == 1;
  for (int t = 0; t < b.num_tokens(); ++t) max_position = std::max(max_position, b.positions[t]);
  decode_step_ = decode;
  // Outside batch-invariant mode a step with prompts takes attention_prefill.cu over its
  // multi-token tiles, longest context first (a causal prompt's last tiles take the longest; started
  // first, they do not trail the launch), then attention_decode.cu over its one-token sequences
  // when it serves this model (else they are one-token prefill tiles).
  const bool split = !decode && prefill_kernel_;
  const int per_tile = split ? prefill_attention_tile_tokens(config_.num_heads, config_.num_kv_heads)
                             : attention_tile_tokens(config_.num_heads, config_.num_kv_heads, decode);
  auto to_decode_kernel = [&](int s) { return split && decode_kernel_ && b.query_lens[s] == 1; };
  h_tiles_.clear();
  for (int s = 0; s < b.num_seqs(); ++s)
    if (!to_decode_kernel(s))
      for (int i = 0; i < b.query_lens[s]; i += per_tile)
        h_tiles_.push_back(make_int2(b.seq_start[s] + i, std::min(per_tile, b.query_lens[s] - i)));
  if (split) {
    auto last_position = [&](const int2& t) { return b.positions[t.x + t.y - 1]; };
    std::stable_sort(h_tiles_.begin(), h_tiles_.end(), [&](const int2& x, const int2& y) { return last_position(x) > last_position(y); });
  }
  prefill_tiles_ = split ? static_cast<int>(h_tiles_.size()) : 0;
  for (int s = 0; s < b.num_seqs(); ++s)
    if (to_decode_kernel(s)) h_tiles_.push_back(make_int2(b.seq_start[s], 1));
  attn_splits_ = decode ? attention_parallel_splits(static_cast<int>(h_tiles_.size()), config_.num_kv_heads, max_position, sm_count_) : 0;
}

}  // namespace tachyon
