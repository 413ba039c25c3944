// CudaModel's CUDA graphs: decode steps captured once per batch-size bucket and context class, and replayed.
#include "cuda/cuda_model.h"

namespace tachyon {

int CudaModel::bucket_for(int S) const {
  int bucket = 1;
  while (bucket < S) bucket = bucket < 64 ? bucket * 2 : bucket + 64;
  return bucket;
}

bool CudaModel::forward_decode_graph(const StepBatch& b) {
  const int S = b.num_seqs();
  if (!use_graphs_ || b.num_tokens() != S) return false;
  for (int s = 0; s < S; ++s)
    if (!b.sample[s] || !b.generated(s, 0)) return false;  // a prompt row: not a decode step (make_tiles)
  const int B = bucket_for(S);
  if (B > options_.max_num_seqs || B > options_.max_num_tokens) return false;
  const int stride = max_table_stride_;
  // Inputs padded to the bucket; padding rows read and write only the scratch block.
  StepSlot& st = *st_;
  st.g_tokens.assign(B, 0);
  st.g_positions.assign(B, 0);
  st.g_seq.resize(B);
  st.g_rows.resize(B);
  st.g_tables.assign(static_cast<size_t>(B) * stride, scratch_block_);
  for (int i = 0; i < B; ++i) st.g_seq[i] = st.g_rows[i] = i;
  for (int s = 0; s < S; ++s) {
    st.g_tokens[s] = b.token_ids[s];
    st.g_positions[s] = b.positions[s];
    std::copy(b.table(s), b.table(s) + b.table_stride, st.g_tables.begin() + static_cast<size_t>(s) * stride);
  }
  auto copy = [&](DeviceBuffer& d, const PinnedVector<int32_t>& v) {
    CUDA_CHECK(cudaMemcpyAsync(d.as<void>(), v.data(), v.size() * 4, cudaMemcpyHostToDevice, stream_));
  };
  copy(d_tokens_, st.g_tokens);
  copy(d_positions_, st.g_positions);
  copy(d_token_seq_, st.g_seq);
  copy(d_tables_, st.g_tables);
  copy(d_rows_, st.g_rows);
  apply_feed();
  st.tiles.resize(B);
  for (int i = 0; i < B; ++i) st.tiles[i] = make_int2(i, 1);
  num_tiles_ = B;
  decode_step_ = true;
  prefill_tiles_ = 0;  // (make_tiles, which sets it, does not run for a graph step)
  attn_splits_ = decode_splits(B, config_.max_positions - 1);
  CUDA_CHECK(cudaMemcpyAsync(d_tiles_.as<void>(), st.tiles.data(), B * sizeof(int2), cudaMemcpyHostToDevice, stream_));
  table_stride_ = stride;
  // A graph per bucket and context class: the decode kernel's warps a block are fixed at capture.
  decode_long_ = false;
  for (int s = 0; s < S; ++s) decode_long_ = decode_long_ || b.positions[s] >= kLongDecodeContext;
  const int key = graph_key(B, decode_long_);
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    cudaGraph_t graph;
    capturing_ = true;
    CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      forward(B, B);
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      capturing_ = false;
      throw;
    }
    CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    capturing_ = false;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    it = graphs_.emplace(key, exec).first;
    graph_op_marks_[key] = op_marks_;
  }
  op_marks_ = graph_op_marks_[key];
  CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
  return true;
}

}  // namespace tachyon
