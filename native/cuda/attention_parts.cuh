// Pieces both tensor-core attention kernels (attention.cu, attention_decode.cu) use.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>

#include "cuda/attention.h"
#include "cuda/kv_cache.h"
#include "cuda/mma.cuh"
#include "cuda/rope.cuh"

namespace tachyon {

// Online-softmax state of one query row, in the log2 domain (scores times log2(e) / sqrt(D)).
// Folding b into a: explicit roundings, so the in-block fold of the sequential walk and the last
// block's fold of split-parallel states produce the same bits.
__device__ __forceinline__ void fold_weights(float ma, float mb, float& wa, float& wb, float& m) {
  m = fmaxf(ma, mb);
  wa = ma == -INFINITY ? 0.0f : exp2f(__fsub_rn(ma, m));
  wb = mb == -INFINITY ? 0.0f : exp2f(__fsub_rn(mb, m));
}
__device__ __forceinline__ float fold_value(float a, float wa, float b, float wb) {
  return __fmaf_rn(b, wb, __fmul_rn(a, wa));
}

// Two E4M3 in the low (hi: high) 16 bits of x as f16x2.
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t x, bool hi) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(hi ? x >> 16 : x & 0xffffu), __NV_E4M3);
  return static_cast<uint32_t>(h.x) | (static_cast<uint32_t>(h.y) << 16);
}

// Two INT8 in the low (hi: high) 16 bits of x as f16x2, exactly: each byte biased to unsigned
// becomes the mantissa of 1024 + byte, and 1152 comes off.
__device__ __forceinline__ uint32_t int8x2_to_f16x2(uint32_t x, bool hi) {
  const uint32_t h = __byte_perm(x ^ 0x80808080u, 0x64646464u, hi ? 0x4342 : 0x4140);
  const __half2 v = __hsub2(*reinterpret_cast<const __half2*>(&h), __floats2half2_rn(1152.0f, 1152.0f));
  return *reinterpret_cast<const uint32_t*>(&v);
}

// A cache of one-byte elements (E4M3 or INT8): two of them as f16x2.
template <KvType T>
__device__ __forceinline__ uint32_t bytes_to_f16x2(uint32_t x, bool hi) {
  static_assert(T != KvType::kBf16, "bf16 is read as it is");
  return T == KvType::kE4M3 ? e4m3x2_to_f16x2(x, hi) : int8x2_to_f16x2(x, hi);
}

// a * b on f16x2 bit patterns.
__device__ __forceinline__ uint32_t mul_f16x2(uint32_t a, uint32_t b) {
  const __half2 v = __hmul2(*reinterpret_cast<const __half2*>(&a), *reinterpret_cast<const __half2*>(&b));
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Bytes of a b16-transposed ldmatrix (p, 2j), (p, 2j + 1), (p + 1, 2j), (p + 1, 2j + 1)
// regrouped as [even dim's position pair | odd dim's position pair].
__device__ __forceinline__ uint32_t split_dim_parity(uint32_t x) { return __byte_perm(x, 0, 0x3120); }

// A block's query tile (a run of one sequence's tokens) and one warp's share of it, in attention.cu's
// and attention_prefill.cu's layout: ROWS query rows a warp hold whole groups of `group` heads, so
// ROWS / group tokens; count is 0 for a warp past the tile's end.
struct WarpQueries {
  int first, count;           // the warp's tokens: [first, first + count)
  int block_last, warp_last;  // the last position of the tile, and of the warp's tokens (-1: none)
  const int32_t* table;       // the sequence's block table
};

template <int ROWS>
__device__ __forceinline__ WarpQueries warp_queries(const AttentionArgs& a, int2 tile, int group, int warp) {
  const int per_warp = ROWS / group;
  WarpQueries w;
  w.first = tile.x + warp * per_warp;
  w.count = max(0, min(per_warp, tile.y - warp * per_warp));
  w.table = a.block_tables + static_cast<size_t>(a.token_seq[tile.x]) * a.table_stride;
  w.block_last = a.positions[tile.x + tile.y - 1];
  w.warp_last = w.count > 0 ? a.positions[w.first + w.count - 1] : -1;
  return w;
}

// Dims col and col + 1 of a q row not yet turned by RoPE (bf16, `at` = the row + col) and their
// rotation partners (+ D / 2), plus q_bias from column bias_col, turned by rot[0], rot[1] (q_cos_sin
// at the row's position + col) as the RoPE kernel turns them (rope.cuh): lo[0..1] the first
// half's, hi[0..1] the partners'.
template <int D>
__device__ __forceinline__ void turn_query_pair(const AttentionArgs& a, const __nv_bfloat16* at, size_t bias_col,
                                                const float2* rot, float* lo, float* hi) {
  constexpr int half = D / 2;
  const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(at));
  const float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(at + half));
  float av[2] = {x.x, x.y}, bv[2] = {y.x, y.y};
  if (a.q_bias) {
    const float2 ba = *reinterpret_cast<const float2*>(a.q_bias + bias_col);
    const float2 bb = *reinterpret_cast<const float2*>(a.q_bias + bias_col + half);
    av[0] += ba.x, av[1] += ba.y, bv[0] += bb.x, bv[1] += bb.y;
  }
