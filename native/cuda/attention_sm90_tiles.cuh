// The K/V tiles of the Hopper prefill kernels (attention_prefill_sm90.cu, and the
// warp-specialized attention_prefill_sm90_ws.cu): a tile is 64 positions of K and V in shared
// memory as 128-byte swizzle atoms, D / 64 halves of 64 dims, each 64 positions x 128 bytes, with
// the 16-byte chunk c of row r stored at chunk c ^ (r % 8). The same bytes serve as the K-major B
// operand of S = Q K^T (n = positions, k = dims) and the MN-major B of O = P V (k = positions,
// n = dims). One-byte caches land raw (unpadded rows) and are widened into that layout; a bf16
// cache is copied into it directly. StagePlan and WidenPlan are one thread's share of THREADS
// staging and widening a tile; the functions after them are a consumer warp's steps on a tile (its
// 16 of a warpgroup's 64 query rows), which both kernels take in the same order, and the launch
// by head size and cache type both share. FP8 values (E4M3 P V) take V transposed instead:
// attention_sm90_fp8_values.cuh.
#pragma once
#include <cstdint>
#include <type_traits>

#include "cuda/attention.h"
#include "cuda/attention_parts.cuh"
#include "cuda/cuda_check.h"
#include "cuda/mma.cuh"
#include "cuda/wgmma.cuh"

namespace tachyon {
namespace sm90 {

constexpr int kTile = 64;                          // positions per K/V tile
constexpr int kAtomRow = 128;                      // bytes of a swizzle atom's row: 64 dims
constexpr int kHalfBytes = kTile * kAtomRow;       // 64 dims of a tile's 64 positions

template <int D, KvType KV>
struct Sm90Tile {
  static constexpr bool kBytes1 = KV != KvType::kBf16;
  static constexpr int kMatBytes = (D / 64) * kHalfBytes;  // a swizzled K or V tile (f16 or bf16)
  static constexpr int kTileBytes = 2 * kMatBytes;         // K, then V
  static constexpr int kRawTileBytes = kTile * D;          // one-byte rows, unpadded
  static constexpr int kRawStageBytes = 2 * kRawTileBytes + (KV == KvType::kInt8 ? 2 * kTile * 4 : 0);  // INT8: scales
};

// Byte offset of row r's dims 8c .. 8c + 7 in a swizzled K or V tile.
__device__ __forceinline__ int sw128_offset(int r, int c) {
  return (c >> 3) * kHalfBytes + r * kAtomRow + (((c & 7) ^ (r & 7)) << 4);
}

// One thread's share of staging a K/V tile: the same rows, pieces and shared-memory offsets every
// tile, so only the rows' cache slots change, and those are looked up one tile ahead (Fetched), off
// the critical path: the block-table load otherwise stalls every thread right after the barrier.
// One-byte caches: 16-byte pieces of unpadded raw rows (V kRawTileBytes after K, INT8 scales after
// V); bf16: 16-byte pieces straight into the swizzled tile (V kMatBytes after K).
template <int D, KvType KV, int THREADS>
struct StagePlan {
  using S = Sm90Tile<D, KV>;
  static constexpr int kEB = S::kBytes1 ? 1 : 2;
  static constexpr int kChunks = D * kEB / 16;              // 16-byte pieces of a cached row
  static constexpr int kRowsPerPass = THREADS / kChunks;    // rows one pass of the threads covers
  static constexpr int kPerThread = kTile / kRowsPerPass;   // rows (pieces) a thread stages
  static_assert(THREADS % kChunks == 0 && kTile % kRowsPerPass == 0, "whole rows per pass");
  static constexpr bool kScales = KV == KvType::kInt8;      // threads below 2 kTile also copy a scale
  static_assert(!kScales || THREADS >= 2 * kTile, "a thread for each of a tile's K and V scales");

  // A tile's block-table entries, loaded a tile before its copies go out: the slot arithmetic on
  // them waits until copy(), so no thread stalls on the loads.
  struct Fetched {
    int tile;
    int32_t entry[kPerThread];  // table entry of each of this thread's rows' blocks
    bool valid[kPerThread];
    int32_t scale_entry;        // INT8: that of this thread's scale's position
    bool scale_valid;
  };

