#include "cuda/attention.h"
#include "cuda/attention_parts.cuh"
#include "cuda/cuda_check.h"
#include "cuda/dynamic_shared.h"
#include "cuda/mma.cuh"
#include "cuda/pdl.cuh"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace tachyon {

namespace {

constexpr int kTile = kAttnTile;                   // positions per K/V tile
constexpr int kSplitTiles = kAttnSplit / kTile;    // tiles per split
constexpr int kRows = kAttnMaxGroup;               // query rows per warp (one mma row block): a whole group fits
constexpr int kPrefillWarps = 4;
constexpr int kMaxPartialBlocks = kAttnPartialSlots;  // split-parallel decode: blocks with a partial state
constexpr int kFoldChunk = 16;                     // splits the folding block takes at a time

// KV: the cache's element type (kv_cache.h). One-byte caches (E4M3, INT8) are staged as they are
// and widened to f16 on the way into the tensor cores (both exactly; there is no E4M3 -> bf16
// conversion on sm_90); an INT8 stage also holds its 16 positions' K and V scales.
template <int D, KvType KV>
struct Smem {
  static constexpr int kRowBytes = D * (KV == KvType::kBf16 ? 2 : 1) + 16;  // a K/V row in shared memory: rows 16 bytes apart in banks
  static constexpr int kTileBytes = kTile * kRowBytes;
  static constexpr int kScaleBytes = KV == KvType::kInt8 ? 2 * kTile * 4 : 0;  // K then V scales
  static constexpr int kStageBytes = 2 * kTileBytes + kScaleBytes;  // K and V tiles
  // Per warp: each lane's folded accumulators, 4 per output tile, or 2 when only mma rows 0-7 hold
  // query rows (rows8: a decode token of at most 8 query heads per KV head).
  __host__ __device__ static constexpr int merged_floats(bool rows8) { return D / 8 * (rows8 ? 2 : 4) * 32; }
  // Split-parallel blocks reuse their stages for the fold's per-split m, l and weights.
  static constexpr size_t kFoldBytes = 4 * kFoldChunk * kRows * sizeof(float);
  __host__ __device__ static constexpr size_t bytes(int warps, bool split, bool rows8) {
    return split ? (stages(split, warps) * kStageBytes > kFoldBytes ? stages(split, warps) * kStageBytes : kFoldBytes)
                 : stages(split, warps) * kStageBytes + static_cast<size_t>(warps) * merged_floats(rows8) * 4;
  }
  // Tiles in flight: a split-parallel block loads its whole split at once. Prefill blocks keep
  // three (H200, 8,192 tokens of 2,048-token prompts: 1.84 -> 1.60 ms a layer against two);
  // single-warp decode blocks two, since more blocks per SM beat more bytes per block there
  // (four stages: 144 -> 203 us a layer at 512 sequences); E4M3 tiles are half the bytes, so
  // three fit in the shared memory two bf16 ones took. D = 256 prefill with a bf16 cache: two
  // (33 KB) beside the merged accumulators (64 KB), so two blocks fit an SM (three: 116 KB, one).
  __host__ __device__ static constexpr int stages(bool split, int warps) {
    if (split) return kSplitTiles;
    if (warps == 1 || D > 128) return KV == KvType::kBf16 ? 2 : 3;
    return 3;
  }
};

// Blocks an SM should hold at once (__launch_bounds__), which caps a thread's registers. At D = 256
// a lane holds q (64 registers) and its accumulators (128) throughout, so fewer blocks and up to
// 255 registers; the shared memory holds no more blocks than that there anyway.
constexpr int min_blocks(int D, int warps) { return warps == 1 ? (D > 128 ? 8 : 12) : (D > 128 ? 2 : 3); }

// grid: (tile, KV head, split when SPLIT). WARPS warps, each with up to 16 / group tokens of the tile.
// ROWS8: the tile's query rows all sit in mma rows 0-7 (one decode token, at most 8 query heads per
// KV head), so the folded accumulators keep only those rows (half the shared memory: more blocks per SM).
template <int D, int WARPS, bool SPLIT, KvType KV, bool ROWS8>
__global__ void __launch_bounds__(32 * WARPS, min_blocks(D, WARPS)) attention_kernel(AttentionArgs a, float scale_log2, int splits) {
  using S = Smem<D, KV>;
  constexpr bool F8 = KV != KvType::kBf16;  // one-byte elements, f16 arithmetic
  constexpr bool I8 = KV == KvType::kInt8;  // scales per position
  constexpr int KC = D / 16;  // k-chunks of the QK^T product
  constexpr int DN = D / 8;   // 8-wide output column tiles
  extern __shared__ __align__(16) unsigned char smem[];
  pdl_wait();
  unsigned char* stages = smem;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int kvh = blockIdx.y;
  const int2 tile = a.tiles[blockIdx.x];
  const int group = a.heads / a.kv_heads;
  const WarpQueries wq = warp_queries<kRows>(a, tile, group, warp);
  const int first = wq.first, count = wq.count, block_last = wq.block_last, warp_last = wq.warp_last;
  const int32_t* table = wq.table;
  const int tiles_total = block_last / kTile + 1;

  int row_pos[2];
  uint32_t qf[KC][4];
  load_query_rows<D, F8, F8>(a, first, count, group, kvh, lane, row_pos, qf);

  auto load_tile = [&](int i, int stage) {
    stage_kv_tile<D, KV>(stages + stage * S::kStageBytes, S::kRowBytes, S::kTileBytes, a, table, kvh, i, block_last,
                         threadIdx.x, 32 * WARPS);
  };

  float acc[DN][4];
  float m[2], l[2];
  auto reset = [&] {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      m[h] = -INFINITY;
      l[h] = 0.0f;
    }
#pragma unroll
    for (int dn = 0; dn < DN; ++dn)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[dn][c] = 0.0f;
  };
  // Folded splits (all but split-parallel mode): m and l in registers, accumulators in shared memory.
  float mm[2] = {-INFINITY, -INFINITY}, ll[2] = {0.0f, 0.0f};
  constexpr int STAGES = S::stages(SPLIT, WARPS);
  constexpr int CPL = ROWS8 ? 2 : 4;  // merged accumulators per output tile and lane
  float* merged = reinterpret_cast<float*>(smem + STAGES * S::kStageBytes) + warp * S::merged_floats(ROWS8);
  if (!SPLIT)
    for (int e = 0; e < DN * CPL; ++e) merged[e * 32 + lane] = 0.0f;
  // live: the split reached this warp's rows. One that did not left the state fresh (m = -inf, l = 0,
  // acc = 0): folding it with weights 1 and 0 keeps every value as it was.
  auto fold = [&](bool live) {
    float wa[2], wb[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      fold_weights(mm[h], m[h], wa[h], wb[h], mm[h]);
      if (!live) wa[h] = 1.0f;
      ll[h] = fold_value(ll[h], wa[h], l[h], wb[h]);
    }
#pragma unroll
    for (int dn = 0; dn < DN; ++dn)
#pragma unroll
      for (int c = 0; c < CPL; ++c) {
        float& x = merged[(dn * CPL + c) * 32 + lane];
        x = fold_value(x, wa[c >> 1], acc[dn][c], wb[c >> 1]);
      }
  };