#pragma unroll
  for (int j = 0; j < 2; ++j) rope_rotate(av[j], bv[j], rot[j], lo[j], hi[j]);
}

// The prefill kernels' q from bf16 rows that RoPE has not turned (AttentionArgs::q_raw, or a
// block's copy of them in shared memory): token tk of the warp's count holds query head
// head0 + h (h < group; the tile's KV head kvh * group + h) at rows + tk * row_stride + (head0 + h) * D.
// Plus q_bias, turned by q_cos_sin at row_pos as the RoPE kernel turns it (rope.cuh), into
// load_query_rows' fragments (F16: f16, else bf16); rows past count are zeros.
template <int D, bool F16>
__device__ __forceinline__ void turn_query_rows(const AttentionArgs& a, const __nv_bfloat16* rows, size_t row_stride, int head0,
                                                int count, int group, int kvh, int lane, const int (&row_pos)[2],
                                                uint32_t (&qf)[D / 16][4]) {
  // A lane holds dims c, c + 1 of fragment (kc, f) at c = 16 kc + 8 (f >> 1) + 2 (lane % 4): the
  // rotation partners c + D/2 are in the same lane, fragment (kc2, f2) below.
  constexpr int half = D / 2;
#pragma unroll
  for (int kc = 0; kc < D / 16; ++kc)
#pragma unroll
    for (int f = 0; f < 4; ++f) {
      const int base = kc * 16 + (f >> 1) * 8;
      if (base >= half) continue;  // a partner, made with its pair's first half
      const int kc2 = (base + half) / 16, f2 = (((base + half) % 16) / 8) * 2 + (f & 1);
      const int r = lane / 4 + (f & 1) * 8, tk = r / group;
      const int col = base + (lane % 4) * 2;
      float lo[2] = {0.0f, 0.0f}, hi[2] = {0.0f, 0.0f};
      if (tk < count)
        turn_query_pair<D>(a, rows + static_cast<size_t>(tk) * row_stride + static_cast<size_t>(head0 + r % group) * D + col,
                           static_cast<size_t>(kvh * group + r % group) * D + col,
                           a.q_cos_sin + static_cast<size_t>(row_pos[f & 1]) * half + col, lo, hi);
      qf[kc][f] = pack16<F16>(lo[0], lo[1]);
      qf[kc2][f2] = pack16<F16>(hi[0], hi[1]);
    }
}

