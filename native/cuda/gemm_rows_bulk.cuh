// The few-row GEMM with its weights streamed in bursts (CUDAFLAGS=-DTACHYON_ROW_GEMM_BULK=SPAN, FP8
// only, one block an SM; not measured yet): each of a block's F weight rows comes SPAN contiguous
// bytes at a time by one cp.async.bulk (256 to 1,024: 2 to 8 of the ring kernel's stages; at 2,048
// no instance fits three slots, see BulkRing), rather than 128 bytes a row a stage by cp.async. Why: at one token Llama-3-8B's O, down and QKV stream at
// about 2.8 TB/s whatever their blocks' sizes, while a read in address order reaches 4.3; if
// bench/weight-stream.sh's `bulk` rows beat its `ring` rows, the pattern of short reads spread over
// thousands of rows is the limit, and this is that pattern inside the GEMM.
//
// A bulk copy lands a row's bytes contiguously, not in wgmma's swizzle atoms, so the weights reach
// the tensor cores through registers: each warp loads its 16 rows of a 128-byte stage with
// ldmatrix.x4 (rows SPAN + 16 bytes apart, so that a matrix's 8 rows fall in different banks) as
// the A fragments of wgmma m64nTNk32, two fragment sets taking turns, and B, the token rows, comes
// through a descriptor from swizzle atoms as in the ring kernel. The same products summed in the
// same order, one chain from zero: the same bits.
//
// Warp 4 copies: each burst's weight rows (one bulk copy a row, completing on the slot's `full`
// barrier with the bytes it expects), before pdl_wait() for the first ring of bursts; then the
// burst's token atoms by cp.async after it, which it waits for, fences for the tensor cores and
// arrives on `full` with one burst's delay, so that the next burst's copies go out first. The
// warpgroup gives a slot back on `empty` at the end of its burst, once its wgmma are done (a wait
// for all of them: a stage's wgmma wait on the last one's accumulators anyway, so it costs the next
// stage's loads' latency once a burst, and no slot sits multiplied-but-held while the warpgroup
// waits for the next).
//
// At least three slots: the copying warp hands burst b - 1 over only after it has taken burst b's
// slot, so with two the warpgroup would wait at every burst for the one before to be given back,
// with a single burst's weights in flight meanwhile.
#pragma once
#include "cuda/gemm_rows_parts.cuh"
#include "cuda/mbarrier.cuh"
#include "cuda/pdl.cuh"

