// CudaModel's memory plan: the step workspace, the KV pool from what the memory fraction leaves, buffers grown on demand.
#include "cuda/cuda_model.h"

#include <algorithm>

namespace tachyon {

void CudaModel::allocate_workspace() {
  const ModelConfig& c = config_;
  const size_t T = options_.max_num_tokens, S = options_.max_num_seqs, H = c.hidden_size, I = c.intermediate_size;
  x_ = DeviceBuffer(T * H * 4, "activations");
  h_ = DeviceBuffer(T * H * 2, "activations");
  qkv_ = DeviceBuffer(T * qkv_dim_ * 4, "activations");
  attn_ = DeviceBuffer(T * q_dim_ * 2, "activations");
  proj_ = DeviceBuffer(T * std::max({static_cast<size_t>(qkv_dim_), 2 * I, H}) * 2, "activations");  // bf16 [T, widest]
  act_ = DeviceBuffer(T * I * 2, "activations");
  h_last_ = DeviceBuffer(S * H * 2, "activations");
  const size_t widest = std::max({static_cast<size_t>(qkv_dim_), 2 * I, H});  // a projection's N at most
  // W8A8's int8 GEMMs run at least kImmaMinRows rows (gemm.h).
  const size_t q_rows = w8a8_ ? std::max<size_t>(T, kImmaMinRows) : T;
  if (fp8_ || w8a8_) {
    in_q_ = DeviceBuffer(q_rows * std::max<size_t>({H, static_cast<size_t>(q_dim_), I}), "quantized activations");
    in_scale_ = DeviceBuffer(T * 4, "activation scales");
  }
  if (w8a8_) acc_ = DeviceBuffer(q_rows * widest * 4, "int32 GEMM sums");
  if (int8_ && !w8a8_) {
    size_t most = 0;
    for (const Linear* lin : {&layers_[0].qkv, &layers_[0].o, &layers_[0].gate_up, &layers_[0].down})
      most = std::max(most, static_cast<size_t>(lin->N) * lin->K);
    dequant_ = DeviceBuffer(most * 2, "dequantized int8 weights");
  }
  logits_ = DeviceBuffer(S * c.vocab_size * 4, "logits");
  max_table_stride_ = (c.max_positions + options_.block_size - 1) / options_.block_size;
  d_tokens_ = DeviceBuffer(T * 4, "step inputs");
  d_positions_ = DeviceBuffer(T * 4, "step inputs");
  d_token_seq_ = DeviceBuffer(T * 4, "step inputs");
  d_tables_ = DeviceBuffer(S * max_table_stride_ * 4, "block tables");
  d_rows_ = DeviceBuffer(S * 4, "step inputs");
  d_tiles_ = DeviceBuffer(T * sizeof(int2), "attention tiles");
  d_q_skip_ = DeviceBuffer(T, "step inputs");
  d_attn_partial_ = DeviceBuffer(attention_partial_bytes(c.num_heads, c.num_kv_heads, c.head_dim), "attention partial states");
  d_attn_counters_ = DeviceBuffer(attention_counter_bytes(), "attention split counters");
  CUDA_CHECK(cudaMemset(d_attn_counters_.as<void>(), 0, d_attn_counters_.bytes()));
  d_params_ = DeviceBuffer(S * sizeof(DeviceSamplingParams), "sampling parameters");
  d_sample_ws_ = DeviceBuffer(sample_workspace_bytes(static_cast<int>(S), c.vocab_size), "sampling workspace");
  d_out_tokens_ = DeviceBuffer(S * 4, "step outputs");
  d_out_logprobs_ = DeviceBuffer(S * 4, "step outputs");
  d_top_ids_ = DeviceBuffer(S * kMaxLogprobs * 4, "step outputs");
  d_top_logprobs_ = DeviceBuffer(S * kMaxLogprobs * 4, "step outputs");
}

void CudaModel::allocate_kv_cache() {
  const ModelConfig& c = config_;
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double used = static_cast<double>(total_b - free_b);
  double budget = options_.memory_fraction * static_cast<double>(total_b) - used;
  if (options_.kv_cache_bytes > 0) budget = std::min(budget, static_cast<double>(options_.kv_cache_bytes));
  // INT8: each (layer, kv head, slot) also holds a float32 scale for K and one for V.
  const uint64_t per_row = c.head_dim * kv_element_bytes(kv_type_) + (kv_type_ == KvType::kInt8 ? 4 : 0);
  const uint64_t per_block = 2ull * c.num_layers * c.num_kv_heads * options_.block_size * per_row;
  const double blocks = budget > 0 ? std::floor(budget / static_cast<double>(per_block)) : 0;
  if (blocks < 1)
    fail("no GPU memory left for the KV cache: weights and workspace use ", total_b - free_b, " of ", total_b,
         " bytes and the memory fraction is ", options_.memory_fraction, " (one block needs ", per_block, " bytes)");
  if (blocks < 2) fail("the KV cache budget holds ", blocks, " blocks; at least 2 are needed (one is kept for padding)");
  // The last block takes the KV writes of padding rows in graph-replayed steps.
  // A layer's (block, KV head, offset) slots stay below 2^32: the prefill kernels' copies index them
  // in 32 bits (StagePlan). Never near it in practice (that would be terabytes for one layer).
  const double slot_cap = std::floor(4294967295.0 / (static_cast<double>(c.num_kv_heads) * options_.block_size));
  info_.num_blocks = static_cast<int>(std::min({blocks, 1.0e9, slot_cap})) - 1;
  scratch_block_ = info_.num_blocks;
  info_.block_size = options_.block_size;
  info_.bytes_per_block = per_block;
  layer_kv_elems_ = static_cast<size_t>(info_.num_blocks + 1) * c.num_kv_heads * options_.block_size * c.head_dim;
  k_cache_ = DeviceBuffer(layer_kv_elems_ * c.num_layers * kv_element_bytes(kv_type_), "KV cache");
  v_cache_ = DeviceBuffer(layer_kv_elems_ * c.num_layers * kv_element_bytes(kv_type_), "KV cache");
  if (kv_type_ == KvType::kInt8) {
    const size_t slots = layer_kv_elems_ / c.head_dim * c.num_layers;
    k_scales_ = DeviceBuffer(slots * 4, "KV cache scales");
    v_scales_ = DeviceBuffer(slots * 4, "KV cache scales");
    // Slots never written (padding rows' reads past a context) must hold a finite scale.
    CUDA_CHECK(cudaMemset(k_scales_.as<void>(), 0, slots * 4));
    CUDA_CHECK(cudaMemset(v_scales_.as<void>(), 0, slots * 4));
  }
}

void CudaModel::ensure(DeviceBuffer& d, size_t bytes, const char* what) {
  if (d.bytes() >= bytes) return;
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffer may still be read
  d = DeviceBuffer(bytes, what);
}

}  // namespace tachyon