// turn_query_rows' values as E4M3 A fragments of wgmma's k32 (wgmma_m64n64k32_e4m3): register i
// of k-step kc holds row lane / 4 + 8 (i & 1), dims 32 kc + 16 (i >> 1) + 4 (lane % 4) + 0-3, so
// a dim's rotation partner (+ D / 2) is in the same lane, k-step kc + D / 64. Each row is scaled by
// its largest magnitude over E4M3's 448 (a quad's four lanes hold a row's D values); scale[h] is
// row lane / 4 + 8 h's (1 for a row of zeros or past count), what its scores must be multiplied by.
template <int D>
__device__ __forceinline__ void turn_query_rows_e4m3(const AttentionArgs& a, const __nv_bfloat16* rows, size_t row_stride,
                                                     int head0, int count, int group, int kvh, int lane,
                                                     const int (&row_pos)[2], uint32_t (&qf)[D / 32][4], float (&scale)[2]) {
  constexpr int half = D / 2, KH = D / 64;  // k-steps of the first half
  float lo[KH][4][4], hi[KH][4][4];
  float peak[2] = {0.0f, 0.0f};
#pragma unroll
  for (int kc = 0; kc < KH; ++kc)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = lane / 4 + (i & 1) * 8, tk = r / group;
      const int col = kc * 32 + (i >> 1) * 16 + (lane % 4) * 4;
#pragma unroll
      for (int j = 0; j < 4; ++j) lo[kc][i][j] = hi[kc][i][j] = 0.0f;
      if (tk < count) {
        const __nv_bfloat16* row = rows + static_cast<size_t>(tk) * row_stride + static_cast<size_t>(head0 + r % group) * D + col;
        const size_t c0 = static_cast<size_t>(kvh * group + r % group) * D + col;
        const float2* rot = a.q_cos_sin + static_cast<size_t>(row_pos[i & 1]) * half + col;
#pragma unroll
        for (int j = 0; j < 4; j += 2) turn_query_pair<D>(a, row + j, c0 + j, rot + j, &lo[kc][i][j], &hi[kc][i][j]);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) peak[i & 1] = fmaxf(peak[i & 1], fmaxf(fabsf(lo[kc][i][j]), fabsf(hi[kc][i][j])));
    }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    peak[h] = fmaxf(peak[h], __shfl_xor_sync(0xffffffffu, peak[h], 1));
    peak[h] = fmaxf(peak[h], __shfl_xor_sync(0xffffffffu, peak[h], 2));
    // (a peak so small that peak / 448 flushes to zero counts as zero: its inverse would be inf)
    scale[h] = peak[h] > 448.0f * 1.17549435e-38f ? peak[h] / 448.0f : 1.0f;
  }
  auto pack4 = [](const float (&v)[4], float inv) {
    const __nv_fp8x2_storage_t p0 = __nv_cvt_float2_to_fp8x2(make_float2(v[0] * inv, v[1] * inv), __NV_SATFINITE, __NV_E4M3);
    const __nv_fp8x2_storage_t p1 = __nv_cvt_float2_to_fp8x2(make_float2(v[2] * inv, v[3] * inv), __NV_SATFINITE, __NV_E4M3);
    return static_cast<uint32_t>(p0) | (static_cast<uint32_t>(p1) << 16);
  };
#pragma unroll
  for (int kc = 0; kc < KH; ++kc)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float inv = 1.0f / scale[i & 1];
      qf[kc][i] = pack4(lo[kc][i], inv);
      qf[kc + KH][i] = pack4(hi[kc][i], inv);
    }
}

// A warp's 16 query rows in attention.cu's and attention_prefill.cu's layout (the mma's M = tokens
// x the query heads of KV head kvh): lane rows lane / 4 and + 8 are token row / group of the warp's
// count tokens from first, query head kvh * group + row % group. row_pos: their positions (-1 past
// count); qf: q as A fragments, f16 (F16) or bf16. K_BYTES (K read as bytes): a chunk's k slots 2c + {0, 1} and
// 2c + 8 + {0, 1} hold dims 4c + {0, 1} and 4c + {2, 3}, as one-byte K fragments come out of ldmatrix.
template <int D, bool F16, bool K_BYTES>
__device__ __forceinline__ void load_query_rows(const AttentionArgs& a, int first, int count, int group, int kvh, int lane,
                                                int (&row_pos)[2], uint32_t (&qf)[D / 16][4]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = lane / 4 + 8 * h, tk = r / group;
    row_pos[h] = tk < count ? a.positions[first + tk] : -1;
  }
  const size_t qkv_width = static_cast<size_t>(a.heads + 2 * a.kv_heads) * D;
  if constexpr (!K_BYTES) {
    if (a.q_raw) {
      turn_query_rows<D, F16>(a, a.q_raw + static_cast<size_t>(first) * qkv_width, qkv_width, kvh * group, count, group, kvh,
                              lane, row_pos, qf);
      return;
    }
  }
#pragma unroll
  for (int kc = 0; kc < D / 16; ++kc)
