// Decode attention with the positions in the mma's M dimension and the query
// heads in N (the transpose of attention.cu's layout): S^T = K · q^T and
// O^T = V^T · P^T. A decode token has at most 8 query heads per KV head, so
// attention.cu's warp fills 4 of its 16 mma rows for Llama-3 and holds 64
// accumulators a lane; here the 8 heads of N hold 4 and a lane keeps 32, the
// mma count halves, and more warps fit an SM (the kernel was latency-bound:
// H200, 512 sequences, E4M3 cache, 123 us a layer for 200 MB, 1.6 TB/s).
// P goes from the scores' accumulator layout to the B operand of P·V by an
// in-register transpose (movmatrix).
//
// Same split structure as attention.cu (a fresh online-softmax state per 64
// positions, folded in position order), but its own rounding: it serves the
// generated tokens of a step (CudaModel::make_tiles), in batch-invariant mode
// every step's, whatever the step holds.
#include <algorithm>

#include "cuda/attention.h"
#include "cuda/attention_parts.cuh"
#include "cuda/cuda_check.h"
#include "cuda/dynamic_shared.h"
#include "cuda/mma.cuh"
#include "cuda/pdl.cuh"

namespace tachyon {

namespace {

constexpr int kTile = kAttnTile;                 // positions per K/V tile (the mma's M)
constexpr int kSplitTiles = kAttnSplit / kTile;  // tiles per split
constexpr int kHeads = 8;                        // query heads per KV head the mma's N holds
constexpr float kLazySlack = 8.0f;               // log2 units a score may pass the running maximum unrescaled

// Rings whose rows are whole 128-byte lines (head sizes whose cached row is a multiple of 128
// bytes: Llama-3-8B's 128 one-byte dims) keep them unpadded, with each 16-byte chunk c of row r at
// chunk c ^ (r % 8) of its line, as the prefill kernels' tiles do: ldmatrix's eight rows of a
// matrix still fall in eight different bank groups. Against padded rows (144 bytes apart), ncu
// counted each warp's 512-byte K or V copy as 24 L2 sectors where 16 hold it, and a ring takes
// 12 KB instead of 13.5, so 16 one-warp blocks fit an SM instead of 15: 2048/2048 went from 11,307
// to 12,023 output tok/s on one H200 (bench/RESULTS.md, thirteenth session). Other rows stay
// padded; CUDAFLAGS=-DTACHYON_DECODE_SWIZZLE=0 builds every ring padded, for A/B runs.
#ifndef TACHYON_DECODE_SWIZZLE
#define TACHYON_DECODE_SWIZZLE 1
#endif

template <int D, KvType KV>
struct DecodeSmem {
  static constexpr int kDataBytes = D * (KV == KvType::kBf16 ? 2 : 1);  // of a cached row
  static constexpr bool kSwizzled = TACHYON_DECODE_SWIZZLE && kDataBytes % 128 == 0;
  static constexpr int kRowBytes = kSwizzled ? kDataBytes : kDataBytes + 16;  // padded: rows 16 bytes apart in banks
  static constexpr int kTileBytes = kTile * kRowBytes;
  static constexpr int kStageBytes = 2 * kTileBytes + (KV == KvType::kInt8 ? 2 * kTile * 4 : 0);  // K, V (INT8: their scales)
  static constexpr int kStages = KV == KvType::kBf16 ? 2 : 3;  // tiles in flight
  static constexpr int kRingBytes = kStages * kStageBytes;  // a warp's ring
  // A split's state for the block's fold: [MT][4][32] accumulators, then [4][32] m and l. It passes
  // through the ring stage just read where it fits there (padded rows); else (swizzled rows: the
  // accumulators alone fill a one-byte stage) the accumulators do, and m and l go to a place of
  // their own after the rings, one for each warp but warp 0 of a multi-warp block.
  static constexpr int kAccBytes = D / 16 * 4 * 32 * 4;
  static constexpr int kMlBytes = 4 * 32 * 4;
  static constexpr bool kStateInStage = kAccBytes + kMlBytes <= kStageBytes;
  static_assert(kAccBytes <= kStageBytes, "a split's accumulators pass through the ring stage just read");
  static constexpr int kOwnMlBytes = kStateInStage ? 0 : kMlBytes;
  // 16-byte chunk c of a row whose index is r modulo 8 (for ldmatrix's rows, lane % 8), as laid out.
  __device__ static __forceinline__ int chunk(int c, int r) { return kSwizzled ? (c & ~7) | ((c ^ r) & 7) : c; }
};

// Warps an SM should hold at once (__launch_bounds__), which caps a lane's registers: 16 (128
// registers) up to D = 128; at D = 256 a lane's q, accumulators and folded splits take 160, and the
// rings' shared memory holds 6 (bf16) or 8 (one-byte) warps an SM anyway, so 8 (255 registers).
constexpr int decode_warps_per_sm(int D) { return D > 128 ? 8 : 16; }

// Decode blocks of WARPS warps: warp w takes splits w, w + WARPS, ... and the block folds them in
// position order, as one warp would. More warps a (token, KV head) when the step has too few of
// those to fill the SMs (long contexts, fewer sequences: latency-bound, not bandwidth-bound), or
// past one wave at long contexts, to shorten the last wave (decode_warps()). At
// most what one SM holds, by registers and by the warps' rings: on an H100 / H200 (227 KB a block)
// 16 at D <= 128 with a one-byte cache (a batch-1 step's 8 blocks then walk 16 splits, 1,024
// positions, a round) and with bf16 up to D = 96, 8 with bf16 at D = 112 and 128, 8 (one-byte) or 4
// (bf16) at D = 256; fewer where the device gives a block less shared memory (sm_89: 99 KB), as
// decode_warps() checks at launch.
constexpr int kMaxDecodeWarps = 16;
constexpr int kHopperSmemPerBlock = 227 * 1024;
constexpr int kStateStageBytes = kMaxDecodeWarps * 4;  // state_stage[], static shared memory
// A block's shared memory by its warps: their rings, the places of warps 1.. for their split
// states' m and l where a ring stage cannot hold them beside the accumulators, and state_stage[].
struct DecodeFootprint {
  int ring, own_ml;
  constexpr int dynamic_bytes(int warps) const { return warps * ring + (warps - 1) * own_ml; }
  constexpr int block_bytes(int warps) const { return dynamic_bytes(warps) + kStateStageBytes; }
};
template <int D, KvType KV>
constexpr DecodeFootprint decode_footprint() {
  return DecodeFootprint{DecodeSmem<D, KV>::kRingBytes, DecodeSmem<D, KV>::kOwnMlBytes};
}
template <int D, KvType KV>
constexpr int max_decode_warps() {
  int w = 1;
  while (w * 2 <= kMaxDecodeWarps && w * 2 <= decode_warps_per_sm(D) && decode_footprint<D, KV>().block_bytes(w * 2) <= kHopperSmemPerBlock)
    w *= 2;
  return w;
}

// The device's shared memory: what a block may opt into, and what an SM holds (looked up once; the
// backend drives one device).
struct SharedMemoryLimits {
  int per_block, per_sm;
};
const SharedMemoryLimits& shared_memory_limits() {
  static const SharedMemoryLimits limits = [] {
    int dev = 0;
    SharedMemoryLimits l{};
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&l.per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&l.per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
    return l;
  }();
  return limits;
}

// grid: decode tokens x KV heads in one dimension (no 65,535 limit on tokens), KV heads varying
// fastest, so the blocks go out a token at a time: a graph replay's padding rows (position 0, one
// tile) come last, after every real token's blocks, rather than between each KV head's. WARPS warps.
template <int D, KvType KV, int WARPS>
__global__ void __launch_bounds__(32 * WARPS, decode_warps_per_sm(D) / WARPS) decode_attention_kernel(AttentionArgs a, float scale_log2) {
  using S = DecodeSmem<D, KV>;
  constexpr bool F8 = KV != KvType::kBf16;  // one-byte elements (E4M3 or INT8), f16 arithmetic
  constexpr bool I8 = KV == KvType::kInt8;  // scales per position
  constexpr int KC = D / 16;  // 16-dim chunks of K · q^T
  constexpr int MT = D / 16;  // 16-row output tiles of O^T (F8: tile 2c + parity holds that parity's dims of chunks 2c, 2c + 1)
  constexpr int STAGES = S::kStages;
  extern __shared__ __align__(16) unsigned char smem[];
  // Until pdl_wait() below, only what the kernels before this one in the step do not write: the
  // step's inputs (copied from the host before its first kernel) and the cache's positions before
  // the token's own, written by earlier steps. q and the token's own K/V (the last tile) come from
  // the RoPE + KV write kernel just before.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  unsigned char* ring = smem + warp * S::kRingBytes;
  const int kvh = blockIdx.x % a.kv_heads;
  const int t = a.tiles[blockIdx.x / a.kv_heads].x;
  const int group = a.heads / a.kv_heads;
  const int pos = a.positions[t];
  const int32_t* table = a.block_tables + static_cast<size_t>(a.token_seq[t]) * a.table_stride;
  const int tiles_total = pos / kTile + 1;
  uint32_t qb[KC][2];  // q^T, loaded after pdl_wait() (below)

  // Every tile but a context's last lies whole in one cache block (at the default block size): its
  // copies are a base address and constants apart.
  auto load_tile = [&](int i, int stage, size_t first) {
    unsigned char* ks = ring + stage * S::kStageBytes;
    if (i * kTile + kTile - 1 <= pos && kv_tile_in_one_block<kTile>(a, i, pos))
      stage_whole_kv_tile<D, KV, kTile, S::kSwizzled>(ks, S::kRowBytes, S::kTileBytes, a, lane, first);
    else
      stage_kv_tile_from<D, KV, kTile, S::kSwizzled>(ks, S::kRowBytes, S::kTileBytes, a, table, kvh, i, pos, lane, 32, first);
  };

  // O^T accumulators: rows (dims) lane / 4 (c0, c1) and + 8 (c2, c3), heads 2 (lane % 4) + {0, 1}.
  float acc[MT][4], m[2], l[2];
  float folded[MT][4], fm[2] = {-INFINITY, -INFINITY}, fl[2] = {0.0f, 0.0f};  // the splits so far
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int c = 0; c < 4; ++c) folded[mt][c] = 0.0f;
  auto reset = [&] {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      m[j] = -INFINITY;
      l[j] = 0.0f;
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[mt][c] = 0.0f;
  };
  auto fold = [&] {
    float wa[2], wb[2];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      fold_weights(fm[j], m[j], wa[j], wb[j], fm[j]);
      fl[j] = fold_value(fl[j], wa[j], l[j], wb[j]);
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int c = 0; c < 4; ++c) folded[mt][c] = fold_value(folded[mt][c], wa[c & 1], acc[mt][c], wb[c & 1]);
  };

