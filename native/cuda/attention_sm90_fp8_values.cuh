// P V on E4M3 tensor cores for the warp-specialized prefill kernel (its FP8V instance,
// CudaKnobs.fp8PrefillValues): the producer's transpose of a raw E4M3 V tile into V^T, P rounded
// to E4M3 from the consumers' score registers in the matching k order, the wgmma between them, and
// the end of an item with the row sums scaled to match P.
#pragma once
#include <cuda_fp8.h>

#include <cstdint>

#include "cuda/attention.h"
#include "cuda/attention_sm90_tiles.cuh"
#include "cuda/wgmma.cuh"

namespace tachyon {
namespace sm90 {

// FP8 values (CudaKnobs.fp8PrefillValues, E4M3 cache at D = 128): O += P V with P rounded to E4M3
// and V's cached bytes as they are. 8-bit wgmma reads B only K-major, so V goes in transposed: V^T
// (D rows of the tile's 64 positions) as core matrices of 8 dims x 16 positions, 128 contiguous
// bytes each, kVtLeading bytes apart along the positions and kVtStride along the dims. P's A
// fragment (mma.m16n8k32's: thread lane % 4 = t holds k 4t .. 4t + 3 and 16 + 4t .. 16 + 4t + 3 of
// a k-step of 32) is not where the scores' accumulators leave it (t holds positions 8j + 2t and
// + 1 of each 8-position score tile j), so rather than move P between threads the k order of a
// k-step is permuted: k = 16h + 4t + u stands for position 16h + 8 (u >> 1) + 2t + (u & 1), in P's
// fragment and in V^T's rows alike (a sum over k does not care in which order it meets its terms).
constexpr int kVtLeading = 128;            // 16 positions on: the next core matrix along k
constexpr int kVtStride = 4 * kVtLeading;  // 8 dims on: a tile's 64 positions are 4 core matrices

// One thread's share of transposing a raw E4M3 V tile (64 positions x 128 bytes, unpadded rows)
// into V^T: warp kb takes k block kb (16 positions), lane w dims 4w .. 4w + 3. It reads 16 words
// (one a position; a warp reads a row's 32 consecutive words: no bank conflicts), transposes them
// with byte permutes, and writes each dim's 16 bytes; lanes start at different dims of their four
// ((s + w / 2) % 4 at store s) so that each 8-lane phase writes 8 distinct 16-byte bank groups.
template <int THREADS, int D = 128>
struct TransposePlan {
  static_assert(THREADS == 128, "four warps, one k block each");
  static_assert(kTile == 64 && D == 128, "a 64-position tile (four k blocks) of 128-byte rows (32 lanes x 4 dims)");
  uint32_t read;      // byte offset of position 16 kb's word w in the raw tile
  uint32_t write[4];  // byte offset in V^T of store s's dim
  uint32_t select[4]; // byte_perm selector: byte (dim of store s) of two words

  __device__ __forceinline__ TransposePlan(int tid) {
    const int kb = tid / 32, w = tid % 32;
    read = static_cast<uint32_t>(16 * kb * D + 4 * w);
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int i = (s + (w >> 1)) & 3, n = 4 * w + i;
      write[s] = static_cast<uint32_t>((n / 8) * kVtStride + kb * kVtLeading + (n % 8) * 16);
      select[s] = static_cast<uint32_t>(i | ((4 + i) << 4));
    }
  }

  __device__ __forceinline__ void run(const unsigned char* stage, unsigned char* out) const {
    uint32_t x[16];  // positions 16 kb + q, dims 4w .. 4w + 3
#pragma unroll
    for (int q = 0; q < 16; ++q) x[q] = *reinterpret_cast<const uint32_t*>(stage + read + q * D);
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      uint32_t o[4];  // k 4m .. 4m + 3 of the dim: positions 2m, 2m + 1, 8 + 2m, 9 + 2m
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        const uint32_t lo = __byte_perm(x[2 * m], x[2 * m + 1], select[s]);
        const uint32_t hi = __byte_perm(x[8 + 2 * m], x[9 + 2 * m], select[s]);
        o[m] = __byte_perm(lo, hi, 0x5410);
      }
      *reinterpret_cast<uint4*>(out + write[s]) = make_uint4(o[0], o[1], o[2], o[3]);
    }
  }
};