  // One tile of 16 positions: scores, online softmax, P · V.
  auto attend = [&](int i, const unsigned char* ks, const unsigned char* vs) {
    const float* k_scales = reinterpret_cast<const float*>(vs + S::kTileBytes);  // I8: the tile's 16 positions
    const float* v_scales = k_scales + kTile;
    float s[2][4] = {};
    if constexpr (F8) {
      // A 16-byte row piece is 16 dims; read as 8 b16 columns, a lane gets dims 4 (lane % 4) + 0-3 of
      // position lane / 4: b0 from the first two, b1 from the last two (q's fragments match).
#pragma unroll
      for (int kc = 0; kc < KC; kc += 2) {
        // Matrices: positions 0-7 / 8-15 ((lane / 8) % 2) x dims of chunk kc / kc + 1 (lane / 16).
        uint32_t b[4];
        const unsigned char* row = ks + (((lane >> 3) & 1) * 8 + (lane & 7)) * S::kRowBytes + (kc + (lane >> 4)) * 16;
        if (kc + 1 < KC) ldmatrix_x4(b, row);
        else ldmatrix_x2(b, row);
#pragma unroll
        for (int k = 0; k < 2; ++k) {
          if (kc + k >= KC) break;
          mma_f16_16816(s[0], qf[kc + k], bytes_to_f16x2<KV>(b[2 * k], false), bytes_to_f16x2<KV>(b[2 * k], true));
          mma_f16_16816(s[1], qf[kc + k], bytes_to_f16x2<KV>(b[2 * k + 1], false), bytes_to_f16x2<KV>(b[2 * k + 1], true));
        }
      }
    } else {
#pragma unroll
      for (int kc = 0; kc < KC; ++kc) {
        uint32_t b[4];
        // Matrices: positions 0-7 / 8-15 (lane / 16) x columns kc*16 + 0-7 / 8-15 ((lane / 8) % 2).
        ldmatrix_x4(b, ks + ((lane >> 4) * 8 + (lane & 7)) * S::kRowBytes + (kc * 16 + ((lane >> 3) & 1) * 8) * 2);
        mma_bf16_16816(s[0], qf[kc], b[0], b[1]);
        mma_bf16_16816(s[1], qf[kc], b[2], b[3]);
      }
    }
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = e >> 1, q = j * 8 + (lane & 3) * 2 + (e & 1), p = i * kTile + q;
        if constexpr (I8) s[j][e] = __fmul_rn(s[j][e], k_scales[q]);
        s[j][e] = p <= row_pos[h] ? __fmul_rn(s[j][e], scale_log2) : -INFINITY;
        tile_max[h] = fmaxf(tile_max[h], s[j][e]);
      }
    float corr[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 1));
      tile_max[h] = fmaxf(tile_max[h], __shfl_xor_sync(0xffffffffu, tile_max[h], 2));
      const float m_new = fmaxf(m[h], tile_max[h]);
      corr[h] = m_new == -INFINITY ? 1.0f : exp2f(__fsub_rn(m[h], m_new));
      m[h] = m_new;
    }
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int h = e >> 1;
        s[j][e] = m[h] == -INFINITY ? 0.0f : exp2f(__fsub_rn(s[j][e], m[h]));
      }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = __fadd_rn(__fadd_rn(s[0][2 * h], s[0][2 * h + 1]), __fadd_rn(s[1][2 * h], s[1][2 * h + 1]));
      sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 1));
      sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 2));
      l[h] = __fmaf_rn(l[h], corr[h], sum);
    }
