#include "cpu/kv_cache.h"

#include "cpu/error.h"

namespace tachyon {

KvCache::KvCache(const ModelConfig& c, int block_size, uint64_t budget_bytes)
    : num_layers_(c.num_layers), num_kv_heads_(c.num_kv_heads), head_dim_(c.head_dim), block_size_(block_size) {
  if (block_size < 1 || block_size > 1024) fail("block size must be between 1 and 1024 tokens, got ", block_size);
  // K and V, float32, every layer
  bytes_per_block_ = 2ull * num_layers_ * num_kv_heads_ * head_dim_ * block_size_ * sizeof(float);
  const uint64_t blocks = budget_bytes / bytes_per_block_;
  if (blocks < 1)
    fail("KV cache budget of ", budget_bytes, " bytes holds no block (one block needs ", bytes_per_block_, " bytes)");
  if (blocks > (1u << 30)) fail("KV cache budget of ", budget_bytes, " bytes is too large");
  num_blocks_ = static_cast<int>(blocks);
  const size_t n = static_cast<size_t>(num_layers_) * num_blocks_ * num_kv_heads_ * block_size_ * head_dim_;
  try {
    k_.reset(new float[n]);
    v_.reset(new float[n]);
  } catch (const std::bad_alloc&) {
    fail("cannot allocate a KV cache of ", budget_bytes, " bytes");
  }
}

}  // namespace tachyon
