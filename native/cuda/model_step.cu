// CudaModel::launch / collect: a batch's inputs to the GPU, the forward (graph or not), grammar masks, logit adjustments, sampling, results back.
#include "cuda/cuda_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "cuda/kernels.h"
#include "cuda/nvtx_range.h"

namespace tachyon {

// A whole step with no feed, one at a time (the addon drives launch and collect).
void CudaModel::step(const StepBatch& batch, StepOutput& out) {
  StepBatch b = batch;
  launch(b, 0);
  collect(b, 0, out, nullptr);
}

void CudaModel::launch(StepBatch& b, int slot) {
  NvtxRange step_range(timing_, "tachyon step launch");
  CUDA_CHECK(cudaSetDevice(options_.device));
  profiled_steps_.at_launch();
  StepSlot& st = slots_[slot];
  const StepSlot& prev = slots_[1 - slot];
  st_ = &st;
  st.launched = false;
  st.host_start = std::chrono::steady_clock::now();
  if (!st.done) CUDA_CHECK(cudaEventCreateWithFlags(&st.done, cudaEventDisableTiming));
  if (timing_ && !events_[0]) {
    for (auto& e : events_) CUDA_CHECK(cudaEventCreate(&e));
    for (auto& e : op_events_) CUDA_CHECK(cudaEventCreate(&e));
  }
  const int T = b.num_tokens(), S = b.num_seqs();
  if (b.table_stride > max_table_stride_) fail("block table stride ", b.table_stride, " exceeds ", max_table_stride_);
  table_stride_ = b.table_stride;
  // Fed tokens name a sequence of the previous step; the device reads that step's sampled row.
  st.feed.clear();
  if (!b.feed.empty()) {
    if (!prev.launched) fail("the batch feeds tokens from a previous step, but none was launched");
    st.feed.assign(T, -1);
    for (int t = 0; t < T; ++t) {
      const int f = b.feed[t];
      if (f < 0) continue;
      if (f >= prev.S || prev.row_of_seq[f] < 0) fail("token ", t, " takes the previous step's token of its sequence ", f, ", which that step does not sample");
      st.feed[t] = prev.row_of_seq[f];
    }
  }
  // Sampled rows: the last token of each sequence that samples.
  st.rows.clear();
  st.sampled_seq.clear();
  st.params.clear();
  st.row_of_seq.assign(S, -1);
  st.adjusted = false;  // any sampled row with a bias, penalty or grammar mask
  st.counted = false;   // any sampled row whose slot counts its token
  for (int s = 0; s < S; ++s) {
    if (!b.sample[s]) continue;
    const int last = b.seq_start[s] + b.query_lens[s] - 1;
    const SamplingParams& p = b.params[s];
    const int bias_begin = b.bias_start.empty() ? 0 : b.bias_start[s];
    const int bias_end = b.bias_start.empty() ? 0 : b.bias_start[s + 1];
    st.row_of_seq[s] = static_cast<int>(st.rows.size());
    st.rows.push_back(last);
    st.sampled_seq.push_back(s);
    st.params.push_back(DeviceSamplingParams{p.temperature, p.top_k, p.top_p, p.min_p, p.seed, p.num_logprobs,
                                             static_cast<uint64_t>(b.positions[last]) + 1, p.presence_penalty,
                                             p.frequency_penalty, p.repetition_penalty, p.penalty_slot, bias_begin,
                                             bias_end, p.mask_row});
    st.adjusted = st.adjusted || bias_end > bias_begin || (p.penalty_slot >= 0 && p.penalized()) || p.mask_row >= 0;
    st.counted = st.counted || p.penalty_slot >= 0;
  }
  st.T = T;
  st.S = S;
  st.n = static_cast<int>(st.rows.size());
  st.top_n = b.max_logprobs;
  st.masked = b.num_mask_rows > 0;
  auto copy = [&](DeviceBuffer& d, const void* src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(d.as<void>(), src, bytes, cudaMemcpyHostToDevice, stream_));
  };
  copy(d_params_, st.params.data(), st.n * sizeof(DeviceSamplingParams));
  upload_adjustments(b, st.adjusted);
  if (timing_) CUDA_CHECK(cudaEventRecord(events_[0], stream_));
  if (!forward_decode_graph(b)) {
    copy(d_tokens_, b.token_ids.data(), T * 4);
    apply_feed();
    copy(d_positions_, b.positions.data(), T * 4);
    copy(d_token_seq_, b.token_seq.data(), T * 4);
    copy(d_tables_, b.block_tables.data(), b.block_tables.size() * 4);
    copy(d_rows_, st.rows.data(), st.n * 4);
    make_tiles(b);
    copy(d_tiles_, st.tiles.data(), st.tiles.size() * sizeof(int2));
    if (q_skip_step()) copy(d_q_skip_, st.q_skip.data(), T);
    forward(T, st.n);
  }
  if (timing_) CUDA_CHECK(cudaEventRecord(events_[1], stream_));
  st.launched = true;
  // The engine computes grammar masks while the GPU runs the forward pass: such a step samples in
  // collect, once they arrive. Profiling times one step at a time, so it waits here.
  if (st.masked) return;
  sample_and_copy_back(b, st);
  if (timing_) report(st);
}

