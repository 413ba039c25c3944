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

// out[c * R + r] = dot(x[c], w[r]) for a tile of C inputs by R rows. One
// template for every tile shape, and each output has its own accumulator
// summed in the same order, so a dot is the same arithmetic whichever tile
// (and so whichever batch) it falls in.
template <int C, int R>
inline void dot_tile(const float* const* x, const float* const* w, int k, float* out) {
  v8 acc[C][R];
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r) acc[c][r] = v8{};
  int i = 0;
  for (; i + 8 <= k; i += 8) {
    v8 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load8(w[r] + i);
    for (int c = 0; c < C; ++c) {
      const v8 xv = load8(x[c] + i);
      for (int r = 0; r < R; ++r) acc[c][r] += xv * wv[r];
    }
  }
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r) {
      float s = reduce8(acc[c][r]);
      for (int j = i; j < k; ++j) s += x[c][j] * w[r][j];
      out[c * R + r] = s;
    }
}

inline float dot(const float* a, const float* b, int k) {
  float out;
  dot_tile<1, 1>(&a, &b, k, &out);
  return out;
}

}  // namespace tachyon
