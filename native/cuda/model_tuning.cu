// CudaModel's GEMM tuning at load: each weight shape's kernels chosen by timing at every row bucket.
#include "cuda/cuda_model.h"

#include "cuda/fp8.h"
#include "cuda/int8.h"

namespace tachyon {

void CudaModel::tune_linear(const __nv_bfloat16* in, const Linear& w, int M) {
  void* out = proj_.as<void>();
  if (w.type == WeightType::kInt8 && w8a8_) {
    launch_quantize_rows_int8(in, in_q_.as<int8_t>(), in_scale_.as<float>(), M, w.K, stream_);
    gemm_->tune(Operand::kInt8, Output::kI32, in_q_.as<void>(), w.w.as<void>(), acc_.as<void>(), M, w.N, w.K, GemmScales{}, stream_);
    return;
  }
  if (w.type == WeightType::kInt8) {
    launch_dequantize_weight_int8(w.w.as<int8_t>(), w.scale.as<float>(), dequant_.as<__nv_bfloat16>(), w.N, w.K, stream_);
    gemm_->tune(Operand::kBf16, Output::kBf16, in, dequant_.as<void>(), out, M, w.N, w.K, GemmScales{}, stream_);
    return;
  }
  if (!fp8_) {
    gemm_->tune(Operand::kBf16, Output::kBf16, in, w.w.as<void>(), out, M, w.N, w.K, GemmScales{}, stream_);
    return;
  }
  launch_quantize_rows(in, in_q_.as<__nv_fp8_e4m3>(), in_scale_.as<float>(), M, w.K, stream_);
  gemm_->tune(Operand::kFp8, Output::kBf16, in_q_.as<void>(), w.w.as<void>(), out, M, w.N, w.K,
              GemmScales{in_scale_.as<float>(), w.scale.as<float>()}, stream_);
}

// Each weight shape gets its kernels now, timed on random activations at every row bucket up to the step budget.
void CudaModel::tune_gemms() {
  const ModelConfig& c = config_;
  const int M = options_.max_num_tokens;
  launch_fill_random(h_.as<__nv_bfloat16>(), static_cast<size_t>(M) * c.hidden_size, 1.0f, 7, stream_);
  launch_fill_random(attn_.as<__nv_bfloat16>(), static_cast<size_t>(M) * q_dim_, 1.0f, 8, stream_);
  launch_fill_random(act_.as<__nv_bfloat16>(), static_cast<size_t>(M) * c.intermediate_size, 1.0f, 9, stream_);
  const Layer& l = layers_[0];
  tune_linear(h_.as<__nv_bfloat16>(), l.qkv, M);
  tune_linear(attn_.as<__nv_bfloat16>(), l.o, M);
  tune_linear(h_.as<__nv_bfloat16>(), l.gate_up, M);
  tune_linear(act_.as<__nv_bfloat16>(), l.down, M);
  const __nv_bfloat16* head = c.tie_word_embeddings ? embed_.as<__nv_bfloat16>() : lm_head_.as<__nv_bfloat16>();
  const int S = std::min(options_.max_num_seqs, M);
  gemm_->tune(Operand::kBf16, Output::kF32, h_.as<__nv_bfloat16>(), head, logits_.as<float>(), S, c.vocab_size, c.hidden_size,
              GemmScales{}, stream_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (timing_)
    for (const std::string& line : gemm_->report()) std::fprintf(stderr, "cuda gemm: %s\n", line.c_str());
}

}  // namespace tachyon