  // One tile of 16 positions: scores, online softmax (per head: over the 8 lanes of one lane % 4
  // and both row halves), P · V.
  auto attend = [&](int i, const unsigned char* ks, const unsigned char* vs) {
    const float* k_scales = reinterpret_cast<const float*>(vs + S::kTileBytes);  // I8: the tile's 16 positions
    const float* v_scales = k_scales + kTile;
    // (position lane / 4 [+ 8], head 2 (lane % 4) + {0, 1}); even and odd k-chunks apart, so two mma
    // chains run side by side.
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    // Every ldmatrix row below is lane % 8 modulo 8 (S::chunk's r).
    const unsigned char* krow = ks + ((lane & 7) + ((lane >> 3) & 1) * 8) * S::kRowBytes;
    if constexpr (F8) {
#pragma unroll
      for (int kc = 0; kc < KC; kc += 2) {
        // Matrices: positions 0-7 / 8-15 ((lane / 8) % 2) x the 16 dims of chunk kc / kc + 1 (lane / 16).
        uint32_t r[4];
        if (kc + 1 < KC) ldmatrix_x4(r, krow + S::chunk(kc + (lane >> 4), lane) * 16);
        else ldmatrix_x2(r, krow + S::chunk(kc + (lane >> 4), lane) * 16);
#pragma unroll
        for (int k = 0; k < 2; ++k) {
          if (kc + k >= KC) break;
          const uint32_t af[4] = {bytes_to_f16x2<KV>(r[2 * k], false), bytes_to_f16x2<KV>(r[2 * k + 1], false),
                                  bytes_to_f16x2<KV>(r[2 * k], true), bytes_to_f16x2<KV>(r[2 * k + 1], true)};
          mma_f16_16816(k == 0 ? s : s2, af, qb[kc + k][0], qb[kc + k][1]);
        }
      }
    } else {
#pragma unroll
      for (int kc = 0; kc < KC; ++kc) {
        // Matrices: positions 0-7 / 8-15 ((lane / 8) % 2) x dims kc * 16 + 0-7 / 8-15 (lane / 16).
        uint32_t af[4];
        ldmatrix_x4(af, krow + (S::kSwizzled ? S::chunk(2 * kc + (lane >> 4), lane) * 16 : (kc * 16 + (lane >> 4) * 8) * 2));
        mma_bf16_16816(kc % 2 == 0 ? s : s2, af, qb[kc][0], qb[kc][1]);
      }
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) s[e] += s2[e];
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int q = lane / 4 + (e >> 1) * 8, p = i * kTile + q;
      if constexpr (I8) s[e] = __fmul_rn(s[e], k_scales[q]);
      s[e] = p <= pos ? __fmul_rn(s[e], scale_log2) : -INFINITY;
      tile_max[e & 1] = fmaxf(tile_max[e & 1], s[e]);
    }
    // Lazy rescaling: the running maxima move only when some score passes them by more than
    // kLazySlack (log2 units), decided for the warp from each lane's own scores, so most tiles
    // skip the cross-lane maxima, the rescale factors and the accumulators' rescale. Below that
    // the exponentials are taken against the old maxima: at most 2^kLazySlack, which f16 / bf16 P
    // and float32 sums hold at full relative precision.
    const bool grow = __any_sync(0xffffffffu, tile_max[0] > m[0] + kLazySlack || tile_max[1] > m[1] + kLazySlack);
    if (grow) {
      float corr[2];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int x = 4; x < 32; x <<= 1) tile_max[j] = fmaxf(tile_max[j], __shfl_xor_sync(0xffffffffu, tile_max[j], x));
        const float m_new = fmaxf(m[j], tile_max[j]);  // finite: position i * 16 <= pos
        corr[j] = m[j] == -INFINITY ? 0.0f : exp2f(__fsub_rn(m[j], m_new));
        m[j] = m_new;
        l[j] = __fmul_rn(l[j], corr[j]);
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[mt][c] = __fmul_rn(acc[mt][c], corr[c & 1]);
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) s[e] = exp2f(__fsub_rn(s[e], m[e & 1]));
    // This lane's part of each head's sum: the lanes' parts meet once, before the output.