#pragma unroll
    for (int f = 0; f < 4; ++f) {
      const int r = lane / 4 + (f & 1) * 8, tk = r / group;
      const int col = K_BYTES ? kc * 16 + (lane % 4) * 4 + (f >> 1) * 2 : kc * 16 + (f >> 1) * 8 + (lane % 4) * 2;
      float2 v = make_float2(0.0f, 0.0f);
      if (tk < count)
        v = *reinterpret_cast<const float2*>(a.qkv + static_cast<size_t>(first + tk) * qkv_width +
                                             static_cast<size_t>(kvh * group + r % group) * D + col);
      qf[kc][f] = pack16<F16>(v.x, v.y);
    }
}

// One K/V tile's step of a warp's online softmax over its 16 query rows (the prefill kernels), in
// the log2 domain: s holds the tile's raw scores as NT mma C fragments (rows lane / 4 and + 8),
// already causally masked; they become exponentials. m (raw running maxima) and l (this lane's part
// of each row's sum) move on; corr is what each row's accumulators must be multiplied by. A row
// with no visible position yet keeps m = -inf: its exponentials are of -inf (0), never of -inf - -inf.
template <int NT>
__device__ __forceinline__ void online_softmax_tile(float (&s)[NT][4], float (&m)[2], float (&l)[2], float scale_log2,
                                                    float (&corr)[2]) {
  float tile_max[2] = {-INFINITY, -INFINITY}, base[2];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) tile_max[e >> 1] = fmaxf(tile_max[e >> 1], s[j][e]);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
    tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
    const float m_new = fmaxf(m[h], tile_max[h]);
    base[h] = m_new == -INFINITY ? 0.0f : m_new * scale_log2;
    corr[h] = exp2f(m[h] * scale_log2 - base[h]);
    m[h] = m_new;
    l[h] *= corr[h];
  }
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[j][e] = exp2f(fmaf(s[j][e], scale_log2, -base[e >> 1]));
      l[e >> 1] += s[j][e];
    }
}

// op folded over the 2 T NT values a thread holds of row h in T tiles of NT score fragments (h = 0:
// elements 0, 1 of each C fragment; 1: elements 2, 3) as a balanced tree: log2(2 T NT) dependent
// steps instead of 2 T NT - 1.
template <int W, int N, typename Op>
__device__ __forceinline__ void fold_halves(float (&v)[N], Op op) {  // v[j] op= v[j + W], W halving to 1
  if constexpr (W >= 1) {
#pragma unroll
    for (int j = 0; j < W; ++j) v[j] = op(v[j], v[j + W]);
    fold_halves<W / 2>(v, op);
  }
}

template <int T, int NT, typename Op>
__device__ __forceinline__ float row_tree(const float (&s)[T][NT][4], int h, Op op) {
  constexpr int N = T * NT;
  static_assert((N & (N - 1)) == 0, "a power of two of score fragments: the row's values pair up");
  float v[N];
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = op(s[j / NT][j % NT][2 * h], s[j / NT][j % NT][2 * h + 1]);
  fold_halves<N / 2>(v, op);  // (template recursion: a loop over halving widths was left rolled at N = 16)
  return v[0];
}

