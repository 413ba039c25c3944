#include "cpu/weights.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <random>
#include <unordered_map>

#include "cpu/error.h"

namespace tachyon {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kF8E4M3: return "F8_E4M3";
    case DType::kI8: return "I8";
  }
  return "?";
}

size_t dtype_size(DType dtype) { return dtype == DType::kF32 ? 4 : dtype == DType::kF8E4M3 || dtype == DType::kI8 ? 1 : 2; }

float fp8_e4m3_to_float(uint8_t v) {
  const int sign = v >> 7, exp = (v >> 3) & 0xf, mant = v & 0x7;
  if (exp == 0xf && mant == 0x7) return NAN;  // E4M3 has no infinities
  const float mag = exp == 0 ? std::ldexp(static_cast<float>(mant), -9) : std::ldexp(1.0f + mant / 8.0f, exp - 7);
  return sign ? -mag : mag;
}

static float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: renormalize
    exp = 113;
    while ((mant & 0x400) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void widen_row(const Matrix& m, int row, float* out) {
  const size_t offset = static_cast<size_t>(row) * m.cols;
  const auto* base = static_cast<const uint8_t*>(m.data);
  switch (m.dtype) {
    case DType::kF32:
      std::memcpy(out, base + offset * 4, static_cast<size_t>(m.cols) * 4);
      return;
    case DType::kBF16: {
      const auto* src = base + offset * 2;
      for (int i = 0; i < m.cols; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return;
    }
    case DType::kF16: {
      const auto* src = base + offset * 2;
      for (int i = 0; i < m.cols; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = half_to_float(h);
      }
      return;
    }
    case DType::kF8E4M3: {
      const auto* src = base + offset;
      const float s = m.scale[row];
      for (int i = 0; i < m.cols; ++i) out[i] = fp8_e4m3_to_float(src[i]) * s;
      return;
    }
    case DType::kI8: {
      const auto* src = reinterpret_cast<const int8_t*>(base + offset);
      const float s = m.scale[row];
      for (int i = 0; i < m.cols; ++i) out[i] = static_cast<float>(src[i]) * s;
      return;
    }
  }
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open ", path, ": ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail("cannot stat ", path, ": ", std::strerror(errno));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail("cannot map ", path, ": ", std::strerror(errno));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

namespace {

class TensorTable {
 public:
  TensorTable(const std::vector<std::unique_ptr<MappedFile>>& files,
              const std::vector<TensorEntry>& entries)
      : files_(files) {
    for (const auto& e : entries) by_name_[e.name] = &e;
  }

  bool has(const std::string& name) const { return by_name_.count(name) != 0; }

  Matrix matrix(const std::string& name, int rows, int cols) const {
    const TensorEntry& e = find(name, {rows, cols});
    Matrix m{files_[e.file]->data() + e.begin, e.dtype, rows, cols, {}};
    if (e.dtype == DType::kF8E4M3 || e.dtype == DType::kI8) m.scale = row_scales(name, rows);
    return m;
  }

  // An FP8 weight's scales: <name>_scale per row ([rows, 1] or [rows]) or per tensor ([1] or []).
  std::vector<float> row_scales(const std::string& name, int rows) const {
    // Asymmetric INT8 (compressed-tensors with symmetric: false) stores zero points beside the scales.
    if (by_name_.count(name + "_zero_point")) fail("tensor ", name, " has a zero point: asymmetric quantization is not supported (only symmetric, per channel or per tensor)");
    const std::string scale_name = name + "_scale";
    auto it = by_name_.find(scale_name);
    if (it == by_name_.end()) fail(by_name_.at(name)->dtype == DType::kI8 ? "INT8" : "FP8", " tensor ", name, " has no ", scale_name);
    const TensorEntry& e = *it->second;
    uint64_t n = 1;
    for (auto d : e.shape) n *= static_cast<uint64_t>(d);
    if (n != 1 && n != static_cast<uint64_t>(rows))
      fail(scale_name, " has ", n, " values; expected 1 (per tensor) or ", rows, " (per output channel)");
    const std::vector<float> values = vector_of(scale_name, e, static_cast<int>(n));
    return n == 1 ? std::vector<float>(rows, values[0]) : values;
  }

  std::vector<float> vector(const std::string& name, int n) const {
    const TensorEntry& e = find(name, {n});
    return vector_of(name, e, n);
  }

 private:
  std::vector<float> vector_of(const std::string& name, const TensorEntry& e, int n) const {
    if (!e.dtype_supported || e.dtype == DType::kF8E4M3 || e.dtype == DType::kI8)
      fail("tensor ", name, " has dtype ", e.dtype_text, "; scales and vectors must be F32, F16 or BF16");
    check_span(name, e, static_cast<uint64_t>(n), e.shape);
    Matrix m{files_[e.file]->data() + e.begin, e.dtype, 1, n, {}};
    std::vector<float> out(n);
    widen_row(m, 0, out.data());
    return out;
  }

  void check_span(const std::string& name, const TensorEntry& e, uint64_t numel, const std::vector<int64_t>& shape) const {
    if (e.file < 0 || e.file >= static_cast<int>(files_.size())) fail("tensor ", name, " names no file");
    const MappedFile& f = *files_[e.file];
    if (e.end < e.begin || e.end - e.begin != numel * dtype_size(e.dtype))
      fail("tensor ", name, " in ", f.path(), " spans ", e.end - e.begin, " bytes, but ", shape_str(shape), " ",
           dtype_name(e.dtype), " needs ", numel * dtype_size(e.dtype));
    if (e.end > f.size())
      fail("tensor ", name, " ends at byte ", e.end, " past the end of ", f.path(), " (", f.size(), " bytes)");
  }

  const TensorEntry& find(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) fail("checkpoint is missing tensor ", name);
    const TensorEntry& e = *it->second;
    if (!e.dtype_supported) fail("tensor ", name, " has dtype ", e.dtype_text, "; weights must be F32, F16, BF16, F8_E4M3 or I8");
    if (e.shape != shape) fail("tensor ", name, " has shape ", shape_str(e.shape), ", expected ", shape_str(shape));
    uint64_t numel = 1;
    for (auto d : shape) numel *= static_cast<uint64_t>(d);
    check_span(name, e, numel, shape);
    return e;
  }

  static std::string shape_str(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }

  const std::vector<std::unique_ptr<MappedFile>>& files_;
  std::unordered_map<std::string, const TensorEntry*> by_name_;
};

}  // namespace

namespace {

// Llama, Mistral, Qwen2: model.layers.N.{self_attn,mlp}.*, RMSNorm.
void load_llama(const ModelConfig& c, const TensorTable& t, ModelWeights& w) {
  const int q_dim = c.num_heads * c.head_dim;
  const int kv_dim = c.num_kv_heads * c.head_dim;
  w.embed = t.matrix("model.embed_tokens.weight", c.vocab_size, c.hidden_size);
  w.lm_head = c.tie_word_embeddings ? w.embed : t.matrix("lm_head.weight", c.vocab_size, c.hidden_size);
  w.final_norm = t.vector("model.norm.weight", c.hidden_size);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights l;
    l.attn_norm = t.vector(p + "input_layernorm.weight", c.hidden_size);
    l.mlp_norm = t.vector(p + "post_attention_layernorm.weight", c.hidden_size);
    l.wq = t.matrix(p + "self_attn.q_proj.weight", q_dim, c.hidden_size);
    l.wk = t.matrix(p + "self_attn.k_proj.weight", kv_dim, c.hidden_size);
    l.wv = t.matrix(p + "self_attn.v_proj.weight", kv_dim, c.hidden_size);
    l.wo = t.matrix(p + "self_attn.o_proj.weight", c.hidden_size, q_dim);
    l.w_gate = t.matrix(p + "mlp.gate_proj.weight", c.intermediate_size, c.hidden_size);
    l.w_up = t.matrix(p + "mlp.up_proj.weight", c.intermediate_size, c.hidden_size);
    l.w_down = t.matrix(p + "mlp.down_proj.weight", c.hidden_size, c.intermediate_size);
    if (c.qkv_bias) {
      l.bq = t.vector(p + "self_attn.q_proj.bias", q_dim);
      l.bk = t.vector(p + "self_attn.k_proj.bias", kv_dim);
      l.bv = t.vector(p + "self_attn.v_proj.bias", kv_dim);
    }
    if (c.o_bias) l.bo = t.vector(p + "self_attn.o_proj.bias", c.hidden_size);
    if (c.mlp_bias) {
      l.b_gate = t.vector(p + "mlp.gate_proj.bias", c.intermediate_size);
      l.b_up = t.vector(p + "mlp.up_proj.bias", c.intermediate_size);
      l.b_down = t.vector(p + "mlp.down_proj.bias", c.hidden_size);
    }
    w.layers.push_back(std::move(l));
  }
}

// [rows, cols] -> [cols, rows], in the stored dtype, into w.owned_bytes.
Matrix transposed(const Matrix& m, ModelWeights& w, const std::string& name) {
  // Their scales would be per input row of the stored layout; quantize at load instead (--quantization int8).
  if (m.dtype == DType::kF8E4M3 || m.dtype == DType::kI8) fail("tensor ", name, ": quantized Conv1D (GPT-2 layout) weights are not read");
  const size_t es = dtype_size(m.dtype);
  std::vector<uint8_t>& out = w.owned_bytes.emplace_back(static_cast<size_t>(m.rows) * m.cols * es);
  const auto* src = static_cast<const uint8_t*>(m.data);
  for (int r = 0; r < m.rows; ++r)
    for (int col = 0; col < m.cols; ++col)
      std::memcpy(out.data() + (static_cast<size_t>(col) * m.rows + r) * es, src + (static_cast<size_t>(r) * m.cols + col) * es, es);
  return Matrix{out.data(), m.dtype, m.cols, m.rows, {}};
}

Matrix rows_view(const Matrix& m, int begin, int count) {
  return Matrix{static_cast<const uint8_t*>(m.data) + static_cast<size_t>(begin) * m.cols * dtype_size(m.dtype), m.dtype, count,
                m.cols, {}};
}

// GPT-2: transformer.{wte,wpe,h.N,ln_f}; Conv1D matrices stored [in, out] (transposed here), QKV fused
// in c_attn, LayerNorm and biases everywhere, the head tied to wte.
void load_gpt2(const ModelConfig& c, const TensorTable& t, ModelWeights& w) {
  const int H = c.hidden_size, I = c.intermediate_size;
  // Saved from GPT2LMHeadModel the names start with "transformer."; OpenAI's own gpt2 files,
  // saved from GPT2Model, without.
  const std::string m = t.has("transformer.wte.weight") ? "transformer." : "";
  w.embed = t.matrix(m + "wte.weight", c.vocab_size, H);
  w.lm_head = c.tie_word_embeddings ? w.embed : t.matrix("lm_head.weight", c.vocab_size, H);
  w.pos_embed = t.matrix(m + "wpe.weight", c.max_positions, H);
  w.final_norm = t.vector(m + "ln_f.weight", H);
  w.final_norm_bias = t.vector(m + "ln_f.bias", H);
  w.owned_bytes.reserve(4 * static_cast<size_t>(c.num_layers));  // matrices point into these
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = m + "h." + std::to_string(i) + ".";
    LayerWeights l;
    l.attn_norm = t.vector(p + "ln_1.weight", H);
    l.attn_norm_bias = t.vector(p + "ln_1.bias", H);
    l.mlp_norm = t.vector(p + "ln_2.weight", H);
    l.mlp_norm_bias = t.vector(p + "ln_2.bias", H);
    const Matrix qkv = transposed(t.matrix(p + "attn.c_attn.weight", H, 3 * H), w, p + "attn.c_attn.weight");
    l.wq = rows_view(qkv, 0, H);
    l.wk = rows_view(qkv, H, H);
    l.wv = rows_view(qkv, 2 * H, H);
    const std::vector<float> b_qkv = t.vector(p + "attn.c_attn.bias", 3 * H);
    l.bq.assign(b_qkv.begin(), b_qkv.begin() + H);
    l.bk.assign(b_qkv.begin() + H, b_qkv.begin() + 2 * H);
    l.bv.assign(b_qkv.begin() + 2 * H, b_qkv.end());
    l.wo = transposed(t.matrix(p + "attn.c_proj.weight", H, H), w, p + "attn.c_proj.weight");
    l.bo = t.vector(p + "attn.c_proj.bias", H);
    l.w_up = transposed(t.matrix(p + "mlp.c_fc.weight", H, I), w, p + "mlp.c_fc.weight");
    l.b_up = t.vector(p + "mlp.c_fc.bias", I);
    l.w_down = transposed(t.matrix(p + "mlp.c_proj.weight", I, H), w, p + "mlp.c_proj.weight");
    l.b_down = t.vector(p + "mlp.c_proj.bias", H);
    w.layers.push_back(std::move(l));
  }
}

// GPT-J: transformer.{wte,h.N,ln_f}; one LayerNorm per block feeding attention and MLP in
// parallel, unbiased attention projections, biased MLP, an untied head with a bias.
void load_gptj(const ModelConfig& c, const TensorTable& t, ModelWeights& w) {
  const int H = c.hidden_size, I = c.intermediate_size;
  w.embed = t.matrix("transformer.wte.weight", c.vocab_size, H);
  w.lm_head = c.tie_word_embeddings ? w.embed : t.matrix("lm_head.weight", c.vocab_size, H);
  if (c.lm_head_bias) w.lm_head_bias = t.vector("lm_head.bias", c.vocab_size);
  w.final_norm = t.vector("transformer.ln_f.weight", H);
  w.final_norm_bias = t.vector("transformer.ln_f.bias", H);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    LayerWeights l;
    l.attn_norm = t.vector(p + "ln_1.weight", H);
    l.attn_norm_bias = t.vector(p + "ln_1.bias", H);
    l.wq = t.matrix(p + "attn.q_proj.weight", H, H);
    l.wk = t.matrix(p + "attn.k_proj.weight", H, H);
    l.wv = t.matrix(p + "attn.v_proj.weight", H, H);
    l.wo = t.matrix(p + "attn.out_proj.weight", H, H);
    l.w_up = t.matrix(p + "mlp.fc_in.weight", I, H);
    l.b_up = t.vector(p + "mlp.fc_in.bias", I);
    l.w_down = t.matrix(p + "mlp.fc_out.weight", H, I);
    l.b_down = t.vector(p + "mlp.fc_out.bias", H);
    w.layers.push_back(std::move(l));
  }
}

}  // namespace