#pragma unroll
    for (int j = 0; j < 2; ++j) l[j] = __fadd_rn(l[j], __fadd_rn(s[j], s[j + 2]));
    // P^T as the B operand (k = positions, n = heads): each 8x8 half of the scores transposed.
    const uint32_t pb0 = movmatrix_trans(pack16<F8>(s[0], s[1]));
    const uint32_t pb1 = movmatrix_trans(pack16<F8>(s[2], s[3]));
    // V^T as the A operand (rows = dims, k = positions), V's rows transposed on the way.
    const unsigned char* vrow = vs + ((lane & 7) + (lane >> 4) * 8) * S::kRowBytes;
    uint32_t vsc[2] = {0u, 0u};
    if constexpr (I8) {
      vsc[0] = pack_f16(v_scales[(lane & 3) * 2], v_scales[(lane & 3) * 2 + 1]);
      vsc[1] = pack_f16(v_scales[8 + (lane & 3) * 2], v_scales[8 + (lane & 3) * 2 + 1]);
    }
    if constexpr (F8) {
#pragma unroll
      for (int cp = 0; cp < D / 32; ++cp) {
        // Matrices: positions 0-7 / 8-15 (lane / 16) x the 16 dims of chunk 2cp / 2cp + 1 ((lane / 8) % 2).
        uint32_t r[4];
        ldmatrix_x4_trans(r, vrow + S::chunk(2 * cp + ((lane >> 3) & 1), lane) * 16);
#pragma unroll
        for (int k = 0; k < 4; ++k) r[k] = split_dim_parity(r[k]);
        // a0, a1 hold positions 2 (lane % 4) + {0, 1}; a2, a3 the same + 8 (I8: times their scales).
        auto vfrag = [&](uint32_t x, bool hi, int k) { return I8 ? mul_f16x2(bytes_to_f16x2<KV>(x, hi), vsc[k >> 1]) : bytes_to_f16x2<KV>(x, hi); };
        const uint32_t even[4] = {vfrag(r[0], false, 0), vfrag(r[1], false, 1), vfrag(r[2], false, 2), vfrag(r[3], false, 3)};
        const uint32_t odd[4] = {vfrag(r[0], true, 0), vfrag(r[1], true, 1), vfrag(r[2], true, 2), vfrag(r[3], true, 3)};
        mma_f16_16816(acc[2 * cp], even, pb0, pb1);
        mma_f16_16816(acc[2 * cp + 1], odd, pb0, pb1);
      }
    } else {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        // Matrices: positions 0-7 / 8-15 (lane / 16) x dims mt * 16 + 0-7 / 8-15 ((lane / 8) % 2).
        uint32_t av[4];
        ldmatrix_x4_trans(av, vrow + (S::kSwizzled ? S::chunk(2 * mt + ((lane >> 3) & 1), lane) * 16 : (mt * 16 + ((lane >> 3) & 1) * 8) * 2));
        mma_bf16_16816(acc[mt], av, pb0, pb1);
      }
    }
  };

  reset();
  // The context's 64-position splits, each a fresh softmax state, are folded left to right into
  // `folded` whatever WARPS is, so a row's result does not depend on the step it runs in: warp w
  // takes splits w, w + WARPS, ... (round r: split r * WARPS + w), and at the end of each round
  // warp 0 folds its own split, then the other warps' in warp order (their states pass through the
  // ring stage each just finished reading, which no copy targets until its next tile; m and l
  // through places of their own where the stage is too small: S::kStateInStage).
  const int n_splits = (tiles_total + kSplitTiles - 1) / kSplitTiles;
  const int own_splits = n_splits > warp ? (n_splits - warp + WARPS - 1) / WARPS : 0;
  const bool owns_last = (n_splits - 1) % WARPS == warp;
  const int local_total = own_splits * kSplitTiles - (owns_last ? n_splits * kSplitTiles - tiles_total : 0);
  const int rounds = (n_splits + WARPS - 1) / WARPS;
  auto tile_of = [&](int j) { return ((j / kSplitTiles) * WARPS + warp) * kSplitTiles + j % kSplitTiles; };
  __shared__ int state_stage[kMaxDecodeWarps];  // where warp w left this round's state (kStateStageBytes)
  // A split's state in a stage: [MT][4][32] accumulators, then [2][32] m and [2][32] l (or those
  // in warp w's own place).
  auto state_index = [&](int row) { return row * 32 + lane; };
  // Row of m[j] (l[j]: j + 2) in warp w's state: after the accumulators, or in its own place.
  auto ml_at = [&](int w, float* state, int j) -> float& {
    if constexpr (S::kStateInStage) return state[state_index(MT * 4 + j)];
    else return reinterpret_cast<float*>(smem + WARPS * S::kRingBytes + (w - 1) * S::kMlBytes)[state_index(j)];
  };
  auto end_round = [&](int r, unsigned char* stage) {
    if constexpr (WARPS > 1) {
      if (warp > 0 && stage) {
        float* state = reinterpret_cast<float*>(stage);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int c = 0; c < 4; ++c) state[state_index(mt * 4 + c)] = acc[mt][c];
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          ml_at(warp, state, j) = m[j];
          ml_at(warp, state, 2 + j) = l[j];
        }
        if (lane == 0) state_stage[warp] = static_cast<int>(stage - smem);
      }
      if (warp == 0) fold();
      __syncthreads();
      if (warp == 0)
        for (int w = 1; w < WARPS && r * WARPS + w < n_splits; ++w) {
          float* other = reinterpret_cast<float*>(smem + state_stage[w]);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[mt][c] = other[state_index(mt * 4 + c)];
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            m[j] = ml_at(w, other, j);
            l[j] = ml_at(w, other, 2 + j);
          }
          fold();
        }
      __syncthreads();  // the states are read before their stages take tiles again
    } else {
      (void)r;
      (void)stage;
      fold();
    }
    reset();
  };
  // The table entry of local tile j's block (where the tile lies in one block), and the slot of its
  // first position from it. The loop loads a tile's entry an iteration before its copies go out, so
  // the copies never wait on that load (it stalled the warp on every tile).
  auto entry_of = [&](int j) -> int32_t {
    return j < local_total && kv_tile_in_one_block<kTile>(a, tile_of(j), pos) ? table[kv_block_index(a, tile_of(j) * kTile)] : 0;
  };
  auto first_slot = [&](int j, int32_t entry) -> size_t {
    return kv_tile_in_one_block<kTile>(a, tile_of(j), pos) ? kv_slot_of_entry(a, entry, kvh, tile_of(j) * kTile) : 0;
  };
  // A ring of STAGES tiles, one commit group per tile (empty past the end) so the wait count is fixed.
  // The first tiles' entries are all loaded before the first copy (a load cannot move above a copy's asm).
  int32_t entries[STAGES];
