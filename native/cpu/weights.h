// Model weights, memory-mapped from safetensors files and read in place.
// F16/BF16 matrices stay in their stored dtype; kernels widen one row at a
// time, so a checkpoint occupies its file size once (the page cache), not twice.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cpu/model_config.h"

namespace tachyon {

enum class DType { kF32, kF16, kBF16, kF8E4M3, kI8 };

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

// A row-major [rows, cols] matrix in its stored dtype. FP8 (E4M3) and INT8
// matrices carry one scale per row (value = stored * scale), from the
// checkpoint's weight_scale or from quantization at load (int8.h).
struct Matrix {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int rows = 0;
  int cols = 0;
  std::vector<float> scale;  // [rows] for kF8E4M3 and kI8, else empty
};

float fp8_e4m3_to_float(uint8_t v);

// Writes row `row` of m as float into out[cols].
void widen_row(const Matrix& m, int row, float* out);

// One tensor of a checkpoint as the header described it; begin/end are
// absolute byte offsets in files[file].
struct TensorEntry {
  std::string name;
  int file = 0;
  DType dtype = DType::kF32;
  std::string dtype_text;  // as the header wrote it
  bool dtype_supported = true;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

struct LayerWeights {
  Matrix wq, wk, wv, wo;          // [heads*head_dim, hidden], [kv*head_dim, hidden] x2, [hidden, heads*head_dim]
  // SwiGLU: gate, up [inter, hidden] and down [hidden, inter]. GELU MLPs (GPT-2, GPT-J): up is
  // the fc in, down the projection out, gate empty.
  Matrix w_gate, w_up, w_down;
  std::vector<float> attn_norm, mlp_norm;  // [hidden]; mlp_norm empty in parallel blocks (GPT-J)
  std::vector<float> attn_norm_bias, mlp_norm_bias;  // LayerNorm's [hidden]; empty for RMSNorm
  std::vector<float> bq, bk, bv, bo;       // empty when the model has no such bias
  std::vector<float> b_gate, b_up, b_down;
};

struct ModelWeights {
  Matrix embed;      // [vocab, hidden]
  Matrix lm_head;    // [vocab, hidden]; the embedding itself when tied
  Matrix pos_embed;  // [max_positions, hidden], learned positions (GPT-2); else empty
  std::vector<float> final_norm, final_norm_bias;
  std::vector<float> lm_head_bias;  // [vocab] (GPT-J), else empty
  std::vector<LayerWeights> layers;
  std::vector<std::unique_ptr<MappedFile>> files;
  std::vector<std::vector<float>> owned;         // backing store of dummy weights
  std::vector<std::vector<uint8_t>> owned_bytes;  // backing store of matrices transposed at load (GPT-2's Conv1D)
};

ModelWeights load_weights(const ModelConfig& config, const std::vector<std::string>& paths,
                          const std::vector<TensorEntry>& entries);

// Random weights of the config's shape (std 1/sqrt(fan_in)), for benchmarks.
ModelWeights make_dummy_weights(const ModelConfig& config, uint64_t seed);

}  // namespace tachyon