// online_softmax_tile leaner, for the paired-tile prefill kernel (CudaKnobs.prefillPairs, not yet
// measured on a GPU; the other prefill kernels keep online_softmax_tile's bits until it is): one
// step of a warp's online softmax over its 16 query rows in the log2 domain, over T K/V tiles at once: s holds their raw scores as NT mma C fragments a tile (rows
// lane / 4 and + 8), already causally masked, and scale[h] (> 0) turns row lane / 4 + 8 h's into
// log2 units; they become exponentials times 2^P_LOG2 (P's scale where P is rounded to E4M3). m
// (the raw maximum a row's exponentials are taken against) and l (this lane's part of each row's
// sum, in P's units) move on; corr is what each row's accumulators must be multiplied by: exactly
// 1 where m stays, so rescale_output can skip them (online_softmax_tile's exp2 of the rounding
// left between m * scale and its fma came out a hair off 1: ncu, 99.2% of tiles rescaled). m moves only once the tiles'
// maximum passes it by more than `slack` log2 units, so exponentials reach up to 2^(P_LOG2 +
// slack) (FlashAttention-4's conditional rescaling): a row whose maximum creeps up keeps its
// accumulators. The decision is the row's own, so a row's bits never depend on its neighbours. A
// row with no visible position yet keeps m = -inf: its exponentials are of -inf (0), never of -inf - -inf.
template <int T, int NT, int P_LOG2 = 0>
__device__ __forceinline__ void online_softmax_tiles(float (&s)[T][NT][4], float (&m)[2], float (&l)[2], const float (&scale)[2],
                                                     float (&corr)[2], float slack = 0.0f) {
  // The row's maximum and, below, its sum as trees, not chains: the maximum sits between the
  // scores' wgmma and the exponentials, and a chain of 2 NT dependent instructions was the longest
  // wait of the tile (the sum's order is fixed, so the bits still never depend on the batch).
  float tile_max[2], base[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) tile_max[h] = row_tree(s, h, [](float x, float y) { return fmaxf(x, y); });
  // The exponentials' offset for raw maximum x (log2 units); __fmul_rn keeps the product from
  // being fused into what follows, so the same x always gives the same offset.
  auto offset = [&](float x, int h) { return x == -INFINITY ? -static_cast<float>(P_LOG2) : __fmul_rn(x, scale[h]) - P_LOG2; };
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
    tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
    const float old_base = offset(m[h], h);
    const bool moves = tile_max[h] > m[h] && (m[h] == -INFINITY || __fmul_rn(tile_max[h] - m[h], scale[h]) > slack);
    corr[h] = 1.0f;
    base[h] = old_base;
    if (moves) {
      base[h] = offset(tile_max[h], h);
      corr[h] = m[h] == -INFINITY ? 0.0f : exp2f(old_base - base[h]);
      m[h] = tile_max[h];
    }
    l[h] *= corr[h];
  }
#pragma unroll
  for (int t = 0; t < T; ++t)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[t][j][e] = exp2f(fmaf(s[t][j][e], scale[e >> 1], -base[e >> 1]));
#pragma unroll
  for (int h = 0; h < 2; ++h) l[h] += row_tree(s, h, [](float x, float y) { return x + y; });
}

// The prefill kernels' output: a warp's 16 rows of O (D / 8 accumulator tiles, rows lane / 4 and
// + 8 = token row / group, query head kvh * group + row % group) divided by their sums (lanes of a
// quad add their parts) and times an E4M3 cache's V scale, as bf16 into a.out; rows past count are
// not written.
template <int D, KvType KV>
__device__ __forceinline__ void store_prefill_rows(const AttentionArgs& a, const float (&acc)[D / 8][4], float (&l)[2], int first,
                                                   int count, int group, int kvh, int lane) {
  const float v_scale = KV == KvType::kE4M3 ? a.kv.v_scale : 1.0f;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    const int r = lane / 4 + 8 * h, tk = r / group;
    if (tk >= count) continue;
    const float inv = v_scale / l[h];
    __nv_bfloat16* o = a.out + static_cast<size_t>(first + tk) * a.heads * D + static_cast<size_t>(kvh * group + r % group) * D;
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
      *reinterpret_cast<uint32_t*>(o + dn * 8 + (lane & 3) * 2) = pack_bf16(acc[dn][2 * h] * inv, acc[dn][2 * h + 1] * inv);
  }
}

// A 16-byte piece of a one-byte K or V row (16 E4M3 or INT8 values) as 8 f16x2 words, dims in
// order; INT8 times the row's scale.
template <KvType KV>
__device__ __forceinline__ void widen_piece(uint4 x, float scale, uint32_t (&h)[8]) {
  const uint32_t w[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    h[2 * k] = bytes_to_f16x2<KV>(w[k], false);
    h[2 * k + 1] = bytes_to_f16x2<KV>(w[k], true);
  }
  if constexpr (KV == KvType::kInt8) {
    const uint32_t sc = pack_f16(scale, scale);
#pragma unroll
    for (int k = 0; k < 8; ++k) h[k] = mul_f16x2(h[k], sc);
  }
}

// Positions per K/V tile of both tensor-core kernels.
constexpr int kAttnTile = 16;