#pragma unroll
  for (int k = 0; k < STAGES; ++k) entries[k] = entry_of(k);
  // The first tiles' copies: those wholly before the token's position go out before pdl_wait(), so
  // their latency overlaps the kernels before this one (at batch 1, one DRAM round trip fewer on
  // each layer's critical path); from the first that is not, after it.
  bool waited = false;
#pragma unroll
  for (int k = 0; k < STAGES - 1; ++k) {
    if (!waited && !(k < local_total && tile_of(k) < tiles_total - 1)) {
      pdl_wait();
      waited = true;
    }
    if (k < local_total) load_tile(tile_of(k), k, first_slot(k, entries[k]));
    else cp_async_commit();
  }
  if (!waited) pdl_wait();
  int32_t next_entry = entries[STAGES - 1];

  // q^T as the B operand (k = 16 dims, n = heads): head lane / 4, dims 2 (lane % 4) + {0, 1} and
  // + 8; F8: dims 4 (lane % 4) + {0, 1} and + {2, 3}, the order K's bytes come out of ldmatrix.
  const size_t qkv_width = static_cast<size_t>(a.heads + 2 * a.kv_heads) * D;
#pragma unroll
  for (int kc = 0; kc < KC; ++kc)
#pragma unroll
    for (int f = 0; f < 2; ++f) {
      const int col = F8 ? kc * 16 + (lane % 4) * 4 + f * 2 : kc * 16 + f * 8 + (lane % 4) * 2;
      float2 v = make_float2(0.0f, 0.0f);
      if (lane / 4 < group)
        v = *reinterpret_cast<const float2*>(a.qkv + static_cast<size_t>(t) * qkv_width +
                                             static_cast<size_t>(kvh * group + lane / 4) * D + col);
      qb[kc][f] = pack16<F8>(v.x, v.y);
    }

  // The ring stages tile j and tile j + STAGES - 1 take, counted round rather than as remainders.
  int read_stage = 0, load_stage = STAGES - 1;
  auto advance = [](int& stage) { stage = stage + 1 == STAGES ? 0 : stage + 1; };
  for (int j = 0; j < local_total; ++j) {
    if (j + STAGES - 1 < local_total) load_tile(tile_of(j + STAGES - 1), load_stage, first_slot(j + STAGES - 1, next_entry));
    else cp_async_commit();
    advance(load_stage);
    next_entry = entry_of(j + STAGES);
    cp_async_wait<STAGES - 1>();
    __syncwarp();
    unsigned char* ks = ring + read_stage * S::kStageBytes;
    advance(read_stage);
    attend(tile_of(j), ks, ks + S::kTileBytes);
    __syncwarp();  // the stage is read before the next load overwrites it (or this warp's state does)
    if ((j + 1) % kSplitTiles == 0 || j + 1 == local_total) end_round(j / kSplitTiles, ks);
  }
  // Warps with a split fewer than warp 0 still meet its last round's barriers.
  for (int r = own_splits; r < rounds; ++r) end_round(r, nullptr);
  if (warp > 0) return;

  // Each head's sum over the 8 lanes holding its positions.
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int x = 4; x < 32; x <<= 1) fl[j] = __fadd_rn(fl[j], __shfl_xor_sync(0xffffffffu, fl[j], x));
  // Row (dim) and column (head) of accumulator c of tile mt.
  const float v_scale = KV == KvType::kE4M3 ? a.kv.v_scale : 1.0f;
  __nv_bfloat16* out = a.out + static_cast<size_t>(t) * a.heads * D + static_cast<size_t>(kvh * group) * D;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int head = (lane % 4) * 2 + (c & 1);
      if (head >= group) continue;
      const int dim = F8 ? (mt & ~1) * 16 + (c >> 1) * 16 + (lane / 4) * 2 + (mt & 1) : mt * 16 + (c >> 1) * 8 + lane / 4;
      out[head * D + dim] = __float2bfloat16(__fdiv_rn(folded[mt][c], fl[c & 1]) * v_scale);
    }
}

