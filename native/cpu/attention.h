// Paged attention over the KV cache for a flat mixed batch.
#pragma once
#include "cpu/batch.h"
#include "cpu/kv_cache.h"
#include "cpu/thread_pool.h"

namespace tachyon {

// Stores k, v [T, kv_heads * head_dim] into each token's slot (its position's
// block in its sequence's table).
void write_kv(KvCache& cache, int layer, const StepBatch& batch, const float* k, const float* v, int num_kv_heads,
              int head_dim);

// out[T, heads * head_dim]: each token attends causally to positions
// 0..its own of its sequence, reading K/V through the block table.
// scratch holds pool.size() * max_positions floats.
void paged_attention(ThreadPool& pool, KvCache& cache, int layer, const StepBatch& batch, const float* q,
                     int num_heads, int num_kv_heads, int head_dim, float* scratch, int max_positions, float* out);

}  // namespace tachyon