// The head dimension an accumulator element holds (query rows in the mma's M): element e (0-3) of
// 8-wide output tile dn. bf16: tile dn is dims dn * 8 + 0-7, a lane's pair 2 (lane % 4) + {0, 1}.
// One-byte caches (BYTES: V read as bytes, see attention.cu's attend): tiles 2c and 2c + 1 share 16
// dims, even and odd ones; a lane's four are 16c + 4 (lane % 4) + 0-3.
template <bool BYTES>
__device__ __forceinline__ int acc_dim(int dn, int e, int lane) {
  return BYTES ? (dn >> 1) * 16 + (lane & 3) * 4 + (e & 1) * 2 + (dn & 1) : dn * 8 + (lane & 3) * 2 + (e & 1);
}

// Position p's block in its sequence's table: p / block_size by block_divisor()'s multiply and shift.
__device__ __forceinline__ int kv_block_index(const AttentionArgs& a, int p) {
  const uint32_t n = static_cast<uint32_t>(p);
  return static_cast<int>((__umulhi(n, a.block_mul) + n) >> a.block_shift);
}

// The cache slot (block, KV head, offset) of position p, from `entry`, the table's entry for p's
// block. Kernels that walk tiles load the entry a tile before its copies need it: the multiply-adds
// that consume a load stall the warp until it lands, and the copies wait behind them.
__device__ __forceinline__ size_t kv_slot_of_entry(const AttentionArgs& a, int32_t entry, int kvh, int p) {
  const int b = kv_block_index(a, p);
  return (static_cast<size_t>(entry) * a.kv_heads + kvh) * a.block_size + (p - b * a.block_size);
}

// The cache slot of position p of a sequence with block table `table`.
__device__ __forceinline__ size_t kv_slot(const AttentionArgs& a, const int32_t* table, int kvh, int p) {
  return kv_slot_of_entry(a, table[kv_block_index(a, p)], kvh, p);
}

// Whether tile i (positions i * TILE ...) lies in one cache block (the block size a multiple of
// TILE, as the default 16 is for the decode kernels' tiles), so its rows' slots follow each other
// from the tile's first: one table lookup a tile instead of one a 16-byte piece.
template <int TILE>
__device__ __forceinline__ bool kv_tile_in_one_block(const AttentionArgs& a, int i, int last) {
  static_assert((TILE & (TILE - 1)) == 0, "TILE a power of two");
  return (a.block_size & (TILE - 1)) == 0 && i * TILE <= last;
}

// Stages K/V tile i (positions i * TILE ...) of KV head kvh: rows row_bytes apart, V tile_bytes after
// K; an INT8 cache's TILE K then TILE V scales right after V (n >= 2 * TILE). Threads tid of n issue
// the copies; rows past position last are zeros, never garbage. One cp.async group. `first` is the
// slot of the tile's first position where kv_tile_in_one_block() (its rows' slots follow it, no
// lookups here); elsewhere each row's slot is looked up.
// SWIZZLE: rows of whole 128-byte lines, 16-byte chunk c of row r at chunk c ^ (r % 8) of its line
// (attention_decode.cu's DecodeSmem::chunk).
template <int D, KvType KV, int TILE = kAttnTile, bool SWIZZLE = false>
__device__ __forceinline__ void stage_kv_tile_from(unsigned char* ks, int row_bytes, int tile_bytes, const AttentionArgs& a,
                                                   const int32_t* table, int kvh, int i, int last, int tid, int n, size_t first) {
  constexpr int EB = KV == KvType::kBf16 ? 2 : 1;  // bytes per cached element
  constexpr int chunks = D * EB / 16;              // 16-byte pieces per row
  unsigned char* vs = ks + tile_bytes;
  const unsigned char* kc = static_cast<const unsigned char*>(a.kv.k);
  const unsigned char* vc = static_cast<const unsigned char*>(a.kv.v);
  const bool one_block = kv_tile_in_one_block<TILE>(a, i, last);
  auto slot = [&](int r) { return one_block ? first + r : kv_slot(a, table, kvh, i * TILE + r); };
  for (int c = tid; c < TILE * chunks; c += n) {
    const int r = static_cast<unsigned>(c) / chunks, b = (static_cast<unsigned>(c) % chunks) * 16;
    const bool valid = i * TILE + r <= last;
    const size_t off = valid ? slot(r) * D * EB + b : 0;
    if constexpr (SWIZZLE) {
      const int q = b / 16, at = r * row_bytes + ((q & ~7) | ((q ^ r) & 7)) * 16;
      cp_async_16(ks + at, kc + off, valid);
      cp_async_16(vs + at, vc + off, valid);
    } else {
      cp_async_16(ks + r * row_bytes + b, kc + off, valid);
      cp_async_16(vs + r * row_bytes + b, vc + off, valid);
    }
  }
  if constexpr (KV == KvType::kInt8) {
    // Threads 0 to TILE - 1 the K scales of the tile's positions, the next TILE the V scales.
    if (tid < 2 * TILE) {
      const int r = tid % TILE;
      const bool valid = i * TILE + r <= last;
      cp_async_4(vs + tile_bytes + tid * 4, (tid < TILE ? a.kv.k_scales : a.kv.v_scales) + (valid ? slot(r) : 0), valid);
    }
  }
  cp_async_commit();
}

