// Prefill attention on Hopper's warpgroup MMA (wgmma, sm_90a), head_dim 64 and 128: the tiles, row
// layout and online softmax of attention_prefill.cu (a block of 8 warps holds 128 query rows, 16 a
// warp: tokens of one sequence times the query heads of one KV head; K/V tiles of 64 positions), but
// each warpgroup of 4 warps multiplies its 64 rows by the K/V tile with wgmma, which reads the tile
// straight from shared memory. The mma.sync kernel has every warp load its own B fragments with
// ldmatrix and issue 128 mma a tile; here a warp issues 12 wgmma a tile (D = 128) and loads no
// fragments. (H200, Llama-3-8B, four 2048-token prompts, E4M3 cache: the mma.sync kernel ran at
// 144 TFLOP/s, issue-bound at 8 warps an SM with the tensor pipe 23% busy.)
//
// A K or V tile sits in shared memory as 128-byte swizzle atoms: D / 64 halves of 64 dims, each
// 64 positions x 128 bytes, with the 16-byte chunk c of row r stored at chunk c ^ (r % 8). The same
// bytes serve as the K-major B operand of S = Q K^T (n = positions, k = dims) and the MN-major B of
// O = P V (k = positions, n = dims). One-byte caches are widened into that layout once a tile, as
// attention_prefill.cu widens into its padded rows; a bf16 cache is copied into it directly.
//
// Since the sixteenth session the warp-specialized, persistent attention_prefill_sm90_ws.cu serves
// by default; this kernel serves GPT-J, prefillRopeQ off and warpSpecializedPrefill off, and is
// what the GPU tests hold that one to, bit for bit.
#include <climits>

#include "cuda/attention.h"
#include "cuda/attention_parts.cuh"
#include "cuda/attention_sm90_tiles.cuh"
#include "cuda/cuda_check.h"
#include "cuda/dynamic_shared.h"
#include "cuda/mma.cuh"
#include "cuda/pdl.cuh"
#include "cuda/wgmma.cuh"

