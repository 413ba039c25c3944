// Prefill attention on Hopper (sm_90a), warp-specialized as FlashAttention-3: the tiles, rows,
// softmax and order of arithmetic of attention_prefill_sm90.cu (so the same bits), but a producer
// warpgroup stages the K/V tiles (cp.async of the paged rows, then for one-byte caches the
// widening) into a ring of slots and hands each over through an mbarrier; the two consumer
// warpgroups take a slot when it is full and give it back once their P V of it has run. The
// consumers never wait for each other, so one's softmax overlaps the other's wgmma; in
// attention_prefill_sm90.cu both meet at two __syncthreads a tile and widen the tile themselves
// (H200, ncu: 647 instructions a warp a tile, issue slots 31% busy, tensor pipe 25%).
//
// Opt-in (CudaKnobs.warpSpecializedPrefill): on the H200 it ran no faster than the other kernel.
// Built with CUDAFLAGS=-DTACHYON_PREFILL_PINGPONG=1, the consumers also take turns at the tensor
// cores, as FlashAttention-3's ping-pong does: the same bits (its GPU test passes), and 2048/128
// no faster (3,353 output tok/s against 3,349 without, one H200, twelfth session), as ncu's tensor
// pipe at 25% busy suggested: the consumers do not wait for the tensor cores.
#include <climits>

#include "cuda/attention.h"
#include "cuda/attention_parts.cuh"
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

template <int D, KvType KV>
struct WsSmem : Sm90Tile<D, KV> {
  using T = Sm90Tile<D, KV>;
  using T::kBytes1, T::kTileBytes, T::kRawStageBytes;
  // The ring the tensor cores read: a consumer warpgroup holds tile i - 1 (its P V may run) and
  // tile i while the producer fills the next ones. One-byte caches land raw in the producer's own
  // ring (kAhead tiles of copies in flight beside the one it widens); bf16 lands in the slots.
  static constexpr int kAhead = kBytes1 ? 2 : 3;
  static constexpr int kSlots = kBytes1 ? 4 : 6;
  // bf16: while handing tile k over the producer waits for tile k + kAhead's slot, given back in
  // the consumers' iteration k + kAhead - kSlots + 1, which needs a tile already handed over.
  static_assert(kBytes1 ? kSlots >= 2 : kSlots >= kAhead + 2, "the ring must not wait on itself");
  static constexpr int kRawStages = kBytes1 ? kAhead + 1 : 0;
  static constexpr int kSlotBytes = kSlots * kTileBytes;
  static constexpr int kRawBytes = kRawStages * kRawStageBytes;
  // + slack to align atoms to 1024, then a full and an empty barrier a slot.
  static constexpr int kBytes = 1024 + kSlotBytes + kRawBytes + 2 * kSlots * 8;
};

