#include "cpu/int8.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace tachyon {

namespace {

Matrix to_int8(const Matrix& m, ModelWeights& w) {
  if (m.data == nullptr || m.dtype == DType::kI8) return m;
  std::vector<uint8_t>& store = w.owned_bytes.emplace_back(static_cast<size_t>(m.rows) * m.cols);
  Matrix q{store.data(), DType::kI8, m.rows, m.cols, std::vector<float>(m.rows)};
  std::vector<float> row(m.cols);
  auto* out = reinterpret_cast<int8_t*>(store.data());
  for (int r = 0; r < m.rows; ++r) {
    widen_row(m, r, row.data());
    float amax = 0.0f;
    for (float v : row) amax = std::max(amax, std::fabs(v));
    const float scale = amax > 0.0f ? amax / 127.0f : 1.0f;
    q.scale[r] = scale;
    for (int c = 0; c < m.cols; ++c)
      out[static_cast<size_t>(r) * m.cols + c] = static_cast<int8_t>(std::clamp(std::nearbyint(row[c] / scale), -127.0f, 127.0f));
  }
  return q;
}

// Frees the owned buffers no matrix points into any more (GPT-2's transposed float copies, once
// quantized), so INT8 saves the memory it promises.
void release_unreferenced(ModelWeights& w) {
  std::vector<const Matrix*> all{&w.embed, &w.lm_head, &w.pos_embed};
  for (const LayerWeights& l : w.layers)
    for (const Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) all.push_back(m);
  auto referenced = [&](const std::vector<uint8_t>& buf) {
    const uint8_t *begin = buf.data(), *end = buf.data() + buf.size();
    for (const Matrix* m : all) {
      const auto* p = static_cast<const uint8_t*>(m->data);
      if (p >= begin && p < end) return true;
    }
    return false;
  };
  std::vector<std::vector<uint8_t>> kept;
  for (auto& buf : w.owned_bytes)
    if (referenced(buf)) kept.push_back(std::move(buf));  // moving keeps each buffer where it is
  w.owned_bytes = std::move(kept);
}

}  // namespace

void quantize_int8(ModelWeights& w) {
  w.owned_bytes.reserve(w.owned_bytes.size() + 7 * w.layers.size());
  for (LayerWeights& l : w.layers)
    for (Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) *m = to_int8(*m, w);
  release_unreferenced(w);
}

}  // namespace tachyon
