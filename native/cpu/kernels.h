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

// x[T, H] += y[T, H]
void add_in_place(float* x, const float* y, long n);

// act[T, I] = silu(gate[T, I]) * up[T, I], in place into gate.
void silu_mul(ThreadPool& pool, float* gate, const float* up, int num_tokens, int inter);

// Rotary embedding in the rotate-half layout transformers uses.
class Rope {
 public:
  explicit Rope(const ModelConfig& config);
  // cos/sin [T, head_dim/2] for this step's positions.
  void prepare(const int* positions, int num_tokens);
  // Rotates x[T, num_heads * head_dim] in place.
  void apply(ThreadPool& pool, float* x, int num_tokens, int num_heads) const;

 private:
  int head_dim_;
  std::vector<float> inv_freq_;  // [head_dim/2]
  std::vector<float> cos_, sin_;
};

}  // namespace tachyon
