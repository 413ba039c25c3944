#include "cpu/tensor_parallel.h"

#include <algorithm>
#include <cstring>

#include "cpu/error.h"

namespace tachyon {

int ShardPlan::vocab_begin(int rank, int vocab) const { return std::min(vocab, rank * vocab_chunk); }
int ShardPlan::vocab_end(int rank, int vocab) const { return std::min(vocab, (rank + 1) * vocab_chunk); }

ModelConfig ShardPlan::local(const ModelConfig& c) const {
  ModelConfig l = c;
  l.num_heads = heads;
  l.num_kv_heads = kv_heads;
  l.intermediate_size = intermediate;
  return l;
}

ShardPlan plan_shards(const ModelConfig& c, int n) {
  if (n < 1) fail("tensor_parallel_size must be at least 1, got ", n);
  if (c.num_heads % n != 0)
    fail("tensor_parallel_size ", n, " does not divide the model's ", c.num_heads, " attention heads (num_attention_heads)");
  if (c.num_kv_heads % n != 0 && n % c.num_kv_heads != 0)
    fail("tensor_parallel_size ", n, " must divide the model's ", c.num_kv_heads,
         " KV heads (num_key_value_heads) or be a multiple of them");
  if (c.intermediate_size % n != 0)
    fail("tensor_parallel_size ", n, " does not divide the model's intermediate_size ", c.intermediate_size);
  ShardPlan p;
  p.size = n;
  p.heads = c.num_heads / n;
  p.kv_replicated = c.num_kv_heads % n != 0;
  p.kv_heads = p.kv_replicated ? 1 : c.num_kv_heads / n;
  p.intermediate = c.intermediate_size / n;
  p.vocab_chunk = (c.vocab_size + n - 1) / n;
  p.group = c.num_heads / c.num_kv_heads;
  return p;
}

namespace {

// Rows [begin, begin + count) of m, in place.
Matrix rows_of(const Matrix& m, int begin, int count) {
  if (m.data == nullptr) return m;  // absent (GELU MLPs have no gate)
  Matrix r;
  r.data = static_cast<const uint8_t*>(m.data) + static_cast<size_t>(begin) * m.cols * dtype_size(m.dtype);
  r.dtype = m.dtype;
  r.rows = count;
  r.cols = m.cols;
  if (!m.scale.empty()) r.scale.assign(m.scale.begin() + begin, m.scale.begin() + begin + count);
  return r;
}

// Columns [begin, begin + count) of every row of m: a copy (the whole matrix is kept as a view).
Matrix cols_of(const Matrix& m, int begin, int count, std::vector<std::vector<uint8_t>>& owned) {
  if (m.data == nullptr || (begin == 0 && count == m.cols)) return m;
  const size_t es = dtype_size(m.dtype);
  std::vector<uint8_t>& store = owned.emplace_back(static_cast<size_t>(m.rows) * count * es);
  const uint8_t* src = static_cast<const uint8_t*>(m.data);
  for (int r = 0; r < m.rows; ++r)
    std::memcpy(store.data() + static_cast<size_t>(r) * count * es, src + (static_cast<size_t>(r) * m.cols + begin) * es,
                count * es);
  Matrix c = m;  // per-row scales stay whole: a row's scale covers every column
  c.data = store.data();
  c.cols = count;
  return c;
}

std::vector<float> slice(const std::vector<float>& v, size_t begin, size_t count) {
  if (v.empty()) return {};
  return std::vector<float>(v.begin() + begin, v.begin() + begin + count);
}

}  // namespace

RankWeights shard_weights(const ModelConfig& c, const ModelWeights& full, const ShardPlan& p, int rank) {
  const int D = c.head_dim;
  const int q0 = p.q_head_begin(rank) * D, nq = p.heads * D;
  const int kv0 = p.kv_head_begin(rank) * D, nkv = p.kv_heads * D;
  const int i0 = p.inter_begin(rank), ni = p.intermediate;
  const int v0 = p.vocab_begin(rank, c.vocab_size), nv = p.vocab_end(rank, c.vocab_size) - v0;
  RankWeights r;
  r.embed = rows_of(full.embed, v0, nv);
  r.lm_head = rows_of(full.lm_head, v0, nv);
  r.pos_embed = full.pos_embed;
  r.final_norm = full.final_norm;
  r.final_norm_bias = full.final_norm_bias;
  r.lm_head_bias = slice(full.lm_head_bias, v0, nv);
  for (const LayerWeights& l : full.layers) {
    LayerWeights s;
    s.wq = rows_of(l.wq, q0, nq);
    s.wk = rows_of(l.wk, kv0, nkv);
    s.wv = rows_of(l.wv, kv0, nkv);
    s.wo = cols_of(l.wo, q0, nq, r.owned);
    s.w_gate = rows_of(l.w_gate, i0, ni);
    s.w_up = rows_of(l.w_up, i0, ni);
    s.w_down = cols_of(l.w_down, i0, ni, r.owned);
    s.attn_norm = l.attn_norm;
    s.mlp_norm = l.mlp_norm;
    s.attn_norm_bias = l.attn_norm_bias;
    s.mlp_norm_bias = l.mlp_norm_bias;
    s.bq = slice(l.bq, q0, nq);
    s.bk = slice(l.bk, kv0, nkv);
    s.bv = slice(l.bv, kv0, nkv);
    s.b_gate = slice(l.b_gate, i0, ni);
    s.b_up = slice(l.b_up, i0, ni);
    if (rank == 0) {
      s.bo = l.bo;
      s.b_down = l.b_down;
    }
    r.layers.push_back(std::move(s));
  }
  return r;
}

}  // namespace tachyon