void CudaModel::apply_feed() {
  const StepSlot& st = *st_;
  if (st.feed.empty()) return;
  ensure(d_feed_, st.feed.size() * 4 * 2, "fed tokens");
  CUDA_CHECK(cudaMemcpyAsync(d_feed_.as<void>(), st.feed.data(), st.feed.size() * 4, cudaMemcpyHostToDevice, stream_));
  launch_feed_tokens(d_tokens_.as<int32_t>(), d_feed_.as<int32_t>(), d_out_tokens_.as<int32_t>(), static_cast<int>(st.feed.size()),
                     config_.vocab_size, stream_);
}

// Logit adjustments, sampling, penalty counts, and the results into the slot's pinned buffers.
void CudaModel::sample_and_copy_back(const StepBatch& b, StepSlot& st) {
  const int n = st.n, V = config_.vocab_size, top_n = st.top_n;
  const float* sample_from = logits_.as<float>();
  if (st.adjusted && n > 0) {
    launch_adjust_logits(logits_.as<float>(), d_adjusted_.as<float>(), n, V, d_params_.as<DeviceSamplingParams>(),
                         d_pen_counts_.as<int32_t>(), d_pen_prompt_.as<uint8_t>(), d_bias_ids_.as<int32_t>(),
                         d_bias_values_.as<float>(), d_masks_.as<int32_t>(), (V + 31) / 32, stream_);
    sample_from = d_adjusted_.as<float>();
  }
  if (n > 0)
    launch_sample(logits_.as<float>(), sample_from, n, V, d_params_.as<DeviceSamplingParams>(), std::max(1, top_n),
                  d_out_tokens_.as<int32_t>(), d_out_logprobs_.as<float>(), d_top_ids_.as<int32_t>(),
                  d_top_logprobs_.as<float>(), d_sample_ws_.as<void>(), stream_);
  if (st.counted)
    launch_count_sampled(d_pen_counts_.as<int32_t>(), V, d_params_.as<DeviceSamplingParams>(), d_out_tokens_.as<int32_t>(), n,
                         stream_);
  st.tokens.resize(n);
  st.logprobs.resize(n);
  st.top_ids.resize(static_cast<size_t>(n) * std::max(1, top_n));
  st.top_lps.resize(st.top_ids.size());
  auto back = [&](void* dst, const DeviceBuffer& src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src.as<void>(), bytes, cudaMemcpyDeviceToHost, stream_));
  };
  back(st.tokens.data(), d_out_tokens_, n * 4);
  back(st.logprobs.data(), d_out_logprobs_, n * 4);
  if (top_n > 0) {
    back(st.top_ids.data(), d_top_ids_, static_cast<size_t>(n) * top_n * 4);
    back(st.top_lps.data(), d_top_logprobs_, static_cast<size_t>(n) * top_n * 4);
  }
  if (b.return_logits) {
    st.logits.resize(static_cast<size_t>(n) * V);
    back(st.logits.data(), logits_, static_cast<size_t>(n) * V * 4);
  }
  if (timing_) CUDA_CHECK(cudaEventRecord(events_[2], stream_));
  CUDA_CHECK(cudaEventRecord(st.done, stream_));
}