  int row0, piece;             // rows row0 + k * kRowsPerPass, piece `piece` of each
  uint32_t dst[kPerThread];    // byte offset in the stage (one-byte: raw; bf16: swizzled)

  __device__ __forceinline__ StagePlan(int tid) {
    row0 = tid / kChunks;
    piece = tid % kChunks;
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int r = row0 + k * kRowsPerPass;
      dst[k] = S::kBytes1 ? static_cast<uint32_t>(r * D + piece * 16) : static_cast<uint32_t>(sw128_offset(r, piece));
    }
  }

  // Block-table lookups for tile i (positions past `last` are zeros, never read).
  __device__ __forceinline__ Fetched fetch(const AttentionArgs& a, const int32_t* table, int i, int last, int tid) const {
    Fetched f;
    f.tile = i;
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int p = i * kTile + row0 + k * kRowsPerPass;
      f.valid[k] = p <= last;
      f.entry[k] = f.valid[k] ? table[kv_block_index(a, p)] : 0;
    }
    if constexpr (kScales) {
      const int p = i * kTile + tid % kTile;
      f.scale_valid = tid < 2 * kTile && p <= last;
      f.scale_entry = f.scale_valid ? table[kv_block_index(a, p)] : 0;
    }
    return f;
  }

  // The copies of a fetched tile into a stage; one cp.async group.
  __device__ __forceinline__ void copy(unsigned char* stage, const AttentionArgs& a, const Fetched& f, int kvh, int tid) const {
    const unsigned char* kc = static_cast<const unsigned char*>(a.kv.k);
    const unsigned char* vc = static_cast<const unsigned char*>(a.kv.v);
    constexpr int v_at = S::kBytes1 ? S::kRawTileBytes : S::kMatBytes;
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int p = f.tile * kTile + row0 + k * kRowsPerPass;
      const size_t off = f.valid[k] ? kv_slot_of_entry(a, f.entry[k], kvh, p) * D * kEB + piece * 16 : 0;
      cp_async_16(stage + dst[k], kc + off, f.valid[k]);
      cp_async_16(stage + v_at + dst[k], vc + off, f.valid[k]);
    }
    if constexpr (kScales) {
      // Threads 0 to kTile - 1 the K scales of the tile's positions, the next kTile the V scales.
      if (tid < 2 * kTile) {
        const size_t slot = f.scale_valid ? kv_slot_of_entry(a, f.scale_entry, kvh, f.tile * kTile + tid % kTile) : 0;
        cp_async_4(stage + 2 * S::kRawTileBytes + tid * 4, (tid < kTile ? a.kv.k_scales : a.kv.v_scales) + slot, f.scale_valid);
      }
    }
    cp_async_commit();
  }

  // E4M3 at D = 128 for FP8 scores: K straight into the tile the tensor cores read (a 128-byte row a
  // position: piece c of row r at chunk c ^ (r % 8)), V raw into `v_stage` (unpadded rows, widened
  // after). One cp.async group.
  __device__ __forceinline__ void copy_k_swizzled(unsigned char* k_tile, unsigned char* v_stage, const AttentionArgs& a,
                                                  const Fetched& f, int kvh) const {
    static_assert(KV == KvType::kE4M3 && D == 128, "an E4M3 row of 128 bytes is one swizzle atom row");
    const unsigned char* kc = static_cast<const unsigned char*>(a.kv.k);
    const unsigned char* vc = static_cast<const unsigned char*>(a.kv.v);
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int r = row0 + k * kRowsPerPass, p = f.tile * kTile + r;
      const size_t off = f.valid[k] ? kv_slot_of_entry(a, f.entry[k], kvh, p) * D + piece * 16 : 0;
      cp_async_16(k_tile + r * kAtomRow + ((piece ^ (r & 7)) << 4), kc + off, f.valid[k]);
      cp_async_16(v_stage + dst[k], vc + off, f.valid[k]);
    }
    cp_async_commit();
  }

  // copy_k_swizzled with each row's cache slot (block, KV head, offset) in 32 bits, for the
  // paired-tile kernel (CudaKnobs.prefillPairs): a layer holds fewer than 2^32 (allocate_kv_cache
  // caps it) and each address is one wide multiply-add on the cache's base; the 64-bit slot
  // arithmetic was most of the producer's ~176 instructions a tile (ncu).
  __device__ __forceinline__ void copy_k_swizzled_32(unsigned char* k_tile, unsigned char* v_stage, const AttentionArgs& a,
                                                     const Fetched& f, int kvh) const {
    static_assert(KV == KvType::kE4M3 && D == 128, "an E4M3 row of 128 bytes is one swizzle atom row");
    const unsigned char* kc = static_cast<const unsigned char*>(a.kv.k) + piece * 16;
    const unsigned char* vc = static_cast<const unsigned char*>(a.kv.v) + piece * 16;
    const uint32_t heads = static_cast<uint32_t>(a.kv_heads), block = static_cast<uint32_t>(a.block_size);
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int r = row0 + k * kRowsPerPass, p = f.tile * kTile + r;
      const uint32_t in_block = static_cast<uint32_t>(p - kv_block_index(a, p) * a.block_size);
      const uint32_t slot = (static_cast<uint32_t>(f.entry[k]) * heads + static_cast<uint32_t>(kvh)) * block + in_block;
      const size_t off = f.valid[k] ? static_cast<size_t>(slot) * D : 0;
      cp_async_16(k_tile + r * kAtomRow + ((piece ^ (r & 7)) << 4), kc + off, f.valid[k]);
      cp_async_16(v_stage + dst[k], vc + off, f.valid[k]);
    }
    cp_async_commit();
  }
};

