// Fixed-order dot products on 8-lane GCC/Clang vectors. The reduction order
// depends only on the vector length, so a row's result never depends on the
// batch it is in.
#pragma once

namespace tachyon {

// aligned(4) so loads from any float address are allowed.
typedef float v8 __attribute__((vector_size(32), aligned(4)));

inline v8 load8(const float* p) { return *reinterpret_cast<const v8*>(p); }

inline float reduce8(v8 a) {
  return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

// out[r] = dot(x, w[r]) for R rows. One template for every R so each dot is
// the same instruction sequence whichever group its row falls in.
template <int R>
inline void dot_rows(const float* x, const float* const* w, int k, float* out) {
  v8 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = v8{};
  int i = 0;
  for (; i + 8 <= k; i += 8) {
    const v8 xv = load8(x + i);
    for (int r = 0; r < R; ++r) acc[r] += xv * load8(w[r] + i);
  }
  for (int r = 0; r < R; ++r) {
    float s = reduce8(acc[r]);
    for (int j = i; j < k; ++j) s += x[j] * w[r][j];
    out[r] = s;
  }
}

inline float dot(const float* a, const float* b, int k) {
  float out;
  dot_rows<1>(a, &b, k, &out);
  return out;
}

}  // namespace tachyon