template <int D, KvType KV, int WARPS>
void launch(const AttentionArgs& a, float scale_log2, cudaStream_t s, bool programmatic) {
  constexpr size_t shared = decode_footprint<D, KV>().dynamic_bytes(WARPS);
  allow_dynamic_shared<decode_attention_kernel<D, KV, WARPS>>(shared);
  launch_kernel("decode_attention_kernel", programmatic, nullptr, decode_attention_kernel<D, KV, WARPS>, dim3(a.num_tiles * a.kv_heads),
                32 * WARPS, shared, s, a, scale_log2);
}

// Warps a block. Within one wave (whole blocks: by registers, decode_warps_per_sm(), or fewer where
// the rings' shared memory runs out first, with the 1 KB the hardware reserves a block): as many as
// keep the step's blocks in one wave, so a step of few long sequences still fills the SMs.
// Past one wave, with long contexts: the blocks of a wave start and end together, so a last wave
// of few blocks walks whole contexts at a few warps' latency-bound rate while most SMs idle. The
// tail of w warps: 0 where the last wave is empty or holds at least 3/4 of a wave, else its unfilled
// share of 3/4 of a wave over w (a w-warp block walks 1/w of a context); the fewest warps (at most
// kTailWarps) within 0.02 of the least tail. (H200, E4M3, 3,000 positions, graph bucket 320, 286-320
// sequences: 1 warp 620-645 us, 4 warps 480-550.) Past one wave, short contexts keep one warp: its
// fixed costs (q, the ring's first fill, the fold) outweigh 2-4 splits of work (128/128: 2 warps
// -1.7%, 4 -3.1% end to end). The rule counts a graph's padding rows as blocks, and one long
// context makes the whole step long.
constexpr int kTailWarps = 4;  // 8 were slower than 4 past one wave at every size measured (the fold)
// Whether blocks of w warps can run: a kernel is built for them (at most max_warps) and this
// device gives a block their rings.
bool decode_warps_fit(int w, const DecodeFootprint& f, int max_warps) {
  return w <= max_warps && f.block_bytes(w) <= shared_memory_limits().per_block;
}
int decode_warps(const AttentionArgs& a, int sm_count, int sm_warps, const DecodeFootprint& f, int max_warps, bool long_context) {
  const SharedMemoryLimits& smem = shared_memory_limits();
  auto fits = [&](int w) { return decode_warps_fit(w, f, max_warps); };
  auto resident = [&](int w) {  // w-warp blocks all SMs hold at once
    return static_cast<long>(sm_count) * std::min(sm_warps / w, smem.per_sm / (f.block_bytes(w) + 1024));
  };
  const long blocks = static_cast<long>(a.num_tiles) * a.kv_heads;
  int w = 1;
  while (fits(w * 2) && blocks <= resident(w * 2)) w *= 2;
  if (blocks <= resident(1) || !long_context) return w;
  auto tail = [&](int c) {
    const long r = blocks % resident(c);
    return r == 0 ? 0.0 : std::max(0.0, 1.0 - static_cast<double>(r) / (0.75 * resident(c))) / c;
  };
  double least = tail(1);
  for (int c = 2; c <= kTailWarps && fits(c); c *= 2) least = std::min(least, tail(c));
  while (tail(w) > least + 0.02) w *= 2;  // the fewest within 0.02 of the least
  return w;
}