// The producer warpgroup: each tile's copies into the ring (one-byte caches: into its raw stages,
// then widened into the slot), the slot handed over through full[], taken back through empty[]
// once both consumer warpgroups' P V of it has run. Slot k % kSlots's phases alternate, so the
// parity a wait names is (k / kSlots) & 1; a producer waits for the phase before (a fresh
// barrier's "previous phase" has completed, so its first pass through the ring does not block).
template <int D, KvType KV>
__device__ __forceinline__ void produce_tiles(const AttentionArgs& a, const int32_t* table, int kvh, int tiles_total,
                                             int block_last, unsigned char* slots, unsigned char* raw, uint64_t* full,
                                             uint64_t* empty) {
  using S = WsSmem<D, KV>;
  constexpr int A = S::kAhead;
  const int ptid = threadIdx.x - kConsumerThreads;
  const StagePlan<D, KV, kProducerThreads> plan(ptid);
  auto slot_at = [&](int k) { return slots + (k % S::kSlots) * S::kTileBytes; };
  auto empty_parity = [](int k) { return static_cast<uint32_t>(((k / S::kSlots) & 1) ^ 1); };
  typename StagePlan<D, KV, kProducerThreads>::Fetched ahead{};
  if constexpr (S::kBytes1) {
    const WidenPlan<D, KV, kProducerThreads> widen(ptid);
    auto raw_at = [&](int k) { return raw + (k % S::kRawStages) * S::kRawStageBytes; };
    for (int k = 0; k < A; ++k) {
      if (k < tiles_total) plan.copy(raw_at(k), a, plan.fetch(a, table, k, block_last, ptid), kvh, ptid);
      else cp_async_commit();
    }
    if (A < tiles_total) ahead = plan.fetch(a, table, A, block_last, ptid);
    for (int k = 0; k < tiles_total; ++k) {
      cp_async_wait<A - 1>();  // this thread's copies of tile k (tiles 0 .. k + A - 1 were committed)
      // Every producer thread's copies of tile k landed, and every one is done widening tile k - 1,
      // whose stage tile k + A's copies take now.
      named_barrier_sync<1, kProducerThreads>();
      if (k + A < tiles_total) {
        plan.copy(raw_at(k + A), a, ahead, kvh, ptid);
        if (k + A + 1 < tiles_total) ahead = plan.fetch(a, table, k + A + 1, block_last, ptid);
      } else {
        cp_async_commit();  // one group a tile, empty past the end, so the wait count stays fixed
      }
      mbarrier_wait(&empty[k % S::kSlots], empty_parity(k));
      widen.run(raw_at(k), slot_at(k));
      fence_proxy_async_shared();  // these writes, before the wgmma that read them
      mbarrier_arrive(&full[k % S::kSlots]);
    }
  } else {
    auto copy_into_slot = [&](int k, const typename StagePlan<D, KV, kProducerThreads>::Fetched& f) {
      mbarrier_wait(&empty[k % S::kSlots], empty_parity(k));
      plan.copy(slot_at(k), a, f, kvh, ptid);
    };
    for (int k = 0; k < A; ++k) {
      if (k < tiles_total) copy_into_slot(k, plan.fetch(a, table, k, block_last, ptid));
      else cp_async_commit();
    }
    if (A < tiles_total) ahead = plan.fetch(a, table, A, block_last, ptid);
    for (int k = 0; k < tiles_total; ++k) {
      if (k + A < tiles_total) {
        copy_into_slot(k + A, ahead);
        if (k + A + 1 < tiles_total) ahead = plan.fetch(a, table, k + A + 1, block_last, ptid);
      } else {
        cp_async_commit();
      }
      cp_async_wait<A>();  // this thread's copies of tile k (tiles 0 .. k + A were committed)
      fence_proxy_async_shared();
      mbarrier_arrive(&full[k % S::kSlots]);
    }
  }
}

