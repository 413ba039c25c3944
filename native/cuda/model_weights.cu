// CudaModel's weights: a checkpoint's matrices (or random ones) onto the GPU, fused per projection, and FP8 quantization.
#include "cuda/cuda_model.h"

#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda/fp8.h"
#include "cuda/upload.h"

namespace tachyon {

namespace {

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

void CudaModel::upload_weights(const ModelWeights& w) {
  const ModelConfig& c = config_;
  embed_ = upload_bf16({&w.embed}, "embeddings");
  if (!c.tie_word_embeddings) lm_head_ = upload_bf16({&w.lm_head}, "LM head");
  final_norm_ = upload(w.final_norm, "final norm");
  // LayerNorm runs where the norm kernels get a bias: every LayerNorm must bring one.
  if (c.norm == NormKind::kLayer && w.final_norm_bias.empty()) fail("LayerNorm without a bias is not supported on cuda (final norm)");
  if (!w.final_norm_bias.empty()) final_norm_bias_ = upload(w.final_norm_bias, "final norm bias");
  if (c.position == PositionKind::kLearned) pos_embed_ = upload_bf16({&w.pos_embed}, "position embeddings");
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
    // SwiGLU: gate and up stacked; a GELU MLP (GPT-2): its fc alone, in the same slot.
    if (c.mlp == MlpKind::kSwiGLU) d.gate_up = linear_of({&l.w_gate, &l.w_up}, 2 * c.intermediate_size, c.hidden_size, "gate/up weights");
    else d.gate_up = linear_of({&l.w_up}, c.intermediate_size, c.hidden_size, "fc weights");
    d.down = linear_of({&l.w_down}, c.hidden_size, c.intermediate_size, "down weights");
    d.attn_norm = upload(l.attn_norm, "norm weights");
    d.mlp_norm = upload(l.mlp_norm, "norm weights");
    if (c.norm == NormKind::kLayer && (l.attn_norm_bias.empty() || l.mlp_norm_bias.empty()))
      fail("LayerNorm without a bias is not supported on cuda (layer norms)");
    if (!l.attn_norm_bias.empty()) d.attn_norm_bias = upload(l.attn_norm_bias, "norm bias");
    if (!l.mlp_norm_bias.empty()) d.mlp_norm_bias = upload(l.mlp_norm_bias, "norm bias");
    if (!l.bq.empty()) d.b_qkv = upload(concat({&l.bq, &l.bk, &l.bv}), "QKV bias");
    if (!l.bo.empty()) d.b_o = upload(l.bo, "output bias");
    if (!l.b_up.empty()) d.b_gate_up = upload(concat({&l.b_gate, &l.b_up}), "gate/up bias");  // GELU: b_gate empty
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
  const std::vector<float> zeros(c.hidden_size, 0.0f);
  const bool layer_norm = c.norm == NormKind::kLayer;
  final_norm_ = upload(ones, "final norm");
  if (layer_norm) final_norm_bias_ = upload(zeros, "final norm bias");
  if (c.position == PositionKind::kLearned) pos_embed_ = random(c.max_positions, c.hidden_size, "position embeddings");
  const int up_rows = c.mlp == MlpKind::kSwiGLU ? 2 * c.intermediate_size : c.intermediate_size;
  for (int i = 0; i < c.num_layers; ++i) {
    Layer d;
    d.qkv = {random(qkv_dim_, c.hidden_size, "QKV weights"), {}, qkv_dim_, c.hidden_size};
    d.o = {random(c.hidden_size, q_dim_, "attention output weights"), {}, c.hidden_size, q_dim_};
    d.gate_up = {random(up_rows, c.hidden_size, "gate/up weights"), {}, up_rows, c.hidden_size};
    d.down = {random(c.hidden_size, c.intermediate_size, "down weights"), {}, c.hidden_size, c.intermediate_size};
    d.attn_norm = upload(ones, "norm weights");
    d.mlp_norm = upload(ones, "norm weights");
    if (layer_norm) {
      d.attn_norm_bias = upload(zeros, "norm bias");
      d.mlp_norm_bias = upload(zeros, "norm bias");
    }
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

}  // namespace tachyon