#pragma unroll
    for (int dn = 0; dn < DN; ++dn)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[dn][c] = __fmul_rn(acc[dn][c], corr[c >> 1]);
    // The score accumulators are the A operand of P · V as they stand (rows, then positions 0-7 / 8-15).
    if constexpr (F8) {
      // I8: V's f16 values times their positions' scales: a lane's B fragments hold positions
      // 2 (lane % 4) + {0, 1} (b0) and the same + 8 (b1).
      uint32_t vsc[2] = {0u, 0u};
      if constexpr (I8) {
        vsc[0] = pack_f16(v_scales[(lane & 3) * 2], v_scales[(lane & 3) * 2 + 1]);
        vsc[1] = pack_f16(v_scales[8 + (lane & 3) * 2], v_scales[8 + (lane & 3) * 2 + 1]);
      }
      auto vfrag = [&](uint32_t x, bool hi, int half) { return I8 ? mul_f16x2(bytes_to_f16x2<KV>(x, hi), vsc[half]) : bytes_to_f16x2<KV>(x, hi); };
      const uint32_t pf[4] = {pack_f16(s[0][0], s[0][1]), pack_f16(s[0][2], s[0][3]), pack_f16(s[1][0], s[1][1]),
                              pack_f16(s[1][2], s[1][3])};
      // Transposed as b16, a lane gets bytes (p, 2j), (p, 2j + 1), (p + 1, 2j), (p + 1, 2j + 1) for
      // p = 2 (lane % 4), j = lane / 4 of a 16-dim chunk: regrouped, the even dims' pair feeds output
      // tile 2c and the odd dims' tile 2c + 1 (acc_dim).
#pragma unroll
      for (int dc = 0; dc < D / 16; dc += 2) {
        // Matrices: positions 0-7 / 8-15 ((lane / 8) % 2) x dims of chunk dc / dc + 1 (lane / 16).
        uint32_t b[4];
        const unsigned char* row = vs + (((lane >> 3) & 1) * 8 + (lane & 7)) * S::kRowBytes + (dc + (lane >> 4)) * 16;
        if (dc + 1 < D / 16) ldmatrix_x4_trans(b, row);
        else ldmatrix_x2_trans(b, row);
#pragma unroll
        for (int k = 0; k < 2; ++k) {
          if (dc + k >= D / 16) break;
          // Positions 0-7 and 8-15, each as [even dim's pair | odd dim's pair].
          const uint32_t first8 = split_dim_parity(b[2 * k]), last8 = split_dim_parity(b[2 * k + 1]);
          mma_f16_16816(acc[2 * (dc + k)], pf, vfrag(first8, false, 0), vfrag(last8, false, 1));
          mma_f16_16816(acc[2 * (dc + k) + 1], pf, vfrag(first8, true, 0), vfrag(last8, true, 1));
        }
      }
    } else {
      const uint32_t pf[4] = {pack_bf16(s[0][0], s[0][1]), pack_bf16(s[0][2], s[0][3]), pack_bf16(s[1][0], s[1][1]),
                              pack_bf16(s[1][2], s[1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b[4];
        // Matrices: positions 0-7 / 8-15 ((lane / 8) % 2) x columns (2dp + lane / 16) * 8, transposed.
        ldmatrix_x4_trans(b, vs + (((lane >> 3) & 1) * 8 + (lane & 7)) * S::kRowBytes + (dp * 2 + (lane >> 4)) * 16);
        mma_bf16_16816(acc[2 * dp], pf, b[0], b[1]);
        mma_bf16_16816(acc[2 * dp + 1], pf, b[2], b[3]);
      }
    }
  };

  // Split-parallel blocks take splits z, z + gridDim.z, ... (each from a fresh state); others the whole context.
  for (int split = SPLIT ? blockIdx.z : 0;; split += gridDim.z) {
  const int begin = SPLIT ? split * kSplitTiles : 0;
  const int end = SPLIT ? min(begin + kSplitTiles, tiles_total) : tiles_total;
  if (begin >= end) break;  // past this sequence's context (the whole block agrees)
  reset();
  // A ring of STAGES tiles: one commit group per tile (empty past the end) so the wait count is fixed.
  for (int k = 0; k < STAGES - 1; ++k) {
    if (begin + k < end) load_tile(begin + k, k);
    else cp_async_commit();
  }
  for (int i = begin; i < end; ++i) {
    const int stage = (i - begin) % STAGES;
    if (i + STAGES - 1 < end) load_tile(i + STAGES - 1, (i - begin + STAGES - 1) % STAGES);
    else cp_async_commit();
    cp_async_wait<STAGES - 1>();
    __syncthreads();
    const unsigned char* ks = stages + stage * S::kStageBytes;
    // Tiles wholly past this warp's last position would change nothing; skip them.
    if (i * kTile <= warp_last) attend(i, ks, ks + S::kTileBytes);
    __syncthreads();
    if (!SPLIT && ((i + 1) % kSplitTiles == 0 || i + 1 == end)) {
      // D = 256 folds every split: around a branch ptxas spilled 90 registers a lane.
      const bool live = (i / kSplitTiles) * kAttnSplit <= warp_last;
      if constexpr (D > 128) fold(live);
      else if (live) fold(true);
      reset();
    }
  }
  if (count == 0) return;

  if constexpr (SPLIT) {
    // This split's state for the folding block: [group][D] accumulators, then m[group], l[group].
    float* part = a.partial + ((static_cast<size_t>(blockIdx.x) * a.kv_heads + kvh) * splits + split) * group * (D + 2);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = lane / 4 + 8 * h;
      if (r >= group) continue;
#pragma unroll
      for (int dn = 0; dn < DN; ++dn) {
        part[r * D + acc_dim<F8>(dn, 0, lane)] = acc[dn][2 * h];
        part[r * D + acc_dim<F8>(dn, 1, lane)] = acc[dn][2 * h + 1];
      }
      if ((lane & 3) == 0) {
        part[group * D + r] = m[h];
        part[group * D + group + r] = l[h];
      }
    }
    continue;
  } else {
#pragma unroll
  for (int h = 0; h < (ROWS8 ? 1 : 2); ++h) {
    const int r = lane / 4 + 8 * h, tk = r / group;
    if (tk >= count) continue;
    __nv_bfloat16* o = a.out + static_cast<size_t>(first + tk) * a.heads * D + static_cast<size_t>(kvh * group + r % group) * D;
#pragma unroll
    for (int dn = 0; dn < DN; ++dn) {
      const float x0 = __fdiv_rn(merged[(dn * CPL + 2 * h) * 32 + lane], ll[h]);
      const float x1 = __fdiv_rn(merged[(dn * CPL + 2 * h + 1) * 32 + lane], ll[h]);
      if constexpr (F8) {
        const float vs = I8 ? 1.0f : a.kv.v_scale;
        o[acc_dim<F8>(dn, 0, lane)] = __float2bfloat16(x0 * vs);
        o[acc_dim<F8>(dn, 1, lane)] = __float2bfloat16(x1 * vs);
      } else {
        *reinterpret_cast<__nv_bfloat162*>(o + acc_dim<F8>(dn, 0, lane)) = __floats2bfloat162_rn(x0, x1);
      }
    }
  }
  return;
  }
  }
  if constexpr (SPLIT) {
    // The block that finishes last for this (tile, KV head) folds every split's state in position order.
    __threadfence();
    const size_t pair = static_cast<size_t>(blockIdx.x) * a.kv_heads + kvh;
    int last = 0;
    if (lane == 0) last = atomicAdd(a.split_counters + pair, 1) == static_cast<int>(gridDim.z) - 1;
    if (!__shfl_sync(0xffffffffu, last, 0)) return;
    __threadfence();
    if (lane == 0) a.split_counters[pair] = 0;  // ready for the next launch
    const int used = a.positions[tile.x] / kAttnSplit + 1;
    const float* base = a.partial + pair * splits * group * (D + 2);
    // Splits in chunks: their m and l into shared memory at once, each row's fold weights from them
    // (lane r walks row r), then every lane's accumulator elements with all their loads in flight.
    // Each element sees the same fold_weights / fold_value sequence as the in-block fold.
    constexpr int kPer = (kRows * D + 31) / 32;  // accumulator elements per lane
    float out[kPer];
#pragma unroll
    for (int j = 0; j < kPer; ++j) out[j] = 0.0f;
    float* fm = reinterpret_cast<float*>(smem);  // [chunk split][row] m, l, then the weights wa, wb
    float* fl = fm + kFoldChunk * kRows;
    float* fwa = fl + kFoldChunk * kRows;
    float* fwb = fwa + kFoldChunk * kRows;
    float row_m = -INFINITY, row_l = 0.0f;
    for (int c0 = 0; c0 < used; c0 += kFoldChunk) {
      const int n = min(kFoldChunk, used - c0);
      __syncwarp();
      for (int e = lane; e < n * group; e += 32) {
        const float* part = base + static_cast<size_t>(c0 + e / group) * group * (D + 2);
        fm[e] = __ldcg(part + group * D + e % group);
        fl[e] = __ldcg(part + group * D + group + e % group);
      }
      __syncwarp();
      if (lane < group)
        for (int sp = 0; sp < n; ++sp) {
          float wa, wb;
          fold_weights(row_m, fm[sp * group + lane], wa, wb, row_m);
          row_l = fold_value(row_l, wa, fl[sp * group + lane], wb);
          fwa[sp * group + lane] = wa;
          fwb[sp * group + lane] = wb;
        }
      __syncwarp();
      for (int sp = 0; sp < n; ++sp) {
        const float* part = base + static_cast<size_t>(c0 + sp) * group * (D + 2);
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          const int e = lane + 32 * j;
          if (e < group * D) out[j] = fold_value(out[j], fwa[sp * group + e / D], __ldcg(part + e), fwb[sp * group + e / D]);
        }
      }
    }
    __syncwarp();
    if (lane < group) fl[lane] = row_l;
    __syncwarp();
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int e = lane + 32 * j;
      if (e >= group * D) continue;
      const int r = e / D, d = e % D;
      const float x = __fdiv_rn(out[j], fl[r]);
      a.out[static_cast<size_t>(tile.x) * a.heads * D + static_cast<size_t>(kvh * group + r) * D + d] =
          __float2bfloat16(KV == KvType::kE4M3 ? x * a.kv.v_scale : x);
    }
  }
}

