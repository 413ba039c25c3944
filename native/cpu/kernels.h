// The dense per-token operations of a Llama-family layer, on float32
// activations. Each output element is computed by one fixed sequence of
// operations that depends only on its own row's inputs, never on how many
// other rows are in the batch: that is what makes the CPU backend
// batch-invariant bit for bit.
#pragma once
#include <vector>

#include "cpu/thread_pool.h"
#include "cpu/weights.h"

namespace tachyon {

// y[T, N] = x[T, K] · W[N, K]^T (+ bias[N] when not empty).
void matmul(ThreadPool& pool, const float* x, int num_tokens, const Matrix& w, const std::vector<float>& bias,
            float* y);

// y[T, H] = x / sqrt(mean(x^2) + eps) * weight, per row.
void rms_norm(ThreadPool& pool, const float* x, int num_tokens, int hidden, const std::vector<float>& weight,
              float eps, float* y);

// y[T, H] = (x - mean) / sqrt(var + eps) * weight + bias, per row (GPT-2, GPT-J).
void layer_norm(ThreadPool& pool, const float* x, int num_tokens, int hidden, const std::vector<float>& weight,
                const std::vector<float>& bias, float eps, float* y);

// x[T, H] += y[T, H]
void add_in_place(float* x, const float* y, long n);

// act[T, I] = silu(gate[T, I]) * up[T, I], in place into gate.
void silu_mul(ThreadPool& pool, float* gate, const float* up, int num_tokens, int inter);

// x[T, I] = GELU(x), with transformers' tanh approximation (gelu_new) or exactly (erf).
void gelu(ThreadPool& pool, float* x, int num_tokens, int inter, bool tanh_approximation);

// Rotary embedding as transformers applies it: pairs (i, i + D/2) over the whole head (Llama's
// rotate-half), or pairs (2i, 2i + 1) over the first rotary_dim dimensions (GPT-J's
// rotate-every-two). Learned positions: nothing to do.
class Rope {
 public:
  explicit Rope(const ModelConfig& config);
  // cos/sin [T, rotary_dim/2] for this step's positions.
  void prepare(const int* positions, int num_tokens);
  // Rotates x[T, num_heads * head_dim] in place.
  void apply(ThreadPool& pool, float* x, int num_tokens, int num_heads) const;

 private:
  int head_dim_, pairs_;
  bool interleaved_;
  std::vector<float> inv_freq_;  // [rotary_dim/2]
  std::vector<float> cos_, sin_;
};

}  // namespace tachyon
