// Prefill attention on Hopper (sm_90a), warp-specialized and persistent as FlashAttention-3: the
// tiles, rows, softmax and order of arithmetic of attention_prefill_sm90.cu (so the same bits), but
// a producer warpgroup stages the K/V tiles (cp.async of the paged rows, then for one-byte caches the
// widening) into a ring of slots and hands each over through an mbarrier; the two consumer
// warpgroups take a slot when it is full and give it back once their P V of it has run. The
// consumers never wait for each other, so one's softmax overlaps the other's wgmma; in
// attention_prefill_sm90.cu both meet at two __syncthreads a tile and widen the tile themselves
// (H200, ncu: 647 instructions a warp a tile, issue slots 31% busy, tensor pipe 25%).
//
// Persistent: up to one block an SM, each walking (query tile, KV head) items in turn (BlockItems),
// so an item's first K/V tiles go out while the item before finishes, and the consumers copy the
// next item's query rows (unturned bf16, AttentionArgs::q_raw) and positions into shared memory
// while they multiply this one's: an item starts without the global loads a fresh block waits for.
// H200, 2048/128 (one build): 3,558 output tok/s, 3,534 one block an item, 3,461 on
// attention_prefill_sm90.cu. The default (CudaKnobs.warpSpecializedPrefill) where it gets q_raw
// (CudaModel's prefill_rope_q_); GPT-J and prefillRopeQ off take attention_prefill_sm90.cu. FlashAttention-3's ping-pong (the consumers taking turns at the
// tensor cores) was measured here before and left out: the same bits, no faster (twelfth session).
//
// FP8S (CudaKnobs.fp8PrefillScores, E4M3 cache at head_dim 128): Q K^T on E4M3 tensor cores, K
// the cache's bytes copied straight into the slot, q rounded to E4M3 with a scale a row; only V is
// widened. Other bits than the f16 path, within the E4M3 cache's own error (GPU test); H200,
// 2048/128: +0.9% (seventeenth session). On by default (eighteenth session), as vLLM's and
// TensorRT-LLM's FP8 attention quantize q for an FP8 cache: on a trained head_dim-128 model
// (bench/fp8-scores-accuracy.ts) it moved perplexity +0.10% over the E4M3 cache's own +0.21%.
//
// FP8V (CudaKnobs.fp8PrefillValues, with FP8S): P V on E4M3 tensor cores too, P rounded from the
// consumers' registers and V's cached bytes transposed by the producer instead of widened
// (attention_sm90_fp8_values.cuh). H200, 2048/128: +0.6%; on the
// trained head_dim-128 model +0.03% perplexity over FP8 scores alone (twentieth session).
//
// PAIRS (CudaKnobs.prefillPairs, with FP8V; off by default, written without a GPU in the
// twenty-first session): ncu put the FP8V kernel at ~2,250 cycles a 64-position tile against 512
// of tensor and 512 of SFU work, issue slots 52% busy, FMUL 20% of its instructions (q's row scale
// on every score, P times 256, and O's rescale on 99.2% of tiles), the row maximum a chain of 16
// dependent FMNMX, and the producer ~176 instructions a tile of 64-bit slot arithmetic. PAIRS takes
// two tiles a consumer iteration (one maximum, one corr and one rescale of O for 128 positions,
// FlashAttention-3's larger kBlockN), with online_softmax_tiles (scales folded into the exponent,
// corr exactly 1 where a row's maximum stays, the maximum moved only past kPSlack, trees) and
// copy_k_swizzled_32. Its other instances are the same PTX as before it.
#include <algorithm>
#include <climits>
#include <type_traits>

#include "cuda/attention.h"
#include "cuda/attention_parts.cuh"
#include "cuda/attention_sm90_fp8_values.cuh"
#include "cuda/attention_sm90_tiles.cuh"
#include "cuda/cuda_check.h"
#include "cuda/dynamic_shared.h"
#include "cuda/mbarrier.cuh"
#include "cuda/mma.cuh"
#include "cuda/pdl.cuh"
#include "cuda/wgmma.cuh"