template <int D, int WARPS, bool SPLIT, KvType KV, bool ROWS8 = false>
void launch(const AttentionArgs& a, dim3 grid, float scale_log2, int splits, cudaStream_t s) {
  const size_t shared = Smem<D, KV>::bytes(WARPS, SPLIT, ROWS8);
  allow_dynamic_shared<attention_kernel<D, WARPS, SPLIT, KV, ROWS8>>(shared);
  launch_pdl("attention_kernel", attention_kernel<D, WARPS, SPLIT, KV, ROWS8>, grid, 32 * WARPS, shared, s, a, scale_log2, splits);
}

}  // namespace

void check_attention_shape(int heads, int kv_heads, int head_dim) {
  if (head_dim % 16 != 0 || (head_dim > 128 && head_dim != 256))
    fail("head_dim ", head_dim, " is not supported by the CUDA attention kernel (a multiple of 16 up to 128, or 256)");
  if (kv_heads <= 0 || heads % kv_heads != 0 || heads / kv_heads > kAttnMaxGroup)
    fail(heads, " query heads over ", kv_heads, " KV heads is not supported by the CUDA attention kernel (at most ", kAttnMaxGroup,
         " query heads per KV head)");
}

int attention_tile_tokens(int heads, int kv_heads, bool decode) {
  return decode ? 1 : kPrefillWarps * (kRows / (heads / kv_heads));
}