// One thread's share of widening a staged one-byte tile into the swizzled f16 layout: pieces of
// 16 dims (16 bytes in, two 16-byte chunks out), the same offsets every tile.
// V_ONLY (FP8 scores, K read as E4M3): only V, raw at the stage's start, widened to the start of `out`.
template <int D, KvType KV, int THREADS, bool V_ONLY = false>
struct WidenPlan {
  using S = Sm90Tile<D, KV>;
  static constexpr int kPieces = D / 16;                          // of a raw row
  static constexpr int kMats = V_ONLY ? 1 : 2;
  static constexpr int kPerThread = kMats * kTile * kPieces / THREADS;  // K's and V's (V's)
  static_assert((kMats * kTile * kPieces) % THREADS == 0, "whole pieces per thread");
  uint32_t raw[kPerThread];   // byte offset in the raw stage
  uint32_t wide[kPerThread];  // byte offset of the first chunk; the second is at wide ^ 16 (chunk 2q + 1)
  int scale[kPerThread];      // INT8: index of the row's scale after V (K's kTile, then V's)

  __device__ __forceinline__ WidenPlan(int tid) {
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int c = tid + k * THREADS;
      const int kv = V_ONLY ? 0 : c / (kTile * kPieces);
      int r = (c / kPieces) % kTile, q = c % kPieces;
      if constexpr (kPieces == 8) {
        // D = 128: eight threads (a shared-memory wavefront of 16-byte accesses) take pieces 0-3 of
        // row r and 4-7 of row r + 1 (or the reverse), so they read 128 distinct bytes and write
        // into both halves at chunks 2q ^ r, which differ in parity between the rows: no bank
        // conflicts. One row's eight pieces would write halves 8 KB apart at the same chunks.
        const int sub = (c >> 2) & 1, swap = (c >> 3) & 1;
        r = 2 * ((c >> 4) % (kTile / 2)) + sub;
        q = (c & 3) + 4 * (sub ^ swap);
      }
      raw[k] = static_cast<uint32_t>(kv * S::kRawTileBytes + r * D + q * 16);
      wide[k] = static_cast<uint32_t>(kv * S::kMatBytes + sw128_offset(r, 2 * q));
      scale[k] = kv * kTile + r;
    }
  }

  __device__ __forceinline__ void run(const unsigned char* stage, unsigned char* out) const {
    const float* scales = reinterpret_cast<const float*>(stage + 2 * S::kRawTileBytes);
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const uint4 x = *reinterpret_cast<const uint4*>(stage + raw[k]);
      uint32_t h[8];
      widen_piece<KV>(x, KV == KvType::kInt8 ? scales[scale[k]] : 1.0f, h);
      *reinterpret_cast<uint4*>(out + wide[k]) = make_uint4(h[0], h[1], h[2], h[3]);
      *reinterpret_cast<uint4*>(out + (wide[k] ^ 16u)) = make_uint4(h[4], h[5], h[6], h[7]);
    }
  }
};