// Stages a whole tile (positions i * TILE to i * TILE + TILE - 1, none past the context's last) that
// lies in one cache block, from `first`, the slot of its first position: its rows follow each other in
// the cache, so piece c of K (or V) is 16 c bytes past the first row's, and a thread's copies differ by
// constants. stage_kv_tile_from() works out each piece's row, slot and bounds; on a decode warp's
// tiles that was a third of the loop's instructions. Same bytes to the same places. n = 32 (a warp).
template <int D, KvType KV, int TILE = kAttnTile, bool SWIZZLE = false>
__device__ __forceinline__ void stage_whole_kv_tile(unsigned char* ks, int row_bytes, int tile_bytes, const AttentionArgs& a,
                                                    int lane, size_t first) {
  constexpr int EB = KV == KvType::kBf16 ? 2 : 1;  // bytes per cached element
  constexpr int chunks = D * EB / 16;              // 16-byte pieces per row
  constexpr int pieces = TILE * chunks;
  unsigned char* vs = ks + tile_bytes;
  const unsigned char* k = static_cast<const unsigned char*>(a.kv.k) + first * D * EB;
  const unsigned char* v = static_cast<const unsigned char*>(a.kv.v) + first * D * EB;
#pragma unroll
  for (int c0 = 0; c0 < pieces; c0 += 32) {
    const int c = c0 + lane;
    if (pieces % 32 != 0 && c >= pieces) break;
    const int r = c / chunks, b = (c % chunks) * 16;
    if constexpr (SWIZZLE) {
      const int q = b / 16, at = r * row_bytes + ((q & ~7) | ((q ^ r) & 7)) * 16;
      cp_async_16(ks + at, k + c * 16, true);
      cp_async_16(vs + at, v + c * 16, true);
    } else {
      cp_async_16(ks + r * row_bytes + b, k + c * 16, true);
      cp_async_16(vs + r * row_bytes + b, v + c * 16, true);
    }
  }
  if constexpr (KV == KvType::kInt8) {
    static_assert(TILE <= 16, "one warp's lanes copy the tile's K and V scales");
    // Lanes 0 to TILE - 1 the K scales of the tile's positions, the next TILE the V scales.
    if (lane < 2 * TILE) cp_async_4(vs + tile_bytes + lane * 4, (lane < TILE ? a.kv.k_scales : a.kv.v_scales) + first + lane % TILE, true);
  }
  cp_async_commit();
}

// The same, looking the tile's first slot up here (the copies wait on that load).
template <int D, KvType KV, int TILE = kAttnTile>
__device__ __forceinline__ void stage_kv_tile(unsigned char* ks, int row_bytes, int tile_bytes, const AttentionArgs& a,
                                              const int32_t* table, int kvh, int i, int last, int tid, int n) {
  const size_t first = kv_tile_in_one_block<TILE>(a, i, last) ? kv_slot(a, table, kvh, i * TILE) : 0;
  stage_kv_tile_from<D, KV, TILE>(ks, row_bytes, tile_bytes, a, table, kvh, i, last, tid, n, first);
}

}  // namespace tachyon
