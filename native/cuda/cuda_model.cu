#include "cuda/cuda_model.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>

#include "cpu/rope_freq.h"
#include "cuda/fp8.h"
#include "cuda/kernels.h"
#include "cuda/nvtx_range.h"
#include "cuda/pdl.cuh"

namespace tachyon {

namespace {

template <typename T>
DeviceBuffer upload(const std::vector<T>& host, const char* what) {
  DeviceBuffer d(host.size() * sizeof(T), what);
  if (!host.empty()) CUDA_CHECK(cudaMemcpy(d.as<void>(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// Rows of one or more host matrices stacked and rounded to bf16.
DeviceBuffer upload_bf16(const std::vector<const Matrix*>& parts, const char* what) {
  size_t rows = 0;
  const int cols = parts[0]->cols;
  for (auto* m : parts) rows += m->rows;
  std::vector<__nv_bfloat16> host(rows * cols);
  std::vector<float> row(cols);
  size_t r = 0;
  for (auto* m : parts)
    for (int i = 0; i < m->rows; ++i, ++r) {
      widen_row(*m, i, row.data());
      for (int j = 0; j < cols; ++j) host[r * cols + j] = __float2bfloat16(row[j]);
    }
  return upload(host, what);
}

// Rows of FP8 matrices stacked as they are, with their per-row scales.
std::pair<DeviceBuffer, DeviceBuffer> upload_fp8(const std::vector<const Matrix*>& parts, const char* what) {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  for (auto* m : parts) {
    const auto* b = static_cast<const uint8_t*>(m->data);
    bytes.insert(bytes.end(), b, b + static_cast<size_t>(m->rows) * m->cols);
    scales.insert(scales.end(), m->scale.begin(), m->scale.end());
  }
  return {upload(bytes, what), upload(scales, "fp8 weight scales")};
}

bool all_fp8(const std::vector<const Matrix*>& parts) {
  for (auto* m : parts)
    if (m->dtype != DType::kF8E4M3) return false;
  return true;
}

std::vector<float> concat(const std::vector<const std::vector<float>*>& parts) {
  std::vector<float> out;
  for (auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

}  // namespace

CudaModel::CudaModel(const ModelConfig& c, const ModelWeights* w, const GpuOptions& o) : config_(c), options_(o) {
  CUDA_CHECK(cudaSetDevice(o.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  q_dim_ = c.num_heads * c.head_dim;
  kv_dim_ = c.num_kv_heads * c.head_dim;
  qkv_dim_ = q_dim_ + 2 * kv_dim_;
  fp8_ = o.dtype == "fp8";
  check_attention_shape(c.num_heads, c.num_kv_heads, c.head_dim);
  {
    int sms = 1;
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, o.device));
    sm_count_ = sms;
    int major = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, o.device));
    pdl_enabled() = major >= 9 && o.pdl;
  }
  timing_ = o.profile;
  use_graphs_ = o.cuda_graphs;
  if (w) upload_weights(*w);
  else make_dummy_weights(o.dummy_seed);
  if (fp8_) quantize_weights();
  rope_cos_sin_ = upload(rope_cos_sin(rope_inv_freq(c), c.max_positions), "rotary table");
  // Batch-invariant mode: one GEMM kernel per shape for every batch size.
  const bool invariant = o.batch_invariant;
  gemm_ = std::make_unique<Gemm>(64u << 20, invariant);
  allocate_workspace();
  // The few-row path's GEMVs sum in their own order and skip activation quantization, so a row's
  // result would depend on its batch size: not in batch-invariant mode.
  few_rows_ = !invariant && o.fused_gemv;
  if (few_rows_) {
    const Layer& l = layers_[0];
    const __nv_bfloat16* in = h_.as<__nv_bfloat16>();
    FusedGemv qkv = projection(l.qkv, l.b_qkv, in), o = projection(l.o, l.b_o, in);
    FusedGemv gate_up = projection(l.gate_up, l.b_gate_up, in), down = projection(l.down, l.b_down, in);
    qkv.epilogue = GemvEpilogue::kRopeKv;
    qkv.rope.head_dim = c.head_dim;
    gate_up.epilogue = GemvEpilogue::kSwiGLU;
    // The few-token attention keeps a partial state per (token, KV head) at least.
    few_rows_ = rmsnorm_supports(c.hidden_size) && kFewRows * c.num_kv_heads <= kAttnPartialSlots;
    for (FusedGemv* g : {&qkv, &o, &gate_up, &down})
      few_rows_ = few_rows_ && fused_gemv_supports(*g, 1) && fused_gemv_supports(*g, kFewRows);
  }
  tune_gemms();
  allocate_kv_cache();
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  info_.device_name = prop.name;
  info_.device_bytes_used = total_b - free_b;
  info_.weight_dtype = fp8_ ? "fp8" : "bf16";
  info_.num_threads = 1;
}

CudaModel::~CudaModel() {
  for (auto& [bucket, exec] : graphs_) cudaGraphExecDestroy(exec);
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
}

void CudaModel::upload_weights(const ModelWeights& w) {
  const ModelConfig& c = config_;
  embed_ = upload_bf16({&w.embed}, "embeddings");
  if (!c.tie_word_embeddings) lm_head_ = upload_bf16({&w.lm_head}, "LM head");
  final_norm_ = upload(w.final_norm, "final norm");
  for (const LayerWeights& l : w.layers) {
    Layer d;
    // FP8 checkpoint weights go up as they are when serving FP8; otherwise as bf16 (dequantized if need be).
    auto linear_of = [&](const std::vector<const Matrix*>& parts, int N, int K, const char* what) {
      Linear lin;
      lin.N = N;
      lin.K = K;
      if (fp8_ && all_fp8(parts)) std::tie(lin.w, lin.scale) = upload_fp8(parts, what);
      else lin.w = upload_bf16(parts, what);
      return lin;
    };
    d.qkv = linear_of({&l.wq, &l.wk, &l.wv}, qkv_dim_, c.hidden_size, "QKV weights");
    d.o = linear_of({&l.wo}, c.hidden_size, q_dim_, "attention output weights");
    d.gate_up = linear_of({&l.w_gate, &l.w_up}, 2 * c.intermediate_size, c.hidden_size, "gate/up weights");
    d.down = linear_of({&l.w_down}, c.hidden_size, c.intermediate_size, "down weights");
    d.attn_norm = upload(l.attn_norm, "norm weights");
    d.mlp_norm = upload(l.mlp_norm, "norm weights");
    if (!l.bq.empty()) d.b_qkv = upload(concat({&l.bq, &l.bk, &l.bv}), "QKV bias");
    if (!l.bo.empty()) d.b_o = upload(l.bo, "output bias");
    if (!l.b_gate.empty()) d.b_gate_up = upload(concat({&l.b_gate, &l.b_up}), "gate/up bias");
    if (!l.b_down.empty()) d.b_down = upload(l.b_down, "down bias");
    layers_.push_back(std::move(d));
  }
}

void CudaModel::make_dummy_weights(uint64_t seed) {
  const ModelConfig& c = config_;
  auto random = [&](size_t rows, size_t cols, const char* what) {
    DeviceBuffer d(rows * cols * sizeof(__nv_bfloat16), what);
    // Uniform with standard deviation 1/sqrt(fan_in).
    launch_fill_random(d.as<__nv_bfloat16>(), rows * cols, std::sqrt(3.0f / static_cast<float>(cols)), seed++, stream_);
    return d;
  };
  const std::vector<float> ones(c.hidden_size, 1.0f);
  embed_ = random(c.vocab_size, c.hidden_size, "embeddings");
  if (!c.tie_word_embeddings) lm_head_ = random(c.vocab_size, c.hidden_size, "LM head");
  final_norm_ = upload(ones, "final norm");
  for (int i = 0; i < c.num_layers; ++i) {
    Layer d;
    d.qkv = {random(qkv_dim_, c.hidden_size, "QKV weights"), {}, qkv_dim_, c.hidden_size};
    d.o = {random(c.hidden_size, q_dim_, "attention output weights"), {}, c.hidden_size, q_dim_};
    d.gate_up = {random(2 * static_cast<size_t>(c.intermediate_size), c.hidden_size, "gate/up weights"), {}, 2 * c.intermediate_size, c.hidden_size};
    d.down = {random(c.hidden_size, c.intermediate_size, "down weights"), {}, c.hidden_size, c.intermediate_size};
    d.attn_norm = upload(ones, "norm weights");
    d.mlp_norm = upload(ones, "norm weights");
    layers_.push_back(std::move(d));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// E4M3 with a scale per output channel; embeddings and the LM head stay bf16.
void CudaModel::quantize_weights() {
  for (Layer& l : layers_) {
    for (Linear* lin : {&l.qkv, &l.o, &l.gate_up, &l.down}) {
      if (lin->scale.bytes() > 0) continue;  // already FP8 in the checkpoint
      if (lin->K % 16 != 0) fail("fp8 needs in-features divisible by 16, got ", lin->K);
      DeviceBuffer q(static_cast<size_t>(lin->N) * lin->K, "fp8 weights");
      DeviceBuffer scale(static_cast<size_t>(lin->N) * 4, "fp8 weight scales");
      launch_quantize_weight(lin->w.as<__nv_bfloat16>(), q.as<__nv_fp8_e4m3>(), scale.as<float>(), lin->N, lin->K, stream_);
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      lin->w = std::move(q);  // frees the bf16 copy
      lin->scale = std::move(scale);
    }
  }
}

Dequant CudaModel::linear(const __nv_bfloat16* in, const Linear& w, float* out, int M, cudaStream_t s) {
  if (!fp8_) {
    gemm_->run(Operand::kBf16, in, w.w.as<void>(), out, M, w.N, w.K, s);
    return Dequant{};
  }
  // in == nullptr: the producing kernel already wrote in_q_ / in_scale_ (fused quantization).
  if (in) launch_quantize_rows(in, in_q_.as<__nv_fp8_e4m3>(), in_scale_.as<float>(), M, w.K, s);
  gemm_->run(Operand::kFp8, in_q_.as<void>(), w.w.as<void>(), out, M, w.N, w.K, s);
  return Dequant{in_scale_.as<float>(), w.scale.as<float>()};
}

void CudaModel::tune_linear(const __nv_bfloat16* in, const Linear& w, float* out, int M) {
  if (!fp8_) {
    gemm_->tune(Operand::kBf16, in, w.w.as<void>(), out, M, w.N, w.K, stream_);
    return;
  }
  launch_quantize_rows(in, in_q_.as<__nv_fp8_e4m3>(), in_scale_.as<float>(), M, w.K, stream_);
  gemm_->tune(Operand::kFp8, in_q_.as<void>(), w.w.as<void>(), out, M, w.N, w.K, stream_);
}

void CudaModel::allocate_workspace() {
  const ModelConfig& c = config_;
  const size_t T = options_.max_num_tokens, S = options_.max_num_seqs, H = c.hidden_size, I = c.intermediate_size;
  x_ = DeviceBuffer(T * H * 4, "activations");
  h_ = DeviceBuffer(T * H * 2, "activations");
  qkv_ = DeviceBuffer(T * qkv_dim_ * 4, "activations");
  attn_ = DeviceBuffer(T * q_dim_ * 2, "activations");
  tmp_ = DeviceBuffer(T * H * 4, "activations");
  gate_up_ = DeviceBuffer(T * 2 * I * 4, "activations");
  act_max_ = DeviceBuffer(T * silu_partials(static_cast<int>(I)) * 4, "activations");
  act_ = DeviceBuffer(T * I * 2, "activations");
  h_last_ = DeviceBuffer(S * H * 2, "activations");
  if (fp8_) {
    in_q_ = DeviceBuffer(T * std::max<size_t>({H, static_cast<size_t>(q_dim_), I}), "fp8 activations");
    in_scale_ = DeviceBuffer(T * 4, "fp8 activation scales");
  }
  logits_ = DeviceBuffer(S * c.vocab_size * 4, "logits");
  max_table_stride_ = (c.max_positions + options_.block_size - 1) / options_.block_size;
  d_tokens_ = DeviceBuffer(T * 4, "step inputs");
  d_positions_ = DeviceBuffer(T * 4, "step inputs");
  d_token_seq_ = DeviceBuffer(T * 4, "step inputs");
  d_tables_ = DeviceBuffer(S * max_table_stride_ * 4, "block tables");
  d_rows_ = DeviceBuffer(S * 4, "step inputs");
  d_tiles_ = DeviceBuffer(T * sizeof(int2), "attention tiles");
  d_attn_partial_ = DeviceBuffer(attention_partial_bytes(c.num_heads, c.num_kv_heads, c.head_dim), "attention partial states");
  d_attn_counters_ = DeviceBuffer(attention_counter_bytes(), "attention split counters");
  CUDA_CHECK(cudaMemset(d_attn_counters_.as<void>(), 0, d_attn_counters_.bytes()));
  d_params_ = DeviceBuffer(S * sizeof(DeviceSamplingParams), "sampling parameters");
  d_sample_ws_ = DeviceBuffer(sample_workspace_bytes(static_cast<int>(S), c.vocab_size), "sampling workspace");
  d_out_tokens_ = DeviceBuffer(S * 4, "step outputs");
  d_out_logprobs_ = DeviceBuffer(S * 4, "step outputs");
  d_top_ids_ = DeviceBuffer(S * kMaxLogprobs * 4, "step outputs");
  d_top_logprobs_ = DeviceBuffer(S * kMaxLogprobs * 4, "step outputs");
}

// Each weight shape gets its kernels now, timed on random activations at every row bucket up to the step budget.
void CudaModel::tune_gemms() {
  const ModelConfig& c = config_;
  const int M = options_.max_num_tokens;
  launch_fill_random(h_.as<__nv_bfloat16>(), static_cast<size_t>(M) * c.hidden_size, 1.0f, 7, stream_);
  launch_fill_random(attn_.as<__nv_bfloat16>(), static_cast<size_t>(M) * q_dim_, 1.0f, 8, stream_);
  launch_fill_random(act_.as<__nv_bfloat16>(), static_cast<size_t>(M) * c.intermediate_size, 1.0f, 9, stream_);
  const Layer& l = layers_[0];
  tune_linear(h_.as<__nv_bfloat16>(), l.qkv, qkv_.as<float>(), M);
  tune_linear(attn_.as<__nv_bfloat16>(), l.o, tmp_.as<float>(), M);
  tune_linear(h_.as<__nv_bfloat16>(), l.gate_up, gate_up_.as<float>(), M);
  tune_linear(act_.as<__nv_bfloat16>(), l.down, tmp_.as<float>(), M);
  const __nv_bfloat16* head = c.tie_word_embeddings ? embed_.as<__nv_bfloat16>() : lm_head_.as<__nv_bfloat16>();
  const int S = std::min(options_.max_num_seqs, M);
  gemm_->tune(Operand::kBf16, h_.as<__nv_bfloat16>(), head, logits_.as<float>(), S, c.vocab_size, c.hidden_size, stream_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (timing_)
    for (const std::string& line : gemm_->report()) std::fprintf(stderr, "cuda gemm: %s\n", line.c_str());
}

void CudaModel::allocate_kv_cache() {
  const ModelConfig& c = config_;
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double used = static_cast<double>(total_b - free_b);
  double budget = options_.memory_fraction * static_cast<double>(total_b) - used;
  if (options_.kv_cache_bytes > 0) budget = std::min(budget, static_cast<double>(options_.kv_cache_bytes));
  const uint64_t per_block = 2ull * c.num_layers * c.num_kv_heads * c.head_dim * options_.block_size * sizeof(__nv_bfloat16);
  const double blocks = budget > 0 ? std::floor(budget / static_cast<double>(per_block)) : 0;
  if (blocks < 1)
    fail("no GPU memory left for the KV cache: weights and workspace use ", total_b - free_b, " of ", total_b,
         " bytes and the memory fraction is ", options_.memory_fraction, " (one block needs ", per_block, " bytes)");
  if (blocks < 2) fail("the KV cache budget holds ", blocks, " blocks; at least 2 are needed (one is kept for padding)");
  // The last block takes the KV writes of padding rows in graph-replayed steps.
  info_.num_blocks = static_cast<int>(std::min(blocks, 1.0e9)) - 1;
  scratch_block_ = info_.num_blocks;
  info_.block_size = options_.block_size;
  info_.bytes_per_block = per_block;
  layer_kv_elems_ = static_cast<size_t>(info_.num_blocks + 1) * c.num_kv_heads * options_.block_size * c.head_dim;
  k_cache_ = DeviceBuffer(layer_kv_elems_ * c.num_layers * sizeof(__nv_bfloat16), "KV cache");
  v_cache_ = DeviceBuffer(layer_kv_elems_ * c.num_layers * sizeof(__nv_bfloat16), "KV cache");
}

BatchLimits CudaModel::limits() const {
  return BatchLimits{options_.max_num_tokens, options_.max_num_seqs, info_.num_blocks, info_.block_size};
}

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

void CudaModel::ensure(DeviceBuffer& d, size_t bytes, const char* what) {
  if (d.bytes() >= bytes) return;
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffer may still be read
  d = DeviceBuffer(bytes, what);
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
  const int per_tile = attention_tile_tokens(config_.num_heads, config_.num_kv_heads, decode);
  h_tiles_.clear();
  for (int s = 0; s < b.num_seqs(); ++s)
    for (int i = 0; i < b.query_lens[s]; i += per_tile)
      h_tiles_.push_back(make_int2(b.seq_start[s] + i, std::min(per_tile, b.query_lens[s] - i)));
  attn_splits_ = decode ? attention_parallel_splits(static_cast<int>(h_tiles_.size()), config_.num_kv_heads, max_position, sm_count_) : 0;
}

int CudaModel::bucket_for(int S) const {
  int bucket = 1;
  while (bucket < S) bucket = bucket < 64 ? bucket * 2 : bucket + 64;
  return bucket;
}

bool CudaModel::forward_decode_graph(const StepBatch& b) {
  const int S = b.num_seqs();
  if (!use_graphs_ || b.num_tokens() != S) return false;
  for (int s = 0; s < S; ++s)
    if (!b.sample[s]) return false;
  const int B = bucket_for(S);
  if (B > options_.max_num_seqs || B > options_.max_num_tokens) return false;
  const int stride = max_table_stride_;
  // Inputs padded to the bucket; padding rows read and write only the scratch block.
  g_tokens_.assign(B, 0);
  g_positions_.assign(B, 0);
  g_seq_.resize(B);
  g_rows_.resize(B);
  g_tables_.assign(static_cast<size_t>(B) * stride, scratch_block_);
  for (int i = 0; i < B; ++i) g_seq_[i] = g_rows_[i] = i;
  for (int s = 0; s < S; ++s) {
    g_tokens_[s] = b.token_ids[s];
    g_positions_[s] = b.positions[s];
    std::copy(b.table(s), b.table(s) + b.table_stride, g_tables_.begin() + static_cast<size_t>(s) * stride);
  }
  auto copy = [&](DeviceBuffer& d, const PinnedVector<int32_t>& v) {
    CUDA_CHECK(cudaMemcpyAsync(d.as<void>(), v.data(), v.size() * 4, cudaMemcpyHostToDevice, stream_));
  };
  copy(d_tokens_, g_tokens_);
  copy(d_positions_, g_positions_);
  copy(d_token_seq_, g_seq_);
  copy(d_tables_, g_tables_);
  copy(d_rows_, g_rows_);
  h_tiles_.resize(B);
  for (int i = 0; i < B; ++i) h_tiles_[i] = make_int2(i, 1);
  decode_step_ = true;
  attn_splits_ = attention_parallel_splits(B, config_.num_kv_heads, config_.max_positions - 1, sm_count_);
  CUDA_CHECK(cudaMemcpyAsync(d_tiles_.as<void>(), h_tiles_.data(), B * sizeof(int2), cudaMemcpyHostToDevice, stream_));
  table_stride_ = stride;
  auto it = graphs_.find(B);
  if (it == graphs_.end()) {
    cudaGraph_t graph;
    capturing_ = true;
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      forward(B, B);
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      capturing_ = false;
      throw;
    }
    CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    capturing_ = false;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    it = graphs_.emplace(B, exec).first;
    graph_op_marks_[B] = op_marks_;
  }
  op_marks_ = graph_op_marks_[B];
  CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
  return true;
}

// --profile: one line per step on stderr (host enqueue, GPU forward, GPU sampling + copies).
void CudaModel::report_timing(int T, int S, std::chrono::steady_clock::time_point start,
                              std::chrono::steady_clock::time_point enqueued) {
  float fwd = 0, rest = 0;
  CUDA_CHECK(cudaEventElapsedTime(&fwd, events_[0], events_[1]));
  CUDA_CHECK(cudaEventElapsedTime(&rest, events_[1], events_[2]));
  const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const double host = std::chrono::duration<double, std::milli>(enqueued - start).count();
  std::string ops;
  for (int i = 0; i + 1 < op_marks_; ++i) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, op_events_[i], op_events_[i + 1]));
    ops += std::string(" ") + op_names_[i] + " " + std::to_string(static_cast<int>(ms * 1000)) + "us";
  }
  std::fprintf(stderr, "cuda step: %d tokens %d seqs: host enqueue %.2f ms, gpu forward %.2f ms, gpu sample+copy %.2f ms, wall %.2f ms; layer 0:%s\n",
               T, S, host, fwd, rest, wall, ops.c_str());
}

// --profile: events between the ops of layer 0; inside a graph capture they become
// timed nodes of the graph (external records).
#define TICK(li, name)                                                                                         \
  do {                                                                                                         \
    if (timing_ && (li) == 0 && op_marks_ < kOpEvents) {                                                       \
      op_names_[op_marks_] = name;                                                                             \
      CUDA_CHECK(cudaEventRecordWithFlags(op_events_[op_marks_++], stream_, capturing_ ? cudaEventRecordExternal : 0)); \
    }                                                                                                          \
  } while (0)

void CudaModel::forward(int T, int sampled) {
  const ModelConfig& c = config_;
  const int H = c.hidden_size;
  launch_embed(embed_.as<__nv_bfloat16>(), d_tokens_.as<int32_t>(), x_.as<float>(), T, H, stream_);
  op_marks_ = 0;
  const bool few = few_rows(T);
  const Residual r = few ? layers_few(T) : layers_batched(T);
  if (sampled == 0) return;
  // The last residual add and the final norm, for the sampled rows only (every row when each
  // token samples: decode, where the few-row path's residual is already complete).
  if (few && sampled == T)
    launch_rmsnorm(r.x, final_norm_.as<float>(), c.rms_norm_eps, h_last_.as<__nv_bfloat16>(), T, H, stream_);
  else
    launch_add_rmsnorm(r.x, r.delta, r.dq, r.bias, final_norm_.as<float>(), c.rms_norm_eps, h_last_.as<__nv_bfloat16>(),
                       d_rows_.as<int32_t>(), sampled, H, stream_);
  const __nv_bfloat16* head = c.tie_word_embeddings ? embed_.as<__nv_bfloat16>() : lm_head_.as<__nv_bfloat16>();
  gemm_->run(Operand::kBf16, h_last_.as<__nv_bfloat16>(), head, logits_.as<float>(), sampled, c.vocab_size, H, stream_);
}

CudaModel::Residual CudaModel::layers_batched(int T) {
  const ModelConfig& c = config_;
  const int H = c.hidden_size, I = c.intermediate_size, D = c.head_dim, B = options_.block_size;
  float* x = x_.as<float>();
  const float* pending = nullptr;  // the previous layer's MLP output, added to the residual by the next norm
  const float* pending_bias = nullptr;
  Dequant pending_dq;
  for (int li = 0; li < c.num_layers; ++li) {
    const Layer& l = layers_[li];
    TICK(li, "norm");
    __nv_bfloat16* kc = k_cache_.as<__nv_bfloat16>() + li * layer_kv_elems_;
    __nv_bfloat16* vc = v_cache_.as<__nv_bfloat16>() + li * layer_kv_elems_;
    launch_add_rmsnorm(x, pending, pending_dq, pending_bias, l.attn_norm.as<float>(), c.rms_norm_eps,
                       h_.as<__nv_bfloat16>(), nullptr, T, H, stream_, q_out(), q_scale());
    TICK(li, "qkv");
    const Dequant qkv_dq = linear(fp8_ ? nullptr : h_.as<__nv_bfloat16>(), l.qkv, qkv_.as<float>(), T, stream_);
    TICK(li, "rope+kv");
    launch_rope_kv_write(qkv_.as<float>(), qkv_dq, l.b_qkv.as<float>(), d_positions_.as<int32_t>(), d_token_seq_.as<int32_t>(),
                         d_tables_.as<int32_t>(), table_stride_, rope_cos_sin_.as<float2>(), kc, vc, T, c.num_heads,
                         c.num_kv_heads, D, B, stream_);
    TICK(li, "attn");
    launch_paged_attention(attention_args(li), decode_step_, attn_splits_, sm_count_, stream_);
    TICK(li, "o");
    const Dequant o_dq = linear(attn_.as<__nv_bfloat16>(), l.o, tmp_.as<float>(), T, stream_);
    TICK(li, "norm");
    launch_add_rmsnorm(x, tmp_.as<float>(), o_dq, l.b_o.as<float>(), l.mlp_norm.as<float>(), c.rms_norm_eps,
                       h_.as<__nv_bfloat16>(), nullptr, T, H, stream_, q_out(), q_scale());
    TICK(li, "gate_up");
    const Dequant gu_dq = linear(fp8_ ? nullptr : h_.as<__nv_bfloat16>(), l.gate_up, gate_up_.as<float>(), T, stream_);
    TICK(li, "silu");
    // FP8: SwiGLU quantizes its output for the down GEMM.
    launch_silu_mul(gate_up_.as<float>(), gu_dq, l.b_gate_up.as<float>(), act_.as<__nv_bfloat16>(), T, I, stream_, q_out(),
                    q_scale(), fp8_ ? act_max_.as<float>() : nullptr);
    TICK(li, "down");
    pending_dq = linear(fp8_ ? nullptr : act_.as<__nv_bfloat16>(), l.down, tmp_.as<float>(), T, stream_);
    TICK(li, "end");
    pending = tmp_.as<float>();
    pending_bias = l.b_down.as<float>();
  }
  return Residual{x, pending, pending_dq, pending_bias};
}

bool CudaModel::few_rows(int T) const { return few_rows_ && T <= kFewRows; }

FusedGemv CudaModel::projection(const Linear& w, const DeviceBuffer& bias, const __nv_bfloat16* in) const {
  FusedGemv g;
  g.rows = in;
  g.W = w.w.as<void>();
  g.w_fp8 = w.scale.bytes() > 0;
  g.scale = w.scale.as<float>();
  g.bias = bias.as<float>();
  g.N = w.N;
  g.K = w.K;
  return g;
}

CudaModel::Residual CudaModel::layers_few(int T) {
  const ModelConfig& c = config_;
  const int H = c.hidden_size;
  float* x = x_.as<float>();  // the O and down projections add into it
  __nv_bfloat16* h = h_.as<__nv_bfloat16>();
  for (int li = 0; li < c.num_layers; ++li) {
    const Layer& l = layers_[li];
    TICK(li, "norm");
    launch_rmsnorm(x, l.attn_norm.as<float>(), c.rms_norm_eps, h, T, H, stream_);
    TICK(li, "qkv+rope+kv");
    FusedGemv qkv = projection(l.qkv, l.b_qkv, h);
    qkv.epilogue = GemvEpilogue::kRopeKv;
    qkv.out = qkv_.as<float>();
    qkv.rope = RopeKvTarget{d_positions_.as<int32_t>(), d_token_seq_.as<int32_t>(), d_tables_.as<int32_t>(), table_stride_,
                            rope_cos_sin_.as<float2>(), k_cache_.as<__nv_bfloat16>() + li * layer_kv_elems_,
                            v_cache_.as<__nv_bfloat16>() + li * layer_kv_elems_, c.num_heads, c.num_kv_heads, c.head_dim,
                            options_.block_size};
    launch_fused_gemv(qkv, T, stream_);
    TICK(li, "attn");
    AttentionArgs attn = attention_args(li);
    attn.num_tiles = T;  // a token per block row, whatever the step's tiles
    launch_few_attention(attn, stream_);
    TICK(li, "o+residual");
    FusedGemv o = projection(l.o, l.b_o, attn_.as<__nv_bfloat16>());
    o.residual = x;
    launch_fused_gemv(o, T, stream_);
    TICK(li, "norm");
    launch_rmsnorm(x, l.mlp_norm.as<float>(), c.rms_norm_eps, h, T, H, stream_);
    TICK(li, "gate_up+silu");
    FusedGemv gate_up = projection(l.gate_up, l.b_gate_up, h);
    gate_up.epilogue = GemvEpilogue::kSwiGLU;
    gate_up.act = act_.as<__nv_bfloat16>();
    launch_fused_gemv(gate_up, T, stream_);
    TICK(li, "down+residual");
    FusedGemv down = projection(l.down, l.b_down, act_.as<__nv_bfloat16>());
    down.residual = x;
    launch_fused_gemv(down, T, stream_);
    TICK(li, "end");
  }
  return Residual{x, nullptr, Dequant{}, nullptr};
}

AttentionArgs CudaModel::attention_args(int li) const {
  const ModelConfig& c = config_;
  return AttentionArgs{qkv_.as<float>(), d_positions_.as<int32_t>(), d_token_seq_.as<int32_t>(), d_tables_.as<int32_t>(),
                       table_stride_, k_cache_.as<__nv_bfloat16>() + li * layer_kv_elems_,
                       v_cache_.as<__nv_bfloat16>() + li * layer_kv_elems_, attn_.as<__nv_bfloat16>(), d_tiles_.as<int2>(),
                       static_cast<int>(h_tiles_.size()), c.num_heads, c.num_kv_heads, c.head_dim, options_.block_size,
                       d_attn_partial_.as<float>(), d_attn_counters_.as<int>()};
}

#undef TICK

}  // namespace tachyon

extern "C" tachyon::Backend* tachyon_create_cuda_backend(const tachyon::ModelConfig& config, const tachyon::ModelWeights* weights,
                                                        const tachyon::GpuOptions& options, char* error, size_t error_len) {
  try {
    return new tachyon::CudaModel(config, weights, options);
  } catch (const std::exception& e) {
    std::snprintf(error, error_len, "%s", e.what());
    return nullptr;
  }
}

// Checked by the addon before it creates a backend (backend.h, kBackendAbiVersion).
extern "C" int tachyon_backend_abi_version() { return tachyon::kBackendAbiVersion; }