// S = Q K^T of the tile at shared address `tile`: k-step kc reads dims 16 kc .. 16 kc + 15, 32
// bytes into its half's atom rows. One wgmma group.
template <int D, bool F16>
__device__ __forceinline__ void issue_scores(float (&s)[kTile / 8][4], const uint32_t (&qf)[D / 16][4], uint32_t tile) {
#pragma unroll
  for (int kc = 0; kc < D / 16; ++kc)
    wgmma_m64k16<kTile, F16, 0>(s, qf[kc], sw128_desc(tile + (kc / 4) * kHalfBytes + (kc % 4) * 32, 16, 8 * kAtomRow), kc > 0);
  wgmma_commit();
}

// The same from an E4M3 K tile (64 positions x D bytes, 128-byte swizzle atoms: D = 128, one atom row
// a position) and q as E4M3 A fragments (turn_query_rows_e4m3): k-step kc reads dims 32 kc ..
// 32 kc + 31, 32 bytes into the atom rows. The scores come out in units of q's row scale.
template <int D>
__device__ __forceinline__ void issue_scores_e4m3(float (&s)[kTile / 8][4], const uint32_t (&qf)[D / 32][4], uint32_t tile) {
  static_assert(D == 128, "an E4M3 K row is one 128-byte atom row");
#pragma unroll
  for (int kc = 0; kc < D / 32; ++kc) wgmma_m64n64k32_e4m3(s, qf[kc], sw128_desc(tile + kc * 32, 16, 8 * kAtomRow), kc > 0);
  wgmma_commit();
}

// O += P V of the tile at `tile` (O has taken its corr): k-step c reads positions 16 c .. 16 c + 15
// (two 8-row atom groups, 1024 bytes apart) of V, V_AT bytes into the tile (past K: a matrix, or an
// E4M3 K's kTile x D bytes); the second 64 dims are a half (kHalfBytes) on. One wgmma group. Every warpgroup issues it for every tile its block walks: for a
// tile past its last row P is zeros and corr 1, so O keeps its bits (O * 1 + 0 = O), and no wgmma
// sits in a branch ptxas cannot prove uniform (it would serialize them all).
template <int D, KvType KV, int V_AT = Sm90Tile<D, KV>::kMatBytes>
__device__ __forceinline__ void issue_values(float (&acc)[D / 8][4], const uint32_t (&pf)[kTile / 16][4], uint32_t tile) {
  constexpr bool F16 = Sm90Tile<D, KV>::kBytes1;
  const uint32_t vb = tile + V_AT;
#pragma unroll
  for (int c = 0; c < kTile / 16; ++c)
    wgmma_m64k16<D, F16, 1>(acc, pf[c], sw128_desc(vb + c * 16 * kAtomRow, kHalfBytes, 8 * kAtomRow), true);
  wgmma_commit();
}

// The causal mask on tile i's raw scores, only where the tile reaches past the warp's first position.
__device__ __forceinline__ void mask_tile(float (&s)[kTile / 8][4], int i, int first_pos, const int (&row_pos)[2], int lane) {
  if (i * kTile + kTile - 1 > first_pos) {
#pragma unroll
    for (int j = 0; j < kTile / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int q = j * 8 + (lane & 3) * 2 + (e & 1);
        s[j][e] = i * kTile + q <= row_pos[e >> 1] ? s[j][e] : -INFINITY;
      }
  }
}

// Tile i's scores into probabilities: the causal mask (mask_tile), then the online softmax, which sets corr.
__device__ __forceinline__ void mask_and_softmax(float (&s)[kTile / 8][4], int i, int first_pos, const int (&row_pos)[2], int lane,
                                                 float (&m)[2], float (&l)[2], float scale_log2, float (&corr)[2]) {
  mask_tile(s, i, first_pos, row_pos, lane);
  online_softmax_tile(s, m, l, scale_log2, corr);
}