ModelWeights load_weights(const ModelConfig& c, const std::vector<std::string>& paths,
                          const std::vector<TensorEntry>& entries) {
  ModelWeights w;
  for (const auto& p : paths) w.files.push_back(std::make_unique<MappedFile>(p));
  TensorTable t(w.files, entries);
  switch (c.family) {
    case Family::kLlama: load_llama(c, t, w); break;
    case Family::kGpt2: load_gpt2(c, t, w); break;
    case Family::kGptj: load_gptj(c, t, w); break;
  }
  return w;
}

namespace {

struct DummyMaker {
  ModelWeights& w;
  std::mt19937_64 rng;

  Matrix matrix(int rows, int cols) {
    std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
    w.owned.emplace_back(static_cast<size_t>(rows) * cols);
    for (auto& v : w.owned.back()) v = dist(rng);
    return Matrix{w.owned.back().data(), DType::kF32, rows, cols, {}};
  }
  std::vector<float> ones(int n) { return std::vector<float>(n, 1.0f); }
};

}  // namespace

// Every family's matrices (a GELU MLP has no gate; GPT-2 adds learned positions); norms of ones,
// and no biases, which the forward pass reads as zeros.
ModelWeights make_dummy_weights(const ModelConfig& c, uint64_t seed) {
  ModelWeights w;
  w.owned.reserve(4 + 7 * static_cast<size_t>(c.num_layers));  // Matrix points into these
  DummyMaker m{w, std::mt19937_64(seed)};
  const int q_dim = c.num_heads * c.head_dim;
  const int kv_dim = c.num_kv_heads * c.head_dim;
  w.embed = m.matrix(c.vocab_size, c.hidden_size);
  w.lm_head = c.tie_word_embeddings ? w.embed : m.matrix(c.vocab_size, c.hidden_size);
  w.final_norm = m.ones(c.hidden_size);
  if (c.position == PositionKind::kLearned) w.pos_embed = m.matrix(c.max_positions, c.hidden_size);
  for (int i = 0; i < c.num_layers; ++i) {
    LayerWeights l;
    l.attn_norm = m.ones(c.hidden_size);
    l.mlp_norm = m.ones(c.hidden_size);
    l.wq = m.matrix(q_dim, c.hidden_size);
    l.wk = m.matrix(kv_dim, c.hidden_size);
    l.wv = m.matrix(kv_dim, c.hidden_size);
    l.wo = m.matrix(c.hidden_size, q_dim);
    if (c.mlp == MlpKind::kSwiGLU) l.w_gate = m.matrix(c.intermediate_size, c.hidden_size);
    l.w_up = m.matrix(c.intermediate_size, c.hidden_size);
    l.w_down = m.matrix(c.hidden_size, c.intermediate_size);
    w.layers.push_back(std::move(l));
  }
  return w;
}

}  // namespace tachyon