// grid: (tile, KV head). Warps 0-7 (two consumer warpgroups, each with up to 16 / group tokens of
// the tile a warp) multiply; warps 8-11 (the producer) stage the K/V tiles. The consumers never
// wait for each other, only for their tiles, so one's softmax runs beside the other's wgmma.
template <int D, KvType KV>
__global__ void __launch_bounds__(kThreads, 1) prefill_attention_sm90_ws_kernel(AttentionArgs a, float scale_log2) {
  using S = WsSmem<D, KV>;
  constexpr bool F16 = S::kBytes1;  // one-byte caches widen to f16; bf16 stays bf16
  constexpr int KC = D / 16;        // k-steps of Q K^T
  constexpr int NT = kTile / 8;     // 8-position score tiles
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzle atoms must start 1024-byte aligned (the descriptors' base offset is 0).
  unsigned char* smem = smem_raw + ((1024u - (smem_address(smem_raw) & 1023u)) & 1023u);
  unsigned char* slots = smem;
  unsigned char* raw = smem + S::kSlotBytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(raw + S::kRawBytes);
  uint64_t* empty = full + S::kSlots;
  if (threadIdx.x == 0) {
    for (int k = 0; k < S::kSlots; ++k) {
      mbarrier_init(&full[k], kProducerThreads);
      mbarrier_init(&empty[k], kConsumerThreads);
    }
  }
  __syncthreads();
  pdl_wait();
  const int kvh = blockIdx.y;
  const int2 tile = a.tiles[blockIdx.x];
  const int group = a.heads / a.kv_heads;
  const int32_t* table = a.block_tables + static_cast<size_t>(a.token_seq[tile.x]) * a.table_stride;
  const int block_last = a.positions[tile.x + tile.y - 1];
  const int tiles_total = block_last / kTile + 1;

  if (threadIdx.x >= kConsumerThreads) {
    warpgroup_registers_dec<kProducerRegisters>();
    produce_tiles<D, KV>(a, table, kvh, tiles_total, block_last, slots, raw, full, empty);
    return;
  }
  warpgroup_registers_inc<kConsumerRegisters>();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const WarpQueries wq = warp_queries<kRows>(a, tile, group, warp);
  const int first = wq.first, count = wq.count;
  // A warpgroup's four warps multiply together, so it walks every tile one of them needs: up to
  // the position of its last token (-1: it has none).
  const int per_warp = kRows / group, wg_begin = (warp / 4) * 4 * per_warp;
  const int wg_end = min(tile.y, wg_begin + 4 * per_warp);
  const int wg_last = wg_end > wg_begin ? a.positions[tile.x + wg_end - 1] : -1;
  // Tiles wholly at or before the warp's first position are visible to all its rows: no causal mask.
  const int first_pos = count > 0 ? a.positions[first] : INT_MAX;

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
  auto slot_at = [&](int k) { return slots + (k % S::kSlots) * S::kTileBytes; };
#if TACHYON_PREFILL_PINGPONG
  // Ping-pong: warpgroup w issues an iteration's wgmma after a named barrier (2 + w) that the other
  // warpgroup arrives at once it has issued its own, so their products alternate and one's softmax
  // runs while the other's products do. Warpgroup 1's first arrival lets warpgroup 0 go first; it
  // skips its last so that both barriers see as many arrivals as waits (tiles_total each).
  const int wg = warp / 4;
  if (wg == 1) named_barrier_arrive<kConsumerThreads>(2);
#endif

  // Software pipeline (FlashAttention-3's intra-warpgroup overlap): tile i's Q K^T and tile i - 1's
  // P V go out together, and tile i's softmax runs while the tensor cores do that P V. Two wgmma
  // groups an iteration, scores first, so waiting for all but one leaves P V running. The scores
  // live only within an iteration: ptxas serializes every wgmma of a kernel where a non-wgmma
  // instruction might touch a running wgmma's accumulators, and carrying them around the loop did.
  // The arithmetic is that of the unpipelined loop: O = O * corr(i) + P(i) V(i).
  for (int i = 0; i < tiles_total; ++i) {
    float s[NT][4];
    mbarrier_wait(&full[i % S::kSlots], static_cast<uint32_t>((i / S::kSlots) & 1));
#if TACHYON_PREFILL_PINGPONG
    named_barrier_sync<kConsumerThreads>(2 + wg);
#endif
    wgmma_fence();
    issue_scores<D, F16>(s, qf, smem_address(slot_at(i)));
    if (i > 0) issue_values<D, KV>(acc, pf, smem_address(slot_at(i - 1)));
    else wgmma_commit();  // (tile -1's P V: none)
#if TACHYON_PREFILL_PINGPONG
    if (wg == 0 || i + 1 < tiles_total) named_barrier_arrive<kConsumerThreads>(3 - wg);
#endif
    wgmma_wait<1>();  // tile i's scores
    wgmma_fence_operands(s);
    float corr[2] = {1.0f, 1.0f};
    if (needed(i)) mask_and_softmax(s, i, first_pos, row_pos, lane, m, l, scale_log2, corr);
    wgmma_wait<0>();  // tile i - 1's P V: its slot goes back to the producer
    wgmma_fence_operands(acc);
    wgmma_fence_operands(pf);
    if (i > 0) mbarrier_arrive(&empty[(i - 1) % S::kSlots]);
    rescale_and_pack<D, F16>(acc, pf, s, corr, needed(i));
  }
  finish_rows<D, KV>(acc, pf, l, tiles_total, smem_address(slot_at(tiles_total - 1)), a, first, count, group, kvh, lane);
}

template <int D, KvType KV>
void launch(const AttentionArgs& a, float scale_log2, cudaStream_t s) {
  constexpr size_t shared = WsSmem<D, KV>::kBytes;
  allow_dynamic_shared<prefill_attention_sm90_ws_kernel<D, KV>>(shared);
  // The consumers' setmaxnreg.inc blocks until the producer's .dec frees enough of what the block
  // was launched with: a build that gave the kernel fewer registers would hang, so it fails here.
  static const int launch_registers = [] {
    cudaFuncAttributes attr{};
    CUDA_CHECK(cudaFuncGetAttributes(&attr, prefill_attention_sm90_ws_kernel<D, KV>));
    return attr.numRegs;
  }();
  if (launch_registers < kLaunchRegisters)
    fail("prefill attention (sm_90): the kernel was built with ", launch_registers, " registers a thread, not ", kLaunchRegisters);
  launch_pdl("prefill_attention_sm90_ws_kernel", prefill_attention_sm90_ws_kernel<D, KV>, dim3(a.num_tiles, a.kv_heads), kThreads,
             shared, s, a, scale_log2);
}

}  // namespace

void launch_prefill_attention_sm90_ws(const AttentionArgs& a, cudaStream_t s) {
  launch_by_head_dim_and_cache(a, "prefill attention (sm_90, warp-specialized)", [&](auto d, auto kv, float scale_log2) {
    launch<decltype(d)::value, decltype(kv)::value>(a, scale_log2, s);
  });
}

}  // namespace tachyon
