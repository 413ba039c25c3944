#include "cpu/rank.h"

#include <cstring>
#include <new>

#include "cpu/attention.h"
#include "cpu/error.h"

namespace tachyon {

CpuRank::CpuRank(const ModelConfig& c, const ShardPlan& plan, int rank, RankWeights weights, int threads, int block_size,
                 uint64_t kv_budget, int max_num_tokens, int max_num_seqs, AllReduce& all_reduce)
    : config_(c),
      local_(plan.local(c)),
      rank_(rank),
      vocab_begin_(plan.vocab_begin(rank, c.vocab_size)),
      vocab_end_(plan.vocab_end(rank, c.vocab_size)),
      w_(std::move(weights)),
      pool_(threads),
      kv_(local_, block_size, kv_budget),
      all_reduce_(all_reduce) {
  const size_t T = max_num_tokens, D = c.head_dim;
  try {
    x_.resize(T * c.hidden_size);
    h_.resize(T * c.hidden_size);
    if (c.parallel_block) out_.resize(T * c.hidden_size);
    q_.resize(T * local_.num_heads * D);
    attn_.resize(q_.size());
    k_.resize(T * local_.num_kv_heads * D);
    v_.resize(k_.size());
    gate_.resize(T * local_.intermediate_size);
    up_.resize(gate_.size());
    scores_.resize(static_cast<size_t>(pool_.size()) * c.max_positions);
    last_hidden_.resize(static_cast<size_t>(max_num_seqs) * c.hidden_size);
    logits_.resize(static_cast<size_t>(max_num_seqs) * (vocab_end_ - vocab_begin_));
  } catch (const std::bad_alloc&) {
    fail("cannot allocate activations for max_num_tokens ", max_num_tokens, " and max_num_seqs ", max_num_seqs);
  }
}

void CpuRank::forward(const StepBatch& b, const Rope& rope, const std::vector<int32_t>& rows, float* logits) {
  const int H = config_.hidden_size, T = b.num_tokens();
  // Vocabulary-parallel embedding: this rank's tokens, zeros for the others', summed over ranks.
  for (int t = 0; t < T; ++t) {
    float* row = x_.data() + static_cast<size_t>(t) * H;
    const int id = b.token_ids[t];
    if (id >= vocab_begin_ && id < vocab_end_) widen_row(w_.embed, id - vocab_begin_, row);
    else std::memset(row, 0, H * sizeof(float));
  }
  all_reduce_.sum(rank_, x_.data(), static_cast<size_t>(T) * H);
  if (config_.position == PositionKind::kLearned) {  // GPT-2: + wpe[position] (every rank holds it whole)
    std::vector<float>& pos = h_;
    for (int t = 0; t < T; ++t) {
      widen_row(w_.pos_embed, b.positions[t], pos.data());
      add_in_place(x_.data() + static_cast<size_t>(t) * H, pos.data(), H);
    }
  }
  for (int layer = 0; layer < config_.num_layers; ++layer) forward_layer(layer, b, rope);
  // Final norm and this rank's logits for the sampled rows, then their columns of the whole (all-gather).
  const int n = static_cast<int>(rows.size()), V = config_.vocab_size, nv = vocab_end_ - vocab_begin_;
  if (n == 0) return;
  for (int i = 0; i < n; ++i)
    std::memcpy(last_hidden_.data() + static_cast<size_t>(i) * H, x_.data() + static_cast<size_t>(rows[i]) * H,
                H * sizeof(float));
  norm(last_hidden_.data(), n, w_.final_norm, w_.final_norm_bias, h_.data());
  if (nv == 0) return;
  matmul(pool_, h_.data(), n, w_.lm_head, w_.lm_head_bias, logits_.data());
  for (int i = 0; i < n; ++i)
    std::memcpy(logits + static_cast<size_t>(i) * V + vocab_begin_, logits_.data() + static_cast<size_t>(i) * nv,
                nv * sizeof(float));
}

void CpuRank::norm(const float* x, int rows, const std::vector<float>& weight, const std::vector<float>& bias, float* y) {
  if (config_.norm == NormKind::kLayer) layer_norm(pool_, x, rows, config_.hidden_size, weight, bias, config_.norm_eps, y);
  else rms_norm(pool_, x, rows, config_.hidden_size, weight, config_.norm_eps, y);
}

// The MLP of h [T, hidden] into out [T, hidden] (a partial sum on each rank): SwiGLU, or fc -> GELU -> proj.
void CpuRank::mlp(const LayerWeights& w, const float* h, int T, float* out) {
  const int I = local_.intermediate_size;
  if (config_.mlp == MlpKind::kSwiGLU) {
    matmul(pool_, h, T, w.w_gate, w.b_gate, gate_.data());
    matmul(pool_, h, T, w.w_up, w.b_up, up_.data());
    silu_mul(pool_, gate_.data(), up_.data(), T, I);
  } else {
    matmul(pool_, h, T, w.w_up, w.b_up, gate_.data());
    gelu(pool_, gate_.data(), T, I, config_.mlp == MlpKind::kGeluTanh);
  }
  matmul(pool_, gate_.data(), T, w.w_down, w.b_down, out);
}

// The attention of h [T, hidden] into out [T, hidden] (a partial sum on each rank).
void CpuRank::attention(int layer, const LayerWeights& w, const StepBatch& b, const Rope& rope, const float* h, float* out) {
  const ModelConfig& c = config_;
  const int T = b.num_tokens(), heads = local_.num_heads, kv_heads = local_.num_kv_heads;
  matmul(pool_, h, T, w.wq, w.bq, q_.data());
  matmul(pool_, h, T, w.wk, w.bk, k_.data());
  matmul(pool_, h, T, w.wv, w.bv, v_.data());
  rope.apply(pool_, q_.data(), T, heads);
  rope.apply(pool_, k_.data(), T, kv_heads);
  write_kv(kv_, layer, b, k_.data(), v_.data(), kv_heads, c.head_dim);
  paged_attention(pool_, kv_, layer, b, q_.data(), heads, kv_heads, c.head_dim, scores_.data(), c.max_positions, attn_.data());
  // Row-parallel O: a partial sum of the whole output on every rank.
  matmul(pool_, attn_.data(), T, w.wo, w.bo, out);
}

void CpuRank::forward_layer(int layer, const StepBatch& b, const Rope& rope) {
  const LayerWeights& w = w_.layers[layer];
  const int T = b.num_tokens();
  const size_t TH = static_cast<size_t>(T) * config_.hidden_size;
  if (config_.parallel_block) {
    // GPT-J: x += attn(ln(x)) + mlp(ln(x)), one all-reduce for both partial sums.
    norm(x_.data(), T, w.attn_norm, w.attn_norm_bias, h_.data());
    attention(layer, w, b, rope, h_.data(), out_.data());
    mlp(w, h_.data(), T, h_.data());
    add_in_place(out_.data(), h_.data(), static_cast<long>(TH));
    all_reduce_.sum(rank_, out_.data(), TH);
    add_in_place(x_.data(), out_.data(), static_cast<long>(TH));
    return;
  }
  norm(x_.data(), T, w.attn_norm, w.attn_norm_bias, h_.data());
  attention(layer, w, b, rope, h_.data(), h_.data());
  all_reduce_.sum(rank_, h_.data(), TH);
  add_in_place(x_.data(), h_.data(), static_cast<long>(TH));
  norm(x_.data(), T, w.mlp_norm, w.mlp_norm_bias, h_.data());
  mlp(w, h_.data(), T, h_.data());
  all_reduce_.sum(rank_, h_.data(), TH);
  add_in_place(x_.data(), h_.data(), static_cast<long>(TH));
}

}  // namespace tachyon
