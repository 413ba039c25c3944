#include "cpu/attention.h"

#include <cmath>
#include <cstring>

#include "cpu/simd.h"

namespace tachyon {

void write_kv(KvCache& cache, int layer, const StepBatch& b, const float* k, const float* v, int num_kv_heads,
              int head_dim) {
  const int B = cache.block_size();
  for (int t = 0; t < b.num_tokens(); ++t) {
    const int pos = b.positions[t];
    const int block = b.table(b.token_seq[t])[pos / B];
    for (int h = 0; h < num_kv_heads; ++h) {
      const size_t src = (static_cast<size_t>(t) * num_kv_heads + h) * head_dim;
      std::memcpy(cache.key(layer, block, h, pos % B), k + src, head_dim * sizeof(float));
      std::memcpy(cache.value(layer, block, h, pos % B), v + src, head_dim * sizeof(float));
    }
  }
}

void paged_attention(ThreadPool& pool, KvCache& cache, int layer, const StepBatch& b, const float* q, int num_heads,
                     int num_kv_heads, int head_dim, float* scratch, int max_positions, float* out) {
  const int B = cache.block_size();
  const int group = num_heads / num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  pool.parallel_for(b.num_tokens() * num_heads, [&](int begin, int end, int thread) {
    float* scores = scratch + static_cast<size_t>(thread) * max_positions;
    for (int item = begin; item < end; ++item) {
      const int t = item / num_heads, h = item % num_heads, kvh = h / group;
      const int pos = b.positions[t];
      const int32_t* table = b.table(b.token_seq[t]);
      const float* qv = q + (static_cast<size_t>(t) * num_heads + h) * head_dim;
      float* o = out + (static_cast<size_t>(t) * num_heads + h) * head_dim;
      float m = -INFINITY;
      for (int j = 0; j <= pos; ++j) {
        scores[j] = dot(qv, cache.key(layer, table[j / B], kvh, j % B), head_dim) * scale;
        m = std::max(m, scores[j]);
      }
      float sum = 0.0f;
      for (int j = 0; j <= pos; ++j) {
        scores[j] = std::exp(scores[j] - m);
        sum += scores[j];
      }
      for (int d = 0; d < head_dim; ++d) o[d] = 0.0f;
      for (int j = 0; j <= pos; ++j) {
        const float* vv = cache.value(layer, table[j / B], kvh, j % B);
        const float w = scores[j];
        for (int d = 0; d < head_dim; ++d) o[d] += w * vv[d];
      }
      const float inv = 1.0f / sum;
      for (int d = 0; d < head_dim; ++d) o[d] *= inv;
    }
  });
}

}  // namespace tachyon