// A forced count (GpuOptions::decode_warps), halved until a block's rings fit this device.
int forced_decode_warps(int forced, const DecodeFootprint& f, int max_warps) {
  int w = std::min(forced, max_warps);
  while (w > 1 && !decode_warps_fit(w, f, max_warps)) w /= 2;
  return w;
}

template <int D, KvType KV>
void launch(const AttentionArgs& a, float scale_log2, int sm_count, cudaStream_t s, bool long_context, int forced, bool programmatic) {
  constexpr int kMax = max_decode_warps<D, KV>();
  constexpr DecodeFootprint kFootprint = decode_footprint<D, KV>();
  const int warps = forced > 0 ? forced_decode_warps(forced, kFootprint, kMax)
                               : decode_warps(a, sm_count, decode_warps_per_sm(D), kFootprint, kMax, long_context);
  switch (warps) {
    case 1: launch<D, KV, 1>(a, scale_log2, s, programmatic); break;
    case 2: launch<D, KV, 2>(a, scale_log2, s, programmatic); break;
    // decode_warps() stays within kMax; the fail()s say so should that change.
    case 4: if constexpr (kMax >= 4) launch<D, KV, 4>(a, scale_log2, s, programmatic); else fail("decode attention: no 4-warp kernel"); break;
    case 8: if constexpr (kMax >= 8) launch<D, KV, 8>(a, scale_log2, s, programmatic); else fail("decode attention: no 8-warp kernel"); break;
    case 16: if constexpr (kMax >= 16) launch<D, KV, 16>(a, scale_log2, s, programmatic); else fail("decode attention: no 16-warp kernel"); break;
    default: fail("decode attention: no kernel of that many warps");
  }
}

}  // namespace