void CudaModel::report(StepSlot& st) {
  const auto enqueued = std::chrono::steady_clock::now();
  CUDA_CHECK(cudaEventSynchronize(st.done));
  report_timing(st.T, st.S, st.host_start, enqueued);
}

void CudaModel::collect(StepBatch& b, int slot, StepOutput& out, const StepOutput* prev) {
  NvtxRange step_range(timing_, "tachyon step collect");
  CUDA_CHECK(cudaSetDevice(options_.device));
  StepSlot& st = slots_[slot];
  if (!st.launched) fail("collect of a step that was not launched");
  const int V = config_.vocab_size;
  if (st.masked) {
    NvtxRange wait_range(timing_, "await grammar masks");
    const int32_t* masks = b.await_masks();
    const size_t words = static_cast<size_t>(b.num_mask_rows) * ((V + 31) / 32);
    st.masks.assign(masks, masks + words);
    ensure(d_masks_, words * 4, "grammar masks");
    CUDA_CHECK(cudaMemcpyAsync(d_masks_.as<void>(), st.masks.data(), words * 4, cudaMemcpyHostToDevice, stream_));
    sample_and_copy_back(b, st);
    if (timing_) report(st);
  }
  {
    NvtxRange sync_range(timing_, "wait for the GPU");
    CUDA_CHECK(cudaEventSynchronize(st.done));
  }
  // prev == nullptr: the step its fed tokens came from failed. Those rows computed on whatever the
  // gather read there (clamped into the vocabulary); their sequences ended with that step, so the
  // engine never reads them, and the other rows are sound.
  (void)prev;
  const int S = st.S, n = st.n, top_n = st.top_n;
  out.tokens.assign(S, -1);
  out.logprobs.assign(S, NAN);
  out.top_n = top_n;
  out.top_ids.assign(static_cast<size_t>(S) * top_n, -1);
  out.top_logprobs.assign(static_cast<size_t>(S) * top_n, NAN);
  out.logits.clear();
  if (b.return_logits) out.logits.assign(static_cast<size_t>(S) * V, NAN);
  for (int i = 0; i < n; ++i) {
    const int s = st.sampled_seq[i];
    out.tokens[s] = st.tokens[i];
    out.logprobs[s] = st.logprobs[i];
    const int want = b.params[s].num_logprobs;
    for (int k = 0; k < want; ++k) {
      out.top_ids[static_cast<size_t>(s) * top_n + k] = st.top_ids[static_cast<size_t>(i) * top_n + k];
      out.top_logprobs[static_cast<size_t>(s) * top_n + k] = st.top_lps[static_cast<size_t>(i) * top_n + k];
    }
    if (b.return_logits) std::memcpy(&out.logits[static_cast<size_t>(s) * V], &st.logits[static_cast<size_t>(i) * V], V * 4);
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
  st_->restarts.clear();
  for (int s = 0; s < b.num_seqs(); ++s)
    if (b.history_start[s + 1] > b.history_start[s])
      st_->restarts.push_back(SlotRestart{b.params[s].penalty_slot, b.history_start[s], b.history_start[s + 1], b.history_prompt[s]});
  copy(d_history_, b.history_tokens.data(), b.history_tokens.size() * 4, "penalty history");
  copy(d_restarts_, st_->restarts.data(), st_->restarts.size() * sizeof(SlotRestart), "penalty history");
  launch_restart_slots(d_pen_counts_.as<int32_t>(), d_pen_prompt_.as<uint8_t>(), static_cast<int>(V), d_restarts_.as<SlotRestart>(),
                       static_cast<int>(st_->restarts.size()), d_history_.as<int32_t>(), stream_);
}

// One query token per tile when every sequence brings one generated token (decode); else runs of
// consecutive tokens of a sequence, as many as the attention kernel serves in one block (only its
// prompt rows where the decode kernel takes the generated ones, one a tile, after them).
void CudaModel::make_tiles(const StepBatch& b) {
  // A row's kind comes from the request and not from the step (StepBatch::generated): a generated
  // token (the decode kernel's arithmetic) or a prompt token (the prefill kernel's), so that however
  // a prompt is chunked or batched each of its rows is computed the same way (batch invariance).
  bool decode = true;
  int max_position = 0;
  for (int s = 0; s < b.num_seqs(); ++s) decode = decode && b.query_lens[s] == 1 && b.generated(s, 0);
  for (int t = 0; t < b.num_tokens(); ++t) max_position = std::max(max_position, b.positions[t]);
  decode_step_ = decode;
  // A step with prompts takes attention_prefill.cu over its multi-token tiles, longest context
  // first (a causal prompt's last tiles take the longest; started first, they do not trail the
  // launch), then attention_decode.cu over its generated tokens, one a tile, when it serves this
  // model (else they are one-token prefill tiles).
  const bool split = !decode && prefill_kernel_;
  const int per_tile = split ? prefill_attention_tile_tokens(config_.num_heads, config_.num_kv_heads)
                             : attention_tile_tokens(config_.num_heads, config_.num_kv_heads, decode);
  // Rows of sequence s that go to the prefill kernel (or attention.cu): its prompt rows, which come first.
  auto prompt_rows = [&](int s) {
    if (!(split && decode_kernel_)) return b.query_lens[s];
    int n = 0;
    while (n < b.query_lens[s] && !b.generated(s, n)) ++n;
    return n;
  };
  PinnedVector<int2>& tiles = st_->tiles;
  tiles.clear();
  for (int s = 0; s < b.num_seqs(); ++s)
    for (int i = 0, n = prompt_rows(s); i < n; i += per_tile) tiles.push_back(make_int2(b.seq_start[s] + i, std::min(per_tile, n - i)));
  if (split) {
    auto last_position = [&](const int2& t) { return b.positions[t.x + t.y - 1]; };
    std::stable_sort(tiles.begin(), tiles.end(), [&](const int2& x, const int2& y) { return last_position(x) > last_position(y); });
  }
  prefill_tiles_ = split ? static_cast<int>(tiles.size()) : 0;
  // The rows whose q the prefill kernel turns itself: the RoPE kernel leaves them unwritten.
  if (q_skip_step()) {
    PinnedVector<uint8_t>& skip = st_->q_skip;
    skip.assign(b.num_tokens(), 0);
    for (int i = 0; i < prefill_tiles_; ++i) std::fill_n(skip.data() + tiles[i].x, tiles[i].y, uint8_t{1});
  }
  for (int s = 0; s < b.num_seqs(); ++s)
    for (int i = prompt_rows(s); i < b.query_lens[s]; ++i) tiles.push_back(make_int2(b.seq_start[s] + i, 1));
  num_tiles_ = static_cast<int>(tiles.size());
  decode_long_ = false;
  for (int i = prefill_tiles_; i < num_tiles_; ++i) decode_long_ = decode_long_ || b.positions[tiles[i].x] >= kLongDecodeContext;
  attn_splits_ = decode ? decode_splits(num_tiles_, max_position) : 0;
}

// attention.cu's split-parallel blocks for a decode step of `tokens` (0: none). Batch-invariant
// mode keeps the decode kernel for every decode step instead, so generated tokens always take its
// arithmetic.
int CudaModel::decode_splits(int tokens, int max_position) const {
  if (invariant_ && decode_kernel_) return 0;
  return attention_parallel_splits(tokens, config_.num_kv_heads, max_position, sm_count_);
}

}  // namespace tachyon