// O takes corr once the tile before's P V has run. The warp skips the D / 2 multiplies a thread
// when every row of its 16 has corr exactly 1 (the same bits: x * 1 = x), as online_softmax_tiles
// gives a row whose maximum stays (online_softmax_tile's rarely is).
template <int D>
__device__ __forceinline__ void rescale_output(float (&acc)[D / 8][4], const float (&corr)[2]) {
  if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f)) {
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[dn][e] *= corr[e >> 1];
  }
}

// Then P becomes the A fragments of the next P V, 16 positions (score tiles 2c, 2c + 1) a k-step;
// zeros for a tile past the warpgroup's last row (live false).
template <int D, bool F16>
__device__ __forceinline__ void rescale_and_pack(float (&acc)[D / 8][4], uint32_t (&pf)[kTile / 16][4], const float (&s)[kTile / 8][4],
                                                 const float (&corr)[2], bool live) {
  rescale_output<D>(acc, corr);
#pragma unroll
  for (int c = 0; c < kTile / 16; ++c) {
    pf[c][0] = live ? pack16<F16>(s[2 * c][0], s[2 * c][1]) : 0u;
    pf[c][1] = live ? pack16<F16>(s[2 * c][2], s[2 * c][3]) : 0u;
    pf[c][2] = live ? pack16<F16>(s[2 * c + 1][0], s[2 * c + 1][1]) : 0u;
    pf[c][3] = live ? pack16<F16>(s[2 * c + 1][2], s[2 * c + 1][3]) : 0u;
  }
}

// After the tile loop: the last tile's P V (issue_last issues its wgmma group, only where the item
// had tiles), then the warp's rows of O into a.out (store_prefill_rows).
template <int D, KvType KV, typename IssueLast>
__device__ __forceinline__ void finish_rows_with(float (&acc)[D / 8][4], float (&l)[2], int tiles_total, IssueLast&& issue_last,
                                                 const AttentionArgs& a, int first, int count, int group, int kvh, int lane) {
  if (tiles_total > 0) {
    wgmma_fence();
    issue_last();
  }
  wgmma_wait<0>();  // the last tile's P V
  wgmma_fence_operands(acc);
  if (count == 0) return;
  store_prefill_rows<D, KV>(a, acc, l, first, count, group, kvh, lane);
}

// The same with the last tile at shared address `last` (none without tiles).
template <int D, KvType KV, int V_AT = Sm90Tile<D, KV>::kMatBytes>
__device__ __forceinline__ void finish_rows(float (&acc)[D / 8][4], const uint32_t (&pf)[kTile / 16][4], float (&l)[2], int tiles_total,
                                            uint32_t last, const AttentionArgs& a, int first, int count, int group, int kvh, int lane) {
  finish_rows_with<D, KV>(acc, l, tiles_total, [&] { issue_values<D, KV, V_AT>(acc, pf, last); }, a, first, count, group, kvh, lane);
}

// launch(D, KV, scale_log2) for a's head size (64 or 128, as std::integral_constant) and cache type;
// nothing for a step without prompt rows. `what` names the kernel in the error for another size.
template <typename Launch>
void launch_by_head_dim_and_cache(const AttentionArgs& a, const char* what, Launch&& launch) {
  if (a.num_tiles == 0) return;
  const float scale_log2 = attention_score_scale_log2(a);
  auto by_cache = [&](auto d) {
    if (a.kv.type == KvType::kBf16) launch(d, std::integral_constant<KvType, KvType::kBf16>{}, scale_log2);
    else if (a.kv.type == KvType::kE4M3) launch(d, std::integral_constant<KvType, KvType::kE4M3>{}, scale_log2);
    else launch(d, std::integral_constant<KvType, KvType::kInt8>{}, scale_log2);
  };
  if (a.head_dim == 64) by_cache(std::integral_constant<int, 64>{});
  else if (a.head_dim == 128) by_cache(std::integral_constant<int, 128>{});
  else fail(what, ": head_dim ", a.head_dim, " is not supported (64 or 128)");
}

}  // namespace sm90
}  // namespace tachyon