bool decode_attention_supports(int heads, int kv_heads, int head_dim, KvType kv) {
  return kv_heads > 0 && heads % kv_heads == 0 && heads / kv_heads <= kHeads &&
         head_dim % (kv == KvType::kBf16 ? 16 : 32) == 0 && (head_dim <= 128 || head_dim == 256);
}

void launch_decode_attention(const AttentionArgs& a, int sm_count, cudaStream_t s, bool long_context, int warps, bool programmatic) {
  if (a.num_tiles == 0) return;
  if (!decode_attention_supports(a.heads, a.kv_heads, a.head_dim, a.kv.type))
    fail("decode attention: ", a.heads, " heads over ", a.kv_heads, " KV heads of ", a.head_dim, " dims is not supported");
  const float scale_log2 = attention_score_scale_log2(a);
  with_head_dim(a.head_dim, [&](auto d) {
    constexpr int D = decltype(d)::value;
    if (a.kv.type == KvType::kBf16) {
      launch<D, KvType::kBf16>(a, scale_log2, sm_count, s, long_context, warps, programmatic);
    } else if constexpr (D % 32 == 0) {
      if (a.kv.type == KvType::kE4M3) launch<D, KvType::kE4M3>(a, scale_log2, sm_count, s, long_context, warps, programmatic);
      else launch<D, KvType::kInt8>(a, scale_log2, sm_count, s, long_context, warps, programmatic);
    }
  });
}

}  // namespace tachyon
