// CudaModel's weights: a checkpoint's matrices (or random ones) onto the GPU, fused per projection, and FP8 quantization.
#include "cuda/cuda_model.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda/fp8.h"
#include "cuda/int8.h"
#include "cuda/upload.h"

namespace tachyon {

namespace {

// Rows of one or more host matrices stacked and rounded to bf16; with `order`, stacked row r goes
// to row order[r] instead.
DeviceBuffer upload_bf16(const std::vector<const Matrix*>& parts, const char* what, const std::vector<int>* order = nullptr) {
  size_t rows = 0;
  const int cols = parts[0]->cols;
  for (auto* m : parts) rows += m->rows;
  std::vector<__nv_bfloat16> host(rows * cols);
  std::vector<float> row(cols);
  size_t r = 0;
  for (auto* m : parts)
    for (int i = 0; i < m->rows; ++i, ++r) {
      widen_row(*m, i, row.data());
      const size_t to = order ? static_cast<size_t>((*order)[r]) : r;
      for (int j = 0; j < cols; ++j) host[to * cols + j] = __float2bfloat16(row[j]);
    }
  return upload(host, what);
}

// GPT-J turns pairs (2i, 2i + 1) of a head's first rotary_dim dims; the RoPE kernel turns pairs
// (j, j + D/2). Moving q and k dim 2i to j = i and 2i + 1 to i + D/2 (the dims past rotary_dim
// fill the rest, where the rotary table's angles are zero) makes the kernel's rotation GPT-J's;
// q . k is a sum over dims, so moving both alike leaves every score as it was. V stays put.
std::vector<int> interleaved_rotary_order(const ModelConfig& c, int qkv_rows) {
  const int D = c.head_dim, half = D / 2, r2 = c.rotary_dim / 2;
  std::vector<int> in_head(D);  // old dim -> new dim
  for (int i = 0; i < r2; ++i) {
    in_head[2 * i] = i;
    in_head[2 * i + 1] = i + half;
  }
  for (int d = 2 * r2; d < D; ++d) {  // pass-through dims: the free slots of both halves, in order
    const int k = d - 2 * r2;         // 0 .. D - rotary_dim - 1
    in_head[d] = k < half - r2 ? r2 + k : half + r2 + (k - (half - r2));
  }
  std::vector<int> order(qkv_rows);
  const int rotated_rows = (c.num_heads + c.num_kv_heads) * D;  // q and k; v rows keep their places
  for (int r = 0; r < qkv_rows; ++r) order[r] = r < rotated_rows ? (r / D) * D + in_head[r % D] : r;
  return order;
}

template <typename T>
std::vector<T> reorder(const std::vector<T>& v, const std::vector<int>& order) {
  std::vector<T> out(v.size());
  for (size_t r = 0; r < v.size(); ++r) out[order[r]] = v[r];
  return out;
}

// Rows of FP8 or INT8 matrices stacked as they are, with their per-row scales (and `order` as upload_bf16's).
std::pair<DeviceBuffer, DeviceBuffer> upload_quantized(const std::vector<const Matrix*>& parts, const char* what,
                                                 const std::vector<int>* order = nullptr) {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  for (auto* m : parts) {
    const auto* b = static_cast<const uint8_t*>(m->data);
    bytes.insert(bytes.end(), b, b + static_cast<size_t>(m->rows) * m->cols);
    scales.insert(scales.end(), m->scale.begin(), m->scale.end());
  }
  if (order) {
    const size_t cols = parts[0]->cols;
    std::vector<uint8_t> moved(bytes.size());
    for (size_t r = 0; r < scales.size(); ++r) std::copy_n(&bytes[r * cols], cols, &moved[(*order)[r] * cols]);
    bytes = std::move(moved);
    scales = reorder(scales, *order);
  }
  return {upload(bytes, what), upload(scales, "weight scales")};
}

bool all_of(const std::vector<const Matrix*>& parts, DType dtype) {
  for (auto* m : parts)
    if (m->dtype != dtype) return false;
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
  if (!w.lm_head_bias.empty()) lm_head_bias_ = upload(w.lm_head_bias, "LM head bias");
  const bool interleaved = c.position == PositionKind::kRopeInterleaved;
  const std::vector<int> qkv_order = interleaved ? interleaved_rotary_order(c, qkv_dim_) : std::vector<int>{};
  for (const LayerWeights& l : w.layers) {
    Layer d;
    // FP8 (INT8) checkpoint weights go up as they are when serving FP8 (INT8); otherwise as bf16
    // (dequantized if need be), quantized on the GPU afterwards if asked.
    auto linear_of = [&](const std::vector<const Matrix*>& parts, int N, int K, const char* what, const std::vector<int>* order = nullptr) {
      Linear lin;
      lin.N = N;
      lin.K = K;
      if ((fp8_ && all_of(parts, DType::kF8E4M3)) || (int8_ && all_of(parts, DType::kI8))) {
        std::tie(lin.w, lin.scale) = upload_quantized(parts, what, order);
        lin.type = fp8_ ? WeightType::kFp8 : WeightType::kInt8;
      } else {
        lin.w = upload_bf16(parts, what, order);
      }
      return lin;
    };
    d.qkv = linear_of({&l.wq, &l.wk, &l.wv}, qkv_dim_, c.hidden_size, "QKV weights", interleaved ? &qkv_order : nullptr);
    d.o = linear_of({&l.wo}, c.hidden_size, q_dim_, "attention output weights");
    // SwiGLU: gate and up stacked; a GELU MLP (GPT-2): its fc alone, in the same slot.
    if (c.mlp == MlpKind::kSwiGLU) d.gate_up = linear_of({&l.w_gate, &l.w_up}, 2 * c.intermediate_size, c.hidden_size, "gate/up weights");
    else d.gate_up = linear_of({&l.w_up}, c.intermediate_size, c.hidden_size, "fc weights");
    d.down = linear_of({&l.w_down}, c.hidden_size, c.intermediate_size, "down weights");
    d.attn_norm = upload(l.attn_norm, "norm weights");
    if (!c.parallel_block) d.mlp_norm = upload(l.mlp_norm, "norm weights");  // GPT-J: one norm feeds both
    if (c.norm == NormKind::kLayer && (l.attn_norm_bias.empty() || (!c.parallel_block && l.mlp_norm_bias.empty())))
      fail("LayerNorm without a bias is not supported on cuda (layer norms)");
    // The parallel block's pending bias is the MLP's; an attention-output bias would have nowhere to go.
    if (c.parallel_block && !l.bo.empty()) fail("a parallel block with an attention output bias is not supported on cuda");
    if (!l.attn_norm_bias.empty()) d.attn_norm_bias = upload(l.attn_norm_bias, "norm bias");
    if (!l.mlp_norm_bias.empty()) d.mlp_norm_bias = upload(l.mlp_norm_bias, "norm bias");
    if (!l.bq.empty()) {
      const std::vector<float> b = concat({&l.bq, &l.bk, &l.bv});
      d.b_qkv = upload(interleaved ? reorder(b, qkv_order) : b, "QKV bias");
    }
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
  if (c.lm_head_bias) lm_head_bias_ = upload(std::vector<float>(c.vocab_size, 0.0f), "LM head bias");
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
    if (c.qkv_bias) {  // small and varied, so that the kernels adding it are tested against each other
      std::vector<float> b(qkv_dim_);
      for (int k = 0; k < qkv_dim_; ++k) b[k] = 0.25f * std::sin(0.37f * static_cast<float>(k) + static_cast<float>(seed + i));
      d.b_qkv = upload(b, "QKV bias");
    }
    if (layer_norm) {
      d.attn_norm_bias = upload(zeros, "norm bias");
      d.mlp_norm_bias = upload(zeros, "norm bias");
    }
    layers_.push_back(std::move(d));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaModel::pad_weight_rows(int bytes) {
  // Whole 128-byte lines: each row starts on one, as packed rows of a K divisible by 128 do.
  if (bytes <= 0 || bytes % 128 != 0) fail("FP8 weight rows are padded by a positive multiple of 128 bytes, not ", bytes);
  for (Layer& l : layers_) {
    for (Linear* lin : {&l.qkv, &l.o, &l.gate_up, &l.down}) {
      if (lin->type != WeightType::kFp8) continue;
      const size_t stride = static_cast<size_t>(lin->K) + bytes;
      DeviceBuffer padded(static_cast<size_t>(lin->N) * stride, "fp8 weights (padded rows)");
      CUDA_CHECK(cudaMemsetAsync(padded.as<void>(), 0, padded.bytes(), stream_));
      CUDA_CHECK(cudaMemcpy2DAsync(padded.as<void>(), stride, lin->w.as<void>(), lin->K, lin->K, lin->N, cudaMemcpyDeviceToDevice,
                                   stream_));
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      lin->w = std::move(padded);  // frees the packed copy
    }
  }
}

// E4M3 or int8 with a scale per output channel; embeddings and the LM head stay bf16.
void CudaModel::quantize_weights(WeightType to) {
  const char* name = to == WeightType::kFp8 ? "fp8" : "int8";
  for (Layer& l : layers_) {
    for (Linear* lin : {&l.qkv, &l.o, &l.gate_up, &l.down}) {
      // The GEMVs read 16-byte chunks of a row; W8A8's int8 GEMM and scaling kernel take four outputs at a time.
      if (lin->K % 16 != 0) fail(name, " needs in-features divisible by 16, got ", lin->K);
      if (w8a8_ && lin->N % 4 != 0) fail("w8a8 needs out-features divisible by 4, got ", lin->N);
      if (lin->type == to) continue;  // already so in the checkpoint
      DeviceBuffer q(static_cast<size_t>(lin->N) * lin->K, to == WeightType::kFp8 ? "fp8 weights" : "int8 weights");
      DeviceBuffer scale(static_cast<size_t>(lin->N) * 4, "weight scales");
      if (to == WeightType::kFp8)
        launch_quantize_weight(lin->w.as<__nv_bfloat16>(), q.as<__nv_fp8_e4m3>(), scale.as<float>(), lin->N, lin->K, stream_);
      else
        launch_quantize_weight_int8(lin->w.as<__nv_bfloat16>(), q.as<int8_t>(), scale.as<float>(), lin->N, lin->K, stream_);
      CUDA_CHECK(cudaStreamSynchronize(stream_));
      lin->w = std::move(q);  // frees the bf16 copy
      lin->scale = std::move(scale);
      lin->type = to;
    }
  }
}

}  // namespace tachyon
