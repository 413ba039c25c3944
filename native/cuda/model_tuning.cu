// CudaModel's GEMM tuning at load: each weight shape's kernels chosen by timing at every row bucket.
#include "cuda/cuda_model.h"

namespace tachyon {

void CudaModel::tune_linear(const __nv_bfloat16* in, const Linear& w, int M, bool into_residual) {
  const GemmOperands g = into_residual ? residual_operands(in, w, M, stream_) : gemm_operands(in, w, M, stream_, proj_.as<void>());
  gemm_->tune(g.type, g.out, g.A, g.W, g.D, M, w.N, w.K, g.scales, stream_);
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
  tune_linear(attn_.as<__nv_bfloat16>(), l.o, M, residual_in_gemm_);
  tune_linear(h_.as<__nv_bfloat16>(), l.gate_up, M);
  tune_linear(act_.as<__nv_bfloat16>(), l.down, M, residual_in_gemm_);
  const __nv_bfloat16* head = c.tie_word_embeddings ? embed_.as<__nv_bfloat16>() : lm_head_.as<__nv_bfloat16>();
  const int S = std::min(options_.max_num_seqs, M);
  gemm_->tune(Operand::kBf16, Output::kF32, h_.as<__nv_bfloat16>(), head, logits_.as<float>(), S, c.vocab_size, c.hidden_size,
              GemmScales{}, stream_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (const std::string& line : gemm_->report()) {
    if (timing_) std::fprintf(stderr, "cuda gemm: %s\n", line.c_str());
    info_.gemm_tuning += line + "\n";
  }
}

}  // namespace tachyon