namespace tachyon {

namespace {

using namespace sm90;

constexpr int kConsumerWarps = 8;                  // two warpgroups of 64 query rows
constexpr int kConsumerThreads = 32 * kConsumerWarps;
constexpr int kProducerThreads = 128;              // one warpgroup: copies (and widens) the tiles
constexpr int kThreads = kConsumerThreads + kProducerThreads;
constexpr int kRows = 16;                          // query rows per consumer warp
// Registers a thread: the block is launched with 168 (ptxas's cap for 384 threads, which it takes
// whole in a kernel with setmaxnreg), and setmaxnreg only moves them between warpgroups:
// 128 x 88 + 256 x 208 = 384 x 168. The consumers hold O, the scores, P and Q; the producer its
// offsets and a piece in flight (ptxas spills its registers below 80).
constexpr int kLaunchRegisters = 168;
constexpr int kProducerRegisters = 88;
constexpr int kConsumerRegisters = 208;
static_assert(kProducerThreads * kProducerRegisters + kConsumerThreads * kConsumerRegisters <= kThreads * kLaunchRegisters,
              "setmaxnreg.inc would wait forever for registers the block does not have");

// FP8S (FP8 scores: E4M3 cache, D = 128): a slot holds K as the cache's bytes (kTile x D, read by
// the tensor cores as they are) and V widened after it; only V lands raw to be widened. FP8V (FP8
// values, with FP8S): V^T's bytes after K instead (TransposePlan), half the widened V's.
template <int D, KvType KV, bool FP8S = false, bool FP8V = false, bool PAIRS = false>
struct WsSmem : Sm90Tile<D, KV> {
  using T = Sm90Tile<D, KV>;
  using T::kBytes1;
  static_assert(!FP8S || (KV == KvType::kE4M3 && D == 128), "FP8 scores: an E4M3 cache at head_dim 128");
  static_assert(!FP8V || FP8S, "FP8 values ride on FP8 scores");
  static_assert(!PAIRS || FP8V, "paired tiles: the FP8-values kernel");
  static constexpr int kKBytes = FP8S ? kTile * D : T::kMatBytes;      // K's part of a slot; V follows
  static constexpr int kTileBytes = kKBytes + (FP8V ? kTile * D : T::kMatBytes);
  static constexpr int kRawStageBytes = FP8S ? kTile * D : T::kRawStageBytes;
  // The ring the tensor cores read: a consumer warpgroup holds tile i - 1 (its P V may run) and
  // tile i while the producer fills the next ones. One-byte caches land raw in the producer's own
  // ring (kAhead tiles of copies in flight beside the one it widens); bf16 lands in the slots.
  static constexpr int kAhead = kBytes1 ? 2 : 3;
  // K/V tiles a consumer iteration takes (PAIRS: two, sharing one maximum and one rescale of O).
  static constexpr int kTilesPerIteration = PAIRS ? 2 : 1;
  // PAIRS: two slots more (FP8V's slots are 16 KB; the block's 186 KB still fit), so the producer
  // keeps the same two tiles of slack it has in single-tile iterations (below).
  static constexpr int kSlots = kBytes1 && !FP8S ? 4 : (PAIRS ? 8 : 6);
  // bf16 and FP8S: while handing tile k over the producer waits for tile k + kAhead's slot, given
  // back by the consumers' iteration after the one holding tile k + kAhead - kSlots, which needs
  // tiles up to k + kAhead - kSlots + 2 kTilesPerIteration - 1 < k, already handed over.
  static_assert(kBytes1 && !FP8S ? kSlots >= 2 * kTilesPerIteration : kSlots >= kAhead + 2 * kTilesPerIteration,
                "the ring must not wait on itself");
  static constexpr int kRawStages = kBytes1 ? kAhead + 1 : 0;
  static constexpr int kSlotBytes = kSlots * kTileBytes;
  static constexpr int kRawBytes = kRawStages * kRawStageBytes;
  // The staged query rows of an item (128 rows of D bf16) and their tokens' positions.
  static constexpr int kQueryBytes = 128 * D * 2;
  static constexpr int kPositionBytes = 128 * 4;
  // + slack to align atoms to 1024, then a full and an empty barrier a slot.
  static constexpr int kBytes = 1024 + kSlotBytes + kRawBytes + kQueryBytes + kPositionBytes + 2 * kSlots * 8;
};

// The items a persistent block takes (an item: one query tile and one KV head), in order: round r
// of gridDim.x items at a time, block b the b-th of its round, counted from the round's other end
// in odd rounds. make_tiles orders tiles longest context first and an item's KV heads are
// adjacent, so the rounds go from long items to short ones; the snake gives every block about the
// same sum (in one direction only, block 0 would take the longest of every round).
struct BlockItems {
  int items, kv_heads;
  // The block's n-th item, or -1 past the last.
  __device__ __forceinline__ int item(int n) const {
    const int g = static_cast<int>(gridDim.x), b = static_cast<int>(blockIdx.x);
    const int j = n * g + ((n & 1) ? g - 1 - b : b);
    return j < items ? j : -1;
  }
};

// The producer's walk over the block's K/V tiles, item after item: the tile it stages next (k of
// the item's total) and where that item's rows live. The next item's query tile is loaded while
// this item's tiles go out, so moving on waits only for its table row and last position.
struct TileWalk {
  BlockItems bi;
  int n;                 // the item's ordinal in the block (item -1: done)
  int item, kvh, k, total, last;
  const int32_t* table;
  int2 next_tile;        // the query tile of item n + 1 (unread past the last)

