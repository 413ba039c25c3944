#include "cpu/kernels.h"

#include "cpu/rope_freq.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace tachyon {

namespace {

constexpr int kRowGroup = 4;    // weight rows per register tile
constexpr int kTokenGroup = 4;  // tokens per register tile
constexpr int kTokenTile = 64;

}  // namespace

void matmul(ThreadPool& pool, const float* x, int num_tokens, const Matrix& w, const std::vector<float>& bias,
            float* y) {
  const int n_rows = w.rows, k = w.cols;
  const bool direct = w.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(w.data) % 4 == 0;
  pool.parallel_for((n_rows + kRowGroup - 1) / kRowGroup, [&](int g_begin, int g_end, int) {
    std::vector<float> scratch(direct ? 0 : static_cast<size_t>(kRowGroup) * k);
    const float* rows[kRowGroup];
    float out[kTokenGroup * kRowGroup];
    for (int t0 = 0; t0 < num_tokens; t0 += kTokenTile) {
      const int t1 = std::min(num_tokens, t0 + kTokenTile);
      for (int g = g_begin; g < g_end; ++g) {
        const int n0 = g * kRowGroup;
        const int nr = std::min(kRowGroup, n_rows - n0);
        for (int r = 0; r < nr; ++r) {
          if (direct) {
            rows[r] = static_cast<const float*>(w.data) + static_cast<size_t>(n0 + r) * k;
          } else {
            widen_row(w, n0 + r, scratch.data() + static_cast<size_t>(r) * k);
            rows[r] = scratch.data() + static_cast<size_t>(r) * k;
          }
        }
        for (int t = t0; t < t1; t += kTokenGroup) {
          const int nt = std::min(kTokenGroup, t1 - t);
          const float* xs[kTokenGroup];
          for (int c = 0; c < nt; ++c) xs[c] = x + static_cast<size_t>(t + c) * k;
          if (nt == kTokenGroup && nr == kRowGroup) {
            dot_tile<kTokenGroup, kRowGroup>(xs, rows, k, out);
          } else if (nr == kRowGroup) {
            for (int c = 0; c < nt; ++c) dot_tile<1, kRowGroup>(xs + c, rows, k, out + c * kRowGroup);
          } else {
            for (int c = 0; c < nt; ++c)
              for (int r = 0; r < nr; ++r) dot_tile<1, 1>(xs + c, rows + r, k, out + c * kRowGroup + r);
          }
          for (int c = 0; c < nt; ++c) {
            float* yt = y + static_cast<size_t>(t + c) * n_rows + n0;
            for (int r = 0; r < nr; ++r) yt[r] = bias.empty() ? out[c * kRowGroup + r] : out[c * kRowGroup + r] + bias[n0 + r];
          }
        }
      }
    }
  });
}

void rms_norm(ThreadPool& pool, const float* x, int num_tokens, int hidden, const std::vector<float>& weight,
              float eps, float* y) {
  pool.parallel_for(num_tokens, [&](int begin, int end, int) {
    for (int t = begin; t < end; ++t) {
      const float* xt = x + static_cast<size_t>(t) * hidden;
      float* yt = y + static_cast<size_t>(t) * hidden;
      const float ss = dot(xt, xt, hidden);
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(hidden) + eps);
      for (int i = 0; i < hidden; ++i) yt[i] = weight[i] * (xt[i] * inv);
    }
  });
}

void layer_norm(ThreadPool& pool, const float* x, int num_tokens, int hidden, const std::vector<float>& weight,
                const std::vector<float>& bias, float eps, float* y) {
  pool.parallel_for(num_tokens, [&](int begin, int end, int) {
    for (int t = begin; t < end; ++t) {
      const float* xt = x + static_cast<size_t>(t) * hidden;
      float* yt = y + static_cast<size_t>(t) * hidden;
      float sum = 0.0f;
      for (int i = 0; i < hidden; ++i) sum += xt[i];
      const float mean = sum / static_cast<float>(hidden);
      float var = 0.0f;
      for (int i = 0; i < hidden; ++i) var += (xt[i] - mean) * (xt[i] - mean);
      const float inv = 1.0f / std::sqrt(var / static_cast<float>(hidden) + eps);
      for (int i = 0; i < hidden; ++i) yt[i] = (xt[i] - mean) * inv * weight[i] + (bias.empty() ? 0.0f : bias[i]);
    }
  });
}

void gelu(ThreadPool& pool, float* x, int num_tokens, int inter, bool tanh_approximation) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f, kInvSqrt2 = 0.7071067811865476f;
  pool.parallel_for(num_tokens, [&](int begin, int end, int) {
    for (long i = static_cast<long>(begin) * inter; i < static_cast<long>(end) * inter; ++i) {
      const float v = x[i];
      x[i] = tanh_approximation ? 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)))
                                : 0.5f * v * (1.0f + std::erf(v * kInvSqrt2));
    }
  });
}

void add_in_place(float* x, const float* y, long n) {
  for (long i = 0; i < n; ++i) x[i] += y[i];
}

void silu_mul(ThreadPool& pool, float* gate, const float* up, int num_tokens, int inter) {
  pool.parallel_for(num_tokens, [&](int begin, int end, int) {
    for (long i = static_cast<long>(begin) * inter; i < static_cast<long>(end) * inter; ++i) {
      const float g = gate[i];
      gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

Rope::Rope(const ModelConfig& c)
    : head_dim_(c.head_dim),
      pairs_(c.position == PositionKind::kLearned ? 0 : c.rotary_dim / 2),
      interleaved_(c.position == PositionKind::kRopeInterleaved),
      inv_freq_(pairs_ > 0 ? rope_inv_freq(c) : std::vector<float>{}) {}

void Rope::prepare(const int* positions, int num_tokens) {
  cos_.resize(static_cast<size_t>(num_tokens) * pairs_);
  sin_.resize(cos_.size());
  for (int t = 0; t < num_tokens; ++t) {
    for (int i = 0; i < pairs_; ++i)
      rope_rotation(positions[t], inv_freq_[i], cos_[static_cast<size_t>(t) * pairs_ + i], sin_[static_cast<size_t>(t) * pairs_ + i]);
  }
}

void Rope::apply(ThreadPool& pool, float* x, int num_tokens, int num_heads) const {
  if (pairs_ == 0) return;
  // Pair i: (i, i + D/2), or (2i, 2i + 1).
  const int stride = interleaved_ ? 1 : head_dim_ / 2, step = interleaved_ ? 2 : 1;
  pool.parallel_for(num_tokens, [&](int begin, int end, int) {
    for (int t = begin; t < end; ++t) {
      const float* c = cos_.data() + static_cast<size_t>(t) * pairs_;
      const float* s = sin_.data() + static_cast<size_t>(t) * pairs_;
      for (int h = 0; h < num_heads; ++h) {
        float* v = x + (static_cast<size_t>(t) * num_heads + h) * head_dim_;
        for (int i = 0; i < pairs_; ++i) {
          float& a = v[i * step];
          float& b = v[i * step + stride];
          const float a0 = a, b0 = b;
          a = a0 * c[i] - b0 * s[i];
          b = b0 * c[i] + a0 * s[i];
        }
      }
    }
  });
}

}  // namespace tachyon