namespace tachyon {

namespace {

using namespace sm90;

constexpr int kWarps = 8;                          // two warpgroups
constexpr int kRows = 16;                          // query rows per warp
constexpr int kThreads = 32 * kWarps;

template <int D, KvType KV>
struct Sm90Smem : Sm90Tile<D, KV> {
  using T = Sm90Tile<D, KV>;
  using T::kBytes1, T::kTileBytes, T::kRawStageBytes;
  // Iteration i of the loop works on three tiles: i - 1 (its P V may still run), i (its scores'
  // softmax) and i + 1 (made ready for the tensor cores, its Q K^T issued at the end), and sends
  // tile i + 2 + kAhead's copies, so kAhead more tiles' copies are in flight. A one-byte cache lands
  // raw in a ring of kAhead + 1 stages (a stage is free once widened) and is widened into a ring of
  // 3 tiles the tensor cores read; bf16 lands swizzled in a ring the tensor cores read, which must
  // hold tiles i - 1 .. i + 2 + kAhead.
  static constexpr int kAhead = 2;
  static constexpr int kStages = kBytes1 ? kAhead + 1 : kAhead + 4;
  static constexpr int kStageBytes = kBytes1 ? kRawStageBytes : kTileBytes;           // bf16: copies land swizzled
  static constexpr int kWideTiles = kBytes1 ? 3 : 0;                                  // tiles one-byte caches widen into
  static constexpr int kWideBytes = kWideTiles * kTileBytes;
  static constexpr int kBytes = 1024 + kWideBytes + kStages * kStageBytes;            // + slack to align atoms to 1024
};

// grid: (tile, KV head); kWarps warps, each with up to 16 / group tokens of the tile.
template <int D, KvType KV>
__global__ void __launch_bounds__(32 * kWarps, 1) prefill_attention_sm90_kernel(AttentionArgs a, float scale_log2) {
  using S = Sm90Smem<D, KV>;
  constexpr bool F16 = S::kBytes1;  // one-byte caches widen to f16; bf16 stays bf16
  constexpr int KC = D / 16;        // k-steps of Q K^T
  constexpr int NT = kTile / 8;     // 8-position score tiles
  constexpr int STAGES = S::kStages;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzle atoms must start 1024-byte aligned (the descriptors' base offset is 0).
  unsigned char* smem = smem_raw + ((1024u - (smem_address(smem_raw) & 1023u)) & 1023u);
  unsigned char* wide = smem;                   // one-byte caches: the widened tile
  unsigned char* stages = smem + S::kWideBytes;
  pdl_wait();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int kvh = blockIdx.y;
  const int2 tile = a.tiles[blockIdx.x];
  const int group = a.heads / a.kv_heads;
  const WarpQueries wq = warp_queries<kRows>(a, tile, group, warp);
  const int first = wq.first, count = wq.count, block_last = wq.block_last;
  const int32_t* table = wq.table;
  const int tiles_total = block_last / kTile + 1;
  // A warpgroup's four warps multiply together, so it walks every tile one of them needs: up to
  // the position of its last token (-1: it has none).
  const int per_warp = kRows / group, wg_begin = (warp / 4) * 4 * per_warp;
  const int wg_end = min(tile.y, wg_begin + 4 * per_warp);
  const int wg_last = wg_end > wg_begin ? a.positions[tile.x + wg_end - 1] : -1;
  // Tiles wholly at or before the warp's first position are visible to all its rows: no causal mask.
  const int first_pos = count > 0 ? a.positions[first] : INT_MAX;

  // The first tiles' copies go out before the query rows are read, so their latencies overlap.
  const StagePlan<D, KV, kThreads> stage_plan(threadIdx.x);
  auto stage_at = [&](int k) { return stages + (k % STAGES) * S::kStageBytes; };
  // The tile the tensor cores read for tile k: its widened copy (one-byte caches) or its stage.
  auto operands_at = [&](int k) -> const unsigned char* { return S::kBytes1 ? wide + (k % S::kWideTiles) * S::kTileBytes : stage_at(k); };
  // All their table entries are loaded before the first copy: a load after a copy's asm could not
  // be moved above it, so each tile's lookup would wait for the one before to land.
  typename StagePlan<D, KV, kThreads>::Fetched fetched[S::kAhead + 2] = {};
#pragma unroll
  for (int k = 0; k < S::kAhead + 2; ++k)
    if (k < tiles_total) fetched[k] = stage_plan.fetch(a, table, k, block_last, threadIdx.x);
#pragma unroll
  for (int k = 0; k <= S::kAhead; ++k) {
    if (k < tiles_total) stage_plan.copy(stage_at(k), a, fetched[k], kvh, threadIdx.x);
    else cp_async_commit();
  }
  typename StagePlan<D, KV, kThreads>::Fetched ahead = fetched[S::kAhead + 1];

  int row_pos[2];
  uint32_t qf[KC][4];
  load_query_rows<D, F16, false>(a, first, count, group, kvh, lane, row_pos, qf);

  // O (the warpgroup's 64 rows x D) as accumulator fragments; online-softmax state as
  // attention_prefill.cu keeps it; P as A fragments, 16 positions (score tiles 2c, 2c + 1) a k-step
  // of P V.
  float acc[D / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  uint32_t pf[kTile / 16][4] = {};
  // A warpgroup multiplies the tiles up to its last row's position (monotone: true, then false).
  auto needed = [&](int i) { return i * kTile <= wg_last; };

  // Tile k ready for the tensor cores: its copies landed (the caller waited), then one barrier
  // (two with a one-byte cache, widened in between). Each writer fences its bytes to the async
  // proxy before the barrier the wgmma come after. Then tile k + kAhead + 1's copies go out (into
  // the stage tile k - 1 or k held, which every warpgroup is done with: see the loop) and tile
  // k + kAhead + 2's slots are looked up.
  const WidenPlan<D, KV, kThreads> widen_plan(threadIdx.x);
  auto make_ready = [&](int k) {
    if constexpr (!S::kBytes1) fence_proxy_async_shared();
    __syncthreads();
    if constexpr (S::kBytes1) {
      widen_plan.run(stage_at(k), wide + (k % S::kWideTiles) * S::kTileBytes);
      fence_proxy_async_shared();
      __syncthreads();
    }
    const int next = k + S::kAhead + 1;
    if (next < tiles_total) {
      stage_plan.copy(stage_at(next), a, ahead, kvh, threadIdx.x);
      if (next + 1 < tiles_total) ahead = stage_plan.fetch(a, table, next + 1, block_last, threadIdx.x);
    } else {
      cp_async_commit();  // one group a tile, empty past the end, so the wait count stays fixed
    }
  };

  // Software pipeline (FlashAttention-3's intra-warpgroup overlap): tile i's Q K^T and tile i - 1's
  // P V go out together, and tile i's softmax (then tile i + 1's staging) runs while the tensor
  // cores do that P V. Two wgmma groups an iteration, scores first, so waiting for all but one
  // leaves P V running. The scores live only within an iteration: ptxas serializes every wgmma of a
  // kernel where a non-wgmma instruction might touch a running wgmma's accumulators, and carrying
  // them around the loop did. The arithmetic is that of the unpipelined loop:
  // O = O * corr(i) + P(i) V(i).
  cp_async_wait<S::kAhead>();  // tile 0's group
  make_ready(0);
  for (int i = 0; i < tiles_total; ++i) {
    float s[NT][4];
    wgmma_fence();
    issue_scores<D, F16>(s, qf, smem_address(operands_at(i)));
    if (i > 0) issue_values<D, KV>(acc, pf, smem_address(operands_at(i - 1)));
    else wgmma_commit();  // (tile -1's P V: none)
    wgmma_wait<1>();  // tile i's scores
    wgmma_fence_operands(s);
    float corr[2] = {1.0f, 1.0f};
    if (needed(i)) mask_and_softmax(s, i, first_pos, row_pos, lane, m, l, scale_log2, corr);
    // Tile i + 1 into place (P V of tile i - 1 may still read its own tile: the ring holds it apart
    // from tiles i, i + 1 and those in flight).
    if (i + 1 < tiles_total) {
      cp_async_wait<S::kAhead>();  // tile i + 1's group (i + 1 + kAhead groups were committed before it)
      make_ready(i + 1);
    }
    wgmma_wait<0>();  // tile i - 1's P V
    wgmma_fence_operands(acc);
    wgmma_fence_operands(pf);
    rescale_and_pack<D, F16>(acc, pf, s, corr, needed(i));
  }
  finish_rows<D, KV>(acc, pf, l, tiles_total, smem_address(operands_at(tiles_total - 1)), a, first, count, group, kvh, lane);
}

template <int D, KvType KV>
void launch(const AttentionArgs& a, float scale_log2, cudaStream_t s) {
  constexpr size_t shared = Sm90Smem<D, KV>::kBytes;
  allow_dynamic_shared<prefill_attention_sm90_kernel<D, KV>>(shared);
  launch_pdl("prefill_attention_sm90_kernel", prefill_attention_sm90_kernel<D, KV>, dim3(a.num_tiles, a.kv_heads), 32 * kWarps,
             shared, s, a, scale_log2);
}

}  // namespace

bool prefill_attention_sm90_supports(int heads, int kv_heads, int head_dim) {
  return wgmma_available() && prefill_attention_supports(heads, kv_heads, head_dim) && (head_dim == 64 || head_dim == 128);
}

void launch_prefill_attention_sm90(const AttentionArgs& a, cudaStream_t s) {
  launch_by_head_dim_and_cache(a, "prefill attention (sm_90)", [&](auto d, auto kv, float scale_log2) {
    launch<decltype(d)::value, decltype(kv)::value>(a, scale_log2, s);
  });
}

}  // namespace tachyon