int attention_parallel_splits(int num_tiles, int kv_heads, int max_position, int sm_count) {
  const int splits = max_position / kAttnSplit + 1;
  const long blocks = static_cast<long>(num_tiles) * kv_heads;
  if (splits < 2 || blocks >= 2L * sm_count || blocks * splits > kMaxPartialBlocks) return 0;
  return splits;
}

size_t attention_partial_bytes(int heads, int kv_heads, int head_dim) {
  return static_cast<size_t>(kMaxPartialBlocks) * (heads / kv_heads) * (head_dim + 2) * sizeof(float);
}

size_t attention_counter_bytes() { return static_cast<size_t>(kMaxPartialBlocks) * sizeof(int); }

void launch_paged_attention(const AttentionArgs& a, bool decode, int splits, int sm_count, cudaStream_t s) {
  if (a.num_tiles == 0) return;
  const float scale_log2 = attention_score_scale_log2(a);
  auto run = [&](auto kv) {
    constexpr KvType KV = decltype(kv)::value;
    return with_head_dim(a.head_dim, [&](auto d) {
      constexpr int D = decltype(d)::value;
      if (!decode) {
        launch<D, kPrefillWarps, false, KV>(a, dim3(a.num_tiles, a.kv_heads), scale_log2, 0, s);
      } else if (splits == 0) {
        if (a.heads / a.kv_heads <= 8) launch<D, 1, false, KV, true>(a, dim3(a.num_tiles, a.kv_heads), scale_log2, 0, s);
        else launch<D, 1, false, KV, false>(a, dim3(a.num_tiles, a.kv_heads), scale_log2, 0, s);
      } else {
        // About two blocks per SM; each takes every z-th split.
        const int blocks = a.num_tiles * a.kv_heads;
        const int z = std::min(splits, std::max(1, (2 * sm_count + blocks - 1) / blocks));
        launch<D, 1, true, KV>(a, dim3(a.num_tiles, a.kv_heads, z), scale_log2, splits, s);
      }
    });
  };
  using Bf16 = std::integral_constant<KvType, KvType::kBf16>;
  using E4M3 = std::integral_constant<KvType, KvType::kE4M3>;
  using Int8 = std::integral_constant<KvType, KvType::kInt8>;
  const bool ok = a.kv.type == KvType::kE4M3 ? run(E4M3{}) : a.kv.type == KvType::kInt8 ? run(Int8{}) : run(Bf16{});
  if (!ok) fail("head_dim ", a.head_dim, " is not supported by the CUDA attention kernel");
}

}  // namespace tachyon