  __device__ __forceinline__ void enter(const AttentionArgs& a, int2 tile) {
    item = bi.item(n);
    if (item < 0) return;
    kvh = item % bi.kv_heads;
    table = a.block_tables + static_cast<size_t>(a.token_seq[tile.x]) * a.table_stride;
    last = a.positions[tile.x + tile.y - 1];
    total = last / kTile + 1;
    k = 0;
    const int following = bi.item(n + 1);
    if (following >= 0) next_tile = a.tiles[following / bi.kv_heads];
  }
  __device__ __forceinline__ void start(const AttentionArgs& a) {
    n = 0;
    enter(a, a.tiles[bi.item(0) / bi.kv_heads]);
  }
  __device__ __forceinline__ bool valid() const { return item >= 0; }
  __device__ __forceinline__ void advance(const AttentionArgs& a) {
    if (++k < total) return;
    ++n;
    enter(a, next_tile);
  }
};

// A fetched tile and the KV head its copies read.
template <int D, KvType KV>
struct Pending {
  typename StagePlan<D, KV, kProducerThreads>::Fetched f;
  int kvh;
};

// The producer warpgroup: the block's tiles, item after item, into the ring (one-byte caches: into
// its raw stages, then widened into the slot), each slot handed over through full[] and taken back
// through empty[] once both consumer warpgroups' P V of it has run. g counts the block's tiles
// across items, so an item's first tiles go out while the consumers finish the item before. Slot
// g % kSlots's phases alternate, so the parity a wait names is (g / kSlots) & 1; a producer waits for
// the phase before (a fresh barrier's "previous phase" has completed, so its first pass through the
// ring does not block).
// FP8S: K goes straight into its slot (so the producer waits for the slot before the copies, as
// for bf16) and only V is widened (FP8V: transposed).
template <int D, KvType KV, bool FP8S, bool FP8V, bool PAIRS>
__device__ __forceinline__ void produce_tiles(const AttentionArgs& a, BlockItems bi, unsigned char* slots, unsigned char* raw,
                                             uint64_t* full, uint64_t* empty) {
  using S = WsSmem<D, KV, FP8S, FP8V, PAIRS>;
  constexpr int A = S::kAhead;
  const int ptid = threadIdx.x - kConsumerThreads;
  const StagePlan<D, KV, kProducerThreads> plan(ptid);
  auto slot_at = [&](int g) { return slots + (g % S::kSlots) * S::kTileBytes; };
  auto empty_parity = [](int g) { return static_cast<uint32_t>(((g / S::kSlots) & 1) ^ 1); };
  TileWalk walk{bi};
  walk.start(a);
  // The walk's tile, fetched, and the walk moved past it.
  auto take = [&]() {
    Pending<D, KV> p{plan.fetch(a, walk.table, walk.k, walk.last, ptid), walk.kvh};
    walk.advance(a);
    return p;
  };
  int copied = 0;  // tiles whose copies went out
  Pending<D, KV> ahead{};
  bool has_ahead = false;
  // The first A tiles' copies (copy_tile: this path's copies of tile `copied`, which counts it),
  // one group a tile, empty past the end so the wait counts stay fixed; then tile A fetched ahead.
  auto copy_first = [&](auto&& copy_tile) {
    for (int k = 0; k < A; ++k) {
      if (walk.valid()) copy_tile(take());
      else cp_async_commit();
    }
    if ((has_ahead = walk.valid())) ahead = take();
  };
  // The fetched-ahead tile's copies and the next one fetched, or an empty group past the end.
  auto copy_next = [&](auto&& copy_tile) {
    if (has_ahead) {
      copy_tile(ahead);
      if ((has_ahead = walk.valid())) ahead = take();
    } else {
      cp_async_commit();
    }
  };
  if constexpr (FP8S) {
    // V widened into the slot, or (FP8V) transposed as it is.
    const std::conditional_t<FP8V, TransposePlan<kProducerThreads>, WidenPlan<D, KV, kProducerThreads, true>> widen_v(ptid);
    auto raw_at = [&](int g) { return raw + (g % S::kRawStages) * S::kRawStageBytes; };
    // Tile `copied`'s K into its slot once the consumers gave the slot back, V into its raw stage.
    auto copy_tile = [&](const Pending<D, KV>& p) {
      mbarrier_wait(&empty[copied % S::kSlots], empty_parity(copied));
      if constexpr (PAIRS) plan.copy_k_swizzled_32(slot_at(copied), raw_at(copied), a, p.f, p.kvh);
      else plan.copy_k_swizzled(slot_at(copied), raw_at(copied), a, p.f, p.kvh);
      ++copied;
    };
    copy_first(copy_tile);
    for (int g = 0; g < copied; ++g) {
      cp_async_wait<A - 1>();  // this thread's copies of tile g (tiles 0 .. g + A - 1 were committed)
      // Every producer thread's copies of tile g landed, and every one is done widening tile g - 1's
      // V, whose stage tile g + A's V takes below.
      named_barrier_sync<1, kProducerThreads>();
      // Tile g handed over before tile g + A's copies, which wait for its slot: given back after
      // tile g + A - kSlots's P V, in the consumers' iteration g + A - kSlots + 1 <= g - 3, so the
      // consumers run kSlots - A - 1 tiles ahead of that wait rather than on its heels. (PAIRS: an
      // iteration holds two tiles and gives both back at its end, so kSlots = A + 2 x 2 would leave
      // no tile to spare; its 8 slots keep two.)
      widen_v.run(raw_at(g), slot_at(g) + S::kKBytes);
      fence_proxy_async_shared();  // the widened (FP8V: transposed) V and this thread's K copies, before the wgmma that read them
      mbarrier_arrive(&full[g % S::kSlots]);
      copy_next(copy_tile);
    }
  } else if constexpr (S::kBytes1) {
    const WidenPlan<D, KV, kProducerThreads> widen(ptid);
    auto raw_at = [&](int g) { return raw + (g % S::kRawStages) * S::kRawStageBytes; };
    auto copy_tile = [&](const Pending<D, KV>& p) { plan.copy(raw_at(copied++), a, p.f, p.kvh, ptid); };
    copy_first(copy_tile);
    for (int g = 0; g < copied; ++g) {
      cp_async_wait<A - 1>();  // this thread's copies of tile g (tiles 0 .. g + A - 1 were committed)
      // Every producer thread's copies of tile g landed, and every one is done widening tile g - 1,
      // whose stage tile g + A's copies take now.
      named_barrier_sync<1, kProducerThreads>();
      copy_next(copy_tile);
      mbarrier_wait(&empty[g % S::kSlots], empty_parity(g));
      widen.run(raw_at(g), slot_at(g));
      fence_proxy_async_shared();  // these writes, before the wgmma that read them
      mbarrier_arrive(&full[g % S::kSlots]);
    }
  } else {
    auto copy_tile = [&](const Pending<D, KV>& p) {
      mbarrier_wait(&empty[copied % S::kSlots], empty_parity(copied));
      plan.copy(slot_at(copied), a, p.f, p.kvh, ptid);
      ++copied;
    };
    copy_first(copy_tile);
    for (int g = 0; g < copied; ++g) {
      copy_next(copy_tile);
      cp_async_wait<A>();  // this thread's copies of tile g (tiles 0 .. g + A were committed)
      fence_proxy_async_shared();
      mbarrier_arrive(&full[g % S::kSlots]);
    }
  }
}

// The consumers' copy of an item's query rows (tokens tile.x .. tile.x + tile.y - 1, the query
// heads of KV head kvh: group * D bf16 a token, adjacent in the QKV output, not yet turned by RoPE)
// and their positions into shared memory, one cp.async group: loaded while the item before is
// multiplied, so an item starts without a global load's latency.
template <int D>
__device__ __forceinline__ void stage_queries(const AttentionArgs& a, int2 tile, int kvh, int group, __nv_bfloat16* q, int* pos) {
  const int tid = threadIdx.x;
  for (int t = tid; t < tile.y; t += kConsumerThreads) cp_async_4(pos + t, a.positions + tile.x + t, true);
  const int pieces = group * D / 8;  // 16-byte pieces of a token's row
  const size_t qkv_width = static_cast<size_t>(a.heads + 2 * a.kv_heads) * D;
  for (int c = tid; c < tile.y * pieces; c += kConsumerThreads) {
    const int t = c / pieces, p = c % pieces;
    cp_async_16(q + static_cast<size_t>(t) * group * D + p * 8,
                a.q_raw + static_cast<size_t>(tile.x + t) * qkv_width + static_cast<size_t>(kvh) * group * D + p * 8, true);
  }
  cp_async_commit();
}

constexpr int kStageBarrier = 4;  // the consumers' named barrier around the staged query rows

// grid: up to one block an SM, each walking items (query tile, KV head) as BlockItems orders them.
// Warps 0-7 (two consumer warpgroups, each with up to 16 / group tokens of the tile a warp)
// multiply; warps 8-11 (the producer) stage the K/V tiles. The consumers never wait for each
// other, only for their tiles, so one's softmax runs beside the other's wgmma.
template <int D, KvType KV, bool FP8S, bool FP8V, bool PAIRS>
__global__ void __launch_bounds__(kThreads, 1) prefill_attention_sm90_ws_kernel(AttentionArgs a, float scale_log2) {
  using S = WsSmem<D, KV, FP8S, FP8V, PAIRS>;
  constexpr bool F16 = S::kBytes1;  // one-byte caches widen to f16; bf16 stays bf16
  constexpr int KC = D / 16;        // k-steps of Q K^T
  constexpr int NT = kTile / 8;     // 8-position score tiles
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzle atoms must start 1024-byte aligned (the descriptors' base offset is 0).
  unsigned char* smem = smem_raw + ((1024u - (smem_address(smem_raw) & 1023u)) & 1023u);
  unsigned char* slots = smem;
  unsigned char* raw = smem + S::kSlotBytes;
  __nv_bfloat16* staged_q = reinterpret_cast<__nv_bfloat16*>(raw + S::kRawBytes);
  int* staged_pos = reinterpret_cast<int*>(raw + S::kRawBytes + S::kQueryBytes);
  uint64_t* full = reinterpret_cast<uint64_t*>(raw + S::kRawBytes + S::kQueryBytes + S::kPositionBytes);
  uint64_t* empty = full + S::kSlots;
  if (threadIdx.x == 0) {
    for (int k = 0; k < S::kSlots; ++k) {
      mbarrier_init(&full[k], kProducerThreads);
      mbarrier_init(&empty[k], kConsumerThreads);
    }
  }
  __syncthreads();
  pdl_wait();
  const BlockItems bi{a.num_tiles * a.kv_heads, a.kv_heads};
  const int group = a.heads / a.kv_heads;

  if (threadIdx.x >= kConsumerThreads) {
    warpgroup_registers_dec<kProducerRegisters>();
    produce_tiles<D, KV, FP8S, FP8V, PAIRS>(a, bi, slots, raw, full, empty);
    return;
  }
  warpgroup_registers_inc<kConsumerRegisters>();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int per_warp = kRows / group, wg_begin = (warp / 4) * 4 * per_warp;
  auto slot_at = [&](int g) { return slots + (g % S::kSlots) * S::kTileBytes; };

  int n = 0, item = bi.item(0);
  int2 tile = a.tiles[item / a.kv_heads];
  stage_queries<D>(a, tile, item % a.kv_heads, group, staged_q, staged_pos);
  cp_async_wait<0>();
  named_barrier_sync<kStageBarrier, kConsumerThreads>();
  for (int g = 0;;) {  // g: the block's tiles before this item's
    const int kvh = item % a.kv_heads;
    const int next = bi.item(n + 1);
    const int2 next_tile = next >= 0 ? a.tiles[next / a.kv_heads] : make_int2(0, 0);
    // The warp's tokens [first, first + count) of the tile, and their positions from the stage.
    const int first = tile.x + warp * per_warp;
    const int count = max(0, min(per_warp, tile.y - warp * per_warp));
    const int block_last = staged_pos[tile.y - 1];
    const int tiles_total = block_last / kTile + 1;
    // A warpgroup's four warps multiply together, so it walks every tile one of them needs: up to
    // the position of its last token (-1: it has none).
    const int wg_end = min(tile.y, wg_begin + 4 * per_warp);
    const int wg_last = wg_end > wg_begin ? staged_pos[wg_end - 1] : -1;
    // Tiles wholly at or before the warp's first position are visible to all its rows: no causal mask.
    const int first_pos = count > 0 ? staged_pos[first - tile.x] : INT_MAX;

    int row_pos[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int tk = (lane / 4 + 8 * h) / group;
      row_pos[h] = tk < count ? staged_pos[first - tile.x + tk] : -1;
    }
    // q as A fragments: f16 / bf16 k16 steps, or (FP8S) E4M3 k32 steps with each row's scale.
    uint32_t qf[FP8S ? D / 32 : KC][4];
    float q_scale[2] = {1.0f, 1.0f};
    const __nv_bfloat16* q_rows = staged_q + static_cast<size_t>(first - tile.x) * group * D;
    if constexpr (FP8S)
      turn_query_rows_e4m3<D>(a, q_rows, static_cast<size_t>(group) * D, 0, count, group, kvh, lane, row_pos, qf, q_scale);
    else
      turn_query_rows<D, F16>(a, q_rows, static_cast<size_t>(group) * D, 0, count, group, kvh, lane, row_pos, qf);
    // Every consumer has its rows: the next item's go into the stage while this one's tiles run.
    named_barrier_sync<kStageBarrier, kConsumerThreads>();
    if (next >= 0) stage_queries<D>(a, next_tile, next % a.kv_heads, group, staged_q, staged_pos);

    if constexpr (PAIRS) {
      // PAIRS rides on FP8 scores and values (WsSmem). The scores' scale into log2 units a row (they
      // come in units of q's row scale, > 0; kept off float's subnormals, where -inf times a flushed 0
      // would be NaN).
      const float row_scale[2] = {fmaxf(q_scale[0] * scale_log2, 0x1p-100f), fmaxf(q_scale[1] * scale_log2, 0x1p-100f)};
      // O (the warpgroup's 64 rows x D) as accumulator fragments; online-softmax state as
      // attention_prefill.cu keeps it; P as E4M3 A fragments a tile of the iteration, 32 positions a
      // k-step of P V in TransposePlan's order.
      constexpr int TPI = S::kTilesPerIteration;
      float acc[D / 8][4] = {};
      float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
      uint32_t pf[TPI][kTile / 32][4] = {};
      // A warpgroup multiplies the tiles up to its last row's position (monotone: true, then false).
      auto needed = [&](int i) { return i * kTile <= wg_last; };
      // Tile i's slot; the second of a pair past the item's last tile reads the first's again (its
      // scores are all masked, its P zeros), so every iteration issues the same wgmma.
      auto tile_at = [&](int i) { return smem_address(slot_at(g + min(i, tiles_total - 1))); };
      const int iterations = (tiles_total + TPI - 1) / TPI;

      // Software pipeline (FlashAttention-3's intra-warpgroup overlap): iteration k's Q K^T (TPI
      // tiles) and iteration k - 1's P V go out together, and iteration k's softmax runs while the
      // tensor cores do that P V. Scores first, so waiting for all but TPI wgmma groups leaves P V
      // running. The scores live only within an iteration: ptxas serializes every wgmma of a kernel
      // where a non-wgmma instruction might touch a running wgmma's accumulators, and carrying them
      // around the loop did. The arithmetic is that of the unpipelined loop: O = O * corr(k) + P(k) V(k).
      // Two tiles an iteration: one maximum, corr and rescale of O for 128 positions.
      for (int k = 0; k < iterations; ++k) {
        const int i0 = k * TPI;
        float s[TPI][NT][4];
#pragma unroll
        for (int t = 0; t < TPI; ++t)
          if (i0 + t < tiles_total) mbarrier_wait(&full[(g + i0 + t) % S::kSlots], static_cast<uint32_t>(((g + i0 + t) / S::kSlots) & 1));
        wgmma_fence();
#pragma unroll
        for (int t = 0; t < TPI; ++t) issue_scores_e4m3<D>(s[t], qf, tile_at(i0 + t));
#pragma unroll
        for (int t = 0; t < TPI; ++t) {
          if (k > 0) issue_values_e4m3<D, S::kKBytes>(acc, pf[t], tile_at(i0 - TPI + t));
          else wgmma_commit();  // (iteration -1's P V: none)
        }
        wgmma_wait<TPI>();  // iteration k's scores
#pragma unroll
        for (int t = 0; t < TPI; ++t) wgmma_fence_operands(s[t]);
        float corr[2] = {1.0f, 1.0f};
        if (needed(i0)) {
#pragma unroll
          for (int t = 0; t < TPI; ++t) mask_tile(s[t], i0 + t, first_pos, row_pos, lane);
          online_softmax_tiles<TPI, NT, kPLog2>(s, m, l, row_scale, corr, kPSlack);
        }
        wgmma_wait<0>();  // iteration k - 1's P V: its slots go back to the producer
        wgmma_fence_operands(acc);
#pragma unroll
        for (int t = 0; t < TPI; ++t) wgmma_fence_operands(pf[t]);
        if (k > 0)
#pragma unroll
          for (int t = 0; t < TPI; ++t) mbarrier_arrive(&empty[(g + i0 - TPI + t) % S::kSlots]);
        rescale_output<D>(acc, corr);
#pragma unroll
        for (int t = 0; t < TPI; ++t) pack_p_e4m3(pf[t], s[t], needed(i0), 1.0f);
      }
      // The last iteration's P V (an item has at least one tile) and the warp's rows of O, then its
      // tiles' slots go back (as the single-tile loop's finish_rows).
      const int last0 = (iterations - 1) * TPI;
      finish_rows_with<D, KV>(acc, l, tiles_total, [&] {
#pragma unroll
        for (int t = 0; t < TPI; ++t) issue_values_e4m3<D, S::kKBytes>(acc, pf[t], tile_at(last0 + t));
      }, a, first, count, group, kvh, lane);
#pragma unroll
      for (int t = 0; t < TPI; ++t)
        if (last0 + t < tiles_total) mbarrier_arrive(&empty[(g + last0 + t) % S::kSlots]);
      g += tiles_total;
    } else {
      // O (the warpgroup's 64 rows x D) as accumulator fragments; online-softmax state as
      // attention_prefill.cu keeps it; P as A fragments, 16 positions (score tiles 2c, 2c + 1) a
      // k-step of P V, or (FP8V) 32 as E4M3 in TransposePlan's order.
      float acc[D / 8][4] = {};
      float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
      constexpr int PK = FP8V ? kTile / 32 : kTile / 16;
      uint32_t pf[PK][4] = {};
      // A warpgroup multiplies the tiles up to its last row's position (monotone: true, then false).
      auto needed = [&](int i) { return i * kTile <= wg_last; };

      // Software pipeline (FlashAttention-3's intra-warpgroup overlap): tile i's Q K^T and tile i - 1's
      // P V go out together, and tile i's softmax runs while the tensor cores do that P V. Two wgmma
      // groups an iteration, scores first, so waiting for all but one leaves P V running. The scores
      // live only within an iteration: ptxas serializes every wgmma of a kernel where a non-wgmma
      // instruction might touch a running wgmma's accumulators, and carrying them around the loop did.
      // The arithmetic is that of the unpipelined loop: O = O * corr(i) + P(i) V(i).
      for (int i = 0; i < tiles_total; ++i) {
        float s[NT][4];
        mbarrier_wait(&full[(g + i) % S::kSlots], static_cast<uint32_t>(((g + i) / S::kSlots) & 1));
        wgmma_fence();
        if constexpr (FP8S) issue_scores_e4m3<D>(s, qf, smem_address(slot_at(g + i)));
        else issue_scores<D, F16>(s, qf, smem_address(slot_at(g + i)));
        if (i > 0) {
          if constexpr (FP8V) issue_values_e4m3<D, S::kKBytes>(acc, pf, smem_address(slot_at(g + i - 1)));
          else issue_values<D, KV, S::kKBytes>(acc, pf, smem_address(slot_at(g + i - 1)));
        } else {
          wgmma_commit();  // (tile -1's P V: none)
        }
        wgmma_wait<1>();  // tile i's scores
        wgmma_fence_operands(s);
        if constexpr (FP8S) {  // scores in units of q's row scale
  #pragma unroll
          for (int j = 0; j < NT; ++j)
  #pragma unroll
            for (int e = 0; e < 4; ++e) s[j][e] *= q_scale[e >> 1];
        }
        float corr[2] = {1.0f, 1.0f};
        if (needed(i)) mask_and_softmax(s, i, first_pos, row_pos, lane, m, l, scale_log2, corr);
        wgmma_wait<0>();  // tile i - 1's P V: its slot goes back to the producer
        wgmma_fence_operands(acc);
        wgmma_fence_operands(pf);
        if (i > 0) mbarrier_arrive(&empty[(g + i - 1) % S::kSlots]);
        if constexpr (FP8V) rescale_and_pack_e4m3<D>(acc, pf, s, corr, needed(i));
        else rescale_and_pack<D, F16>(acc, pf, s, corr, needed(i));
      }
      g += tiles_total;
      if constexpr (FP8V)
        finish_rows_e4m3<D, S::kKBytes>(acc, pf, l, tiles_total, smem_address(slot_at(g - 1)), a, first, count, group, kvh, lane);
      else
        finish_rows<D, KV, S::kKBytes>(acc, pf, l, tiles_total, smem_address(slot_at(g - 1)), a, first, count, group, kvh, lane);
      mbarrier_arrive(&empty[(g - 1) % S::kSlots]);  // the last tile's P V ran in finish_rows
    }
    if (next < 0) break;
    cp_async_wait<0>();  // this thread's copies of the next item's rows; the barrier: everyone's
    named_barrier_sync<kStageBarrier, kConsumerThreads>();
    ++n;
    item = next;
    tile = next_tile;
  }
}

template <int D, KvType KV, bool FP8S, bool FP8V = false, bool PAIRS = false>
void launch(const AttentionArgs& a, float scale_log2, int max_blocks, cudaStream_t s) {
  constexpr size_t shared = WsSmem<D, KV, FP8S, FP8V, PAIRS>::kBytes;
  allow_dynamic_shared<prefill_attention_sm90_ws_kernel<D, KV, FP8S, FP8V, PAIRS>>(shared);
  // The consumers' setmaxnreg.inc blocks until the producer's .dec frees enough of what the block
  // was launched with: a build that gave the kernel fewer registers would hang, so it fails here.
  static const int launch_registers = [] {
    cudaFuncAttributes attr{};
    CUDA_CHECK(cudaFuncGetAttributes(&attr, prefill_attention_sm90_ws_kernel<D, KV, FP8S, FP8V, PAIRS>));
    return attr.numRegs;
  }();
  if (launch_registers < kLaunchRegisters)
    fail("prefill attention (sm_90): the kernel was built with ", launch_registers, " registers a thread, not ", kLaunchRegisters);
  if (!a.q_raw) fail("prefill attention (sm_90, warp-specialized): q must come unturned (AttentionArgs::q_raw)");
  const int items = a.num_tiles * a.kv_heads;
  launch_pdl("prefill_attention_sm90_ws_kernel", prefill_attention_sm90_ws_kernel<D, KV, FP8S, FP8V, PAIRS>, dim3(std::min(items, max_blocks)),
             kThreads, shared, s, a, scale_log2);
}

}  // namespace

bool prefill_fp8_scores_supports(int head_dim, KvType kv) { return head_dim == 128 && kv == KvType::kE4M3; }

void launch_prefill_attention_sm90_ws(const AttentionArgs& a, int max_blocks, bool fp8_scores, bool fp8_values, bool pairs,
                                      cudaStream_t s) {
  if (max_blocks < 1) fail("prefill attention (sm_90, warp-specialized): max_blocks ", max_blocks);
  if (fp8_scores && !prefill_fp8_scores_supports(a.head_dim, a.kv.type))
    fail("prefill attention (sm_90, warp-specialized): FP8 scores need an E4M3 cache at head_dim 128");
  if (fp8_values && !fp8_scores) fail("prefill attention (sm_90, warp-specialized): FP8 values ride on FP8 scores");
  if (pairs && !fp8_values) fail("prefill attention (sm_90, warp-specialized): paired tiles ride on FP8 values");
  launch_by_head_dim_and_cache(a, "prefill attention (sm_90, warp-specialized)", [&](auto d, auto kv, float scale_log2) {
    constexpr int D = decltype(d)::value;
    constexpr KvType KV = decltype(kv)::value;
    if constexpr (D == 128 && KV == KvType::kE4M3) {
      if (pairs) {
        launch<D, KV, true, true, true>(a, scale_log2, max_blocks, s);
        return;
      }
      if (fp8_values) {
        launch<D, KV, true, true>(a, scale_log2, max_blocks, s);
        return;
      }
      if (fp8_scores) {
        launch<D, KV, true>(a, scale_log2, max_blocks, s);
        return;
      }
    }
    launch<D, KV, false>(a, scale_log2, max_blocks, s);
  });
}

}  // namespace tachyon