namespace tachyon {
namespace row_gemm {

// A slot: the burst's token atoms (SPAN / 128 atoms of TN rows, swizzled; first, so 1,024-byte
// aligned) and its F weight rows (SPAN + 16 bytes apart), rounded up to 1,024 bytes; as many slots
// as fit one block an SM beside the two barriers a slot, at most 8.
template <int TN, int F, int SPAN>
struct BulkRing {
  static_assert(SPAN >= 256 && SPAN % kAtomBytes == 0 && (SPAN & (SPAN - 1)) == 0,
                "bursts of a power of two bytes, two stages at least, so that every burst but the last has an even count");
  static constexpr int kPitch = SPAN + 16;
  static constexpr int kTokenBytes = TN * SPAN;
  static constexpr int kSlotBytes = (kTokenBytes + F * kPitch + 1023) / 1024 * 1024;
  static constexpr int kFit = (kSmemSolo - 1024) / (kSlotBytes + 16);
  static constexpr int kSlots = kFit < 8 ? kFit : 8;
  static constexpr int kBytes = 1024 + kSlots * kSlotBytes + 2 * kSlots * 8;
  // Three slots at least (see the top of the file).
  static constexpr bool kFits = kSlots >= 3;
};

// grid: one block per F weight rows, one an SM; kThreads threads.
template <typename Out, int TN, int F, int SPAN>
__global__ void __launch_bounds__(kThreads, 1) row_gemm_bulk_kernel(RowGemmArgs g) {
  static_assert(F % 16 == 0 && F <= kFeatures, "whole warps' rows of the tile");
#if TACHYON_WGMMA
  using R = BulkRing<TN, F, SPAN>;
  static_assert(R::kFits, "three slots at least");
  constexpr int kStagesBurst = SPAN / kAtomBytes;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* ring = smem_raw + ((1024u - (smem_address(smem_raw) & 1023u)) & 1023u);
  uint64_t* full = reinterpret_cast<uint64_t*>(ring + R::kSlots * R::kSlotBytes);
  uint64_t* empty = full + R::kSlots;
  auto tokens_of = [&](int slot) { return ring + slot * R::kSlotBytes; };
  auto weights_of = [&](int slot) { return ring + slot * R::kSlotBytes + R::kTokenBytes; };
  const int t = threadIdx.x, lane = t % 32;
  const int n0 = blockIdx.x * F;
  const int bursts = (g.row_bytes + SPAN - 1) / SPAN;
  auto burst_bytes = [&](int b) { return min(SPAN, g.row_bytes - b * SPAN); };  // of each row
  if (t == 0) {
    for (int s = 0; s < R::kSlots; ++s) {
      mbarrier_init(&full[s], 2);   // the weights' expected bytes, and the tokens' arrival
      mbarrier_init(&empty[s], 4);  // a warp of the warpgroup each
    }
    mbarrier_init_fence();
  }
  __syncthreads();

  if (__shfl_sync(0xffffffffu, t / kMmaThreads, 0) != 0) {
    // The copying warp.
    const int rows = min(F, g.N - n0);
    const unsigned char* W = g.W + static_cast<size_t>(n0) * g.w_stride;
    auto copy_weights = [&](int b) {
      const int s = b % R::kSlots, bytes = burst_bytes(b);
      if (lane == 0) mbarrier_expect_bytes(&full[s], static_cast<uint32_t>(rows * bytes));
      __syncwarp();
      for (int r = lane; r < rows; r += 32)
        bulk_copy_to_shared(weights_of(s) + r * R::kPitch, W + static_cast<size_t>(r) * g.w_stride + b * SPAN, bytes, &full[s]);
    };
    const TokenCopies<TN> tokens(g, lane);
    const NextPrefetch next(g, bursts);
    auto copy_tokens = [&](int b) {
      const int s = b % R::kSlots, atoms = burst_bytes(b) / kAtomBytes;
      for (int a = 0; a < atoms; ++a) tokens.copy(tokens_of(s) + a * TN * kAtomBytes, b * kStagesBurst + a);
      cp_async_commit();
      next.issue(g, b, lane);
    };
    // Burst b's tokens landed (its group and those before): visible to the tensor cores, then handed over.
    auto tokens_ready = [&](int b) {
      fence_proxy_async_shared();
      __syncwarp();
      if (lane == 0) mbarrier_arrive(&full[b % R::kSlots]);
    };
    const int first = min(R::kSlots, bursts);
    for (int b = 0; b < first; ++b) copy_weights(b);
    // CudaKnobs.rowGemmPrefetchMiB: the rows past those bursts on their way into L2 too.
    if (g.prefetch_row_bytes > 0) {
      const int from = first * SPAN, bytes = min(g.row_bytes - from, g.prefetch_row_bytes);
      if (bytes > 0)
        for (int r = lane; r < rows; r += 32) prefetch_l2(W + static_cast<size_t>(r) * g.w_stride + from, bytes);
    }
    pdl_wait();
    for (int b = 0; b < bursts; ++b) {
      if (b >= R::kSlots) {
        mbarrier_wait(&empty[b % R::kSlots], ((b / R::kSlots) & 1) ^ 1);
        copy_weights(b);
      }
      copy_tokens(b);
      if (b > 0) {
        cp_async_wait<1>();
        tokens_ready(b - 1);
      }
    }
    cp_async_wait<0>();
    tokens_ready(bursts - 1);
    return;
  }

  // The warpgroup.
  pdl_wait();
  const int warp = t / 32;
  const RowEpilogue<true, Out, TN> epilogue(g, n0, F, warp, lane);
  const AFragmentLane at(warp, lane);
  const bool has_rows = warp * 16 < F;  // warps past F keep zeros: rows never copied
  float d[TN / 8][4] = {};
  uint32_t a[2][kAtomBytes / kStepBytes][4] = {};
  int k = 0;  // stages multiplied so far
  // Stage j of the burst in slot s, into fragment set `frag` (last read by stage k - 2's wgmma).
  auto multiply = [&](int s, int j, uint32_t(&frag)[kAtomBytes / kStepBytes][4]) {
    wgmma_wait<1>();  // stage k - 2's group, and with it its fragments
    wgmma_fence_operands(frag);
    if (has_rows) {
      const unsigned char* w = weights_of(s) + at.row * R::kPitch + j * kAtomBytes + at.half * 16;
#pragma unroll
      for (int step = 0; step < kAtomBytes / kStepBytes; ++step) ldmatrix_x4(frag[step], w + step * kStepBytes);
    }
    const uint32_t x = smem_address(tokens_of(s) + j * TN * kAtomBytes);
    wgmma_fence();
#pragma unroll
    for (int step = 0; step < kAtomBytes / kStepBytes; ++step)
      wgmma_rs_32_bytes_e4m3<TN>(d, frag[step], sw128_desc(x + step * kStepBytes, 16, 8 * kAtomBytes), k > 0 || step > 0);
    wgmma_commit();
    ++k;
  };
  for (int b = 0; b < bursts; ++b) {
    const int s = b % R::kSlots, stages = burst_bytes(b) / kAtomBytes;
    mbarrier_wait(&full[s], (b / R::kSlots) & 1);
    // Every burst but the last has an even number of stages, so stage k takes set k % 2.
    for (int j = 0; j < stages; j += 2) {
      multiply(s, j, a[0]);
      if (j + 1 < stages) multiply(s, j + 1, a[1]);
    }
    wgmma_wait<0>();  // the burst's last wgmma has read its token atoms
    wgmma_fence_operands(d);
    if (lane == 0) mbarrier_arrive(&empty[s]);
  }
  // The last burst's wait saw every wgmma done: the fragments may go.
  wgmma_fence_operands(a[0]);
  wgmma_fence_operands(a[1]);
  epilogue.write(g, d);
#endif
}

}  // namespace row_gemm
}  // namespace tachyon
