// The paged KV cache: a pool of fixed-size blocks per layer. Which blocks a
// sequence owns is the engine's business; each step says so in block tables.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "cpu/model_config.h"

namespace tachyon {

class KvCache {
 public:
  // Sizes the pool to as many blocks as fit in budget_bytes.
  KvCache(const ModelConfig& config, int block_size, uint64_t budget_bytes);

  int block_size() const { return block_size_; }
  int num_blocks() const { return num_blocks_; }
  uint64_t bytes_per_block() const { return bytes_per_block_; }

  // [head_dim] slot of one token of one kv head.
  float* key(int layer, int block, int kv_head, int offset) { return k_.get() + index(layer, block, kv_head, offset); }
  float* value(int layer, int block, int kv_head, int offset) { return v_.get() + index(layer, block, kv_head, offset); }

 private:
  size_t index(int layer, int block, int kv_head, int offset) const {
    // layout [layer][block][kv_head][offset][head_dim]
    return (((static_cast<size_t>(layer) * num_blocks_ + block) * num_kv_heads_ + kv_head) * block_size_ + offset) *
           head_dim_;
  }

  int num_layers_, num_kv_heads_, head_dim_, block_size_;
  int num_blocks_ = 0;
  uint64_t bytes_per_block_ = 0;
  // Left uninitialized: a slot is always written before it is read, and
  // untouched pages cost nothing, so a large pool loads at once.
  std::unique_ptr<float[]> k_, v_;
};

}  // namespace tachyon