// P's scale as E4M3: P <= 1, so 256 P stays below E4M3's 448 and keeps 2^-17 before it flushes to
// zero (2^-9 unscaled); the row sums take the same factor before the division (finish_rows_e4m3).
constexpr float kPScale = 256.0f;

// The same scale for the paired-tile kernel (CudaKnobs.prefillPairs), log2: its softmax's
// exponentials come out times 2^8 (online_softmax_tiles' P_LOG2, so no multiply a value), and the
// row sums carry the same factor, so the division removes it.
constexpr int kPLog2 = 8;
// How far past its maximum a row's scores may go before the maximum moves (online_softmax_tiles'
// slack, log2 units): P then reaches 2^(8 + 0.75), about 431, inside E4M3's 448.
constexpr float kPSlack = 0.75f;

// O += P V with FP8 values: P as E4M3 A fragments (pack_p_e4m3), V^T at `tile` + V_AT;
// k-step c reads positions 32 c .. 32 c + 31 (two core matrices along k). One wgmma group.
template <int D, int V_AT>
__device__ __forceinline__ void issue_values_e4m3(float (&acc)[D / 8][4], const uint32_t (&pf)[kTile / 32][4], uint32_t tile) {
  static_assert(D == 128, "FP8 values at head_dim 128");
#pragma unroll
  for (int c = 0; c < kTile / 32; ++c)
    wgmma_m64n128k32_e4m3(acc, pf[c], interleave_desc(tile + V_AT + c * 2 * kVtLeading, kVtLeading, kVtStride), true);
  wgmma_commit();
}

// P times `scale` rounded to E4M3 as the A fragments of a P V, four positions a register in
// TransposePlan's k order (register 0: row lane / 4, positions 2t, 2t + 1 of score tiles 4c and
// 4c + 1; 1: the same of row + 8; 2 and 3: score tiles 4c + 2 and 4c + 3); zeros where not live.
// The single-tile kernel scales by kPScale here; the paired one's P already carries 2^kPLog2 (scale 1).
__device__ __forceinline__ void pack_p_e4m3(uint32_t (&pf)[kTile / 32][4], const float (&s)[kTile / 8][4], bool live, float scale) {
  auto pack = [scale](float a, float b, float c, float d) {
    const __nv_fp8x2_storage_t p0 = __nv_cvt_float2_to_fp8x2(make_float2(a * scale, b * scale), __NV_SATFINITE, __NV_E4M3);
    const __nv_fp8x2_storage_t p1 = __nv_cvt_float2_to_fp8x2(make_float2(c * scale, d * scale), __NV_SATFINITE, __NV_E4M3);
    return static_cast<uint32_t>(p0) | (static_cast<uint32_t>(p1) << 16);
  };
#pragma unroll
  for (int c = 0; c < kTile / 32; ++c)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int j = 4 * c + 2 * (i >> 1), e = 2 * (i & 1);
      pf[c][i] = live ? pack(s[j][e], s[j][e + 1], s[j + 1][e], s[j + 1][e + 1]) : 0u;
    }
}

// rescale_and_pack for FP8 values: O takes corr, then P times kPScale rounded to E4M3 (pack_p_e4m3).
template <int D>
__device__ __forceinline__ void rescale_and_pack_e4m3(float (&acc)[D / 8][4], uint32_t (&pf)[kTile / 32][4], const float (&s)[kTile / 8][4],
                                                      const float (&corr)[2], bool live) {
  rescale_output<D>(acc, corr);
  pack_p_e4m3(pf, s, live, kPScale);
}

// finish_rows for FP8 values: the row sums take P's kPScale (exact: a power of two) before the
// division, then the last tile's P V from V^T at `last` + V_AT.
template <int D, int V_AT>
__device__ __forceinline__ void finish_rows_e4m3(float (&acc)[D / 8][4], const uint32_t (&pf)[kTile / 32][4], float (&l)[2], int tiles_total,
                                                 uint32_t last, const AttentionArgs& a, int first, int count, int group, int kvh, int lane) {
  l[0] *= kPScale;
  l[1] *= kPScale;
  finish_rows_with<D, KvType::kE4M3>(acc, l, tiles_total, [&] { issue_values_e4m3<D, V_AT>(acc, pf, last); }, a, first, count, group,
                                     kvh, lane);
}

}  // namespace sm90
}  // namespace tachyon
