// The few-row GEMMs of gemm_rows.h. They are memory-bound: at one token a 4,096 x 14,336 FP8
// projection streams its 58.7 MB of weights once (about 14 us at the H200's 4.3 TB/s), and a
// 4,096-feature projection has at most 128 blocks for 132 SMs, so each block must keep many weight
// bytes in flight on its own: a deep ring of cp.async stages.
//
// A block: F = 32, 48 or 64 weight rows (features) times all the tokens (wgmma's N, padded to TN =
// 8, 16, 32 or 64; the padding rows are zeros and never written out). wgmma's M is 64 whatever F:
// rows F to 63 of a stage's weight tile are never copied and their products never written, and
// each product row depends on its own weight row only, so F does not change a feature's bits. A
// projection of few features takes F < 64 to spread over the SMs (bandwidth a block is bounded:
// 4,096 features in 64-row blocks streamed at about 48 GB/s an SM, 3.1 TB/s on 64 SMs). A stage is 128 bytes of K: the
// 64 weight rows' (8 KB) and the TN activation rows', each a column of 128-byte swizzle atoms
// (8 rows x 128 bytes, the 16-byte chunk c of row r at chunk c ^ (r % 8)) that wgmma reads as
// K-major operands in four 32-byte k-steps (k32 E4M3 or k16 bf16). One accumulator chain over all
// of K in order, from zero: the arithmetic of cuBLASLt's non-split-K kernels.
//
// Warps 0-3 (the warpgroup) copy the weight tiles and issue the wgmma; warp 4 copies the activation
// tiles. They keep apart because one thread's cp.async groups complete in order: the weights do not
// depend on the previous kernel and go out before pdl_wait(), the activations only after it, so
// activation copies queued behind the prologue's weights would hold the first stage back until
// every prologue stage had landed, and the ring would drain once.
//
// The weight copies take the default L2 policy in the copy instruction itself. An evict-first one
// (cp.async's L2::cache_hint with createpolicy's descriptor) gave batch 1 2.95 ms a token against
// 3.07-3.16, but raised an illegal instruction on the H200 in the bf16 instance of 64 tokens, one
// block an SM and 32 features (the GPU suite's head_dim-128 models; bench/RESULTS.md, 2026-12-04),
// with the policy made at each copy, with zero fills left without it, and with a constant
// descriptor instead of createpolicy: a known ptxas 13.x fault (IST-DASLab/marlin#44, the copy's
// uniform descriptor register left unset). So each launch marks its weights streaming (first to go
// from L2) through an access-policy window instead, the host's way to the same end: batch 1 2.96 ms
// against 3.11 on one H200, the GPU suite green (bench/RESULTS.md, 2026-12-04, twelfth session).
// They are read once a step, so keeping them would only evict the activations and the KV blocks.
// CUDAFLAGS=-DTACHYON_ROW_GEMM_STREAMING=0 builds the plain launch, to measure against.
#ifndef TACHYON_ROW_GEMM_STREAMING
#define TACHYON_ROW_GEMM_STREAMING 1
#endif
//
// CUDAFLAGS=-DTACHYON_ROW_GEMM_A_REGISTERS=1 (FP8 only; not measured yet): the warps load their
// weight rows of each stage from shared memory into registers (ldmatrix) and the wgmma takes A
// from there, not through a descriptor. The same products, so the same bits; what may differ is
// how long each of a feature's K / 32 wgmma, each waiting on the one before, takes: at one token
// O and down may be bound by that chain rather than by their copies (bench/weight-stream.sh's
// `mma` and `mma rs` rows time the loop without memory both ways).
#ifndef TACHYON_ROW_GEMM_A_REGISTERS
#define TACHYON_ROW_GEMM_A_REGISTERS 0
#endif
//
// CUDAFLAGS=-DTACHYON_ROW_GEMM_BULK=1024 (FP8 only; not measured yet): one-block-an-SM launches
// (O, down and QKV at one token) take gemm_rows_bulk.cuh's kernel instead, each weight row copied
// 1,024 contiguous bytes at a time (the value: 256, 512 or 1,024) rather than 128 a stage.
#ifndef TACHYON_ROW_GEMM_BULK
#define TACHYON_ROW_GEMM_BULK 0
#endif
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/cuda_check.h"
#include "cuda/dynamic_shared.h"
#include "cuda/gemm_rows.h"
#include "cuda/gemm_rows_bulk.cuh"
#include "cuda/gemm_rows_parts.cuh"
#include "cuda/mma.cuh"
#include "cuda/pdl.cuh"
#include "cuda/wgmma.cuh"

namespace tachyon {

namespace {

using namespace row_gemm;

constexpr int kMaxStages = 16;  // 14 in flight: 112 KB of weights a block at F = 64, 56 KB at F = 32

template <int TN, bool SOLO>
struct Ring {
  static constexpr int kStageBytes = kWeightTileBytes + TN * kAtomBytes;
  static constexpr int kFit = ((SOLO ? kSmemSolo : kSmemPaired) - 1024) / kStageBytes;
  static constexpr int kStages = kFit < kMaxStages ? kFit : kMaxStages;
  // Stages in flight: all but the one being multiplied and the one before it, whose wgmma may still
  // be reading it.
  static constexpr int kAhead = kStages - 2;
  static constexpr int kBytes = 1024 + kStages * kStageBytes;
  static_assert(kAhead >= 2, "a ring of at least four stages");
};

// The device code, for sm_90a only (the other targets build empty kernels, never launched).
#if TACHYON_WGMMA
// A warpgroup thread's share of a stage's weight tile (its first F rows): chunk t % 8 of rows
// t / 8 + 16 i. Rows past N are zero-filled (their features are never written).
template <int F>
struct WeightCopies {
  static constexpr int kRows = F * kChunks / kMmaThreads;
  static constexpr int kRowStep = kMmaThreads / kChunks;
  const unsigned char* src[kRows];  // the chunk at stage 0; row 0's where the row is past N
  bool valid[kRows];
  uint32_t dst;                     // the first row's chunk in the tile; the others kRowStep rows on

  __device__ __forceinline__ WeightCopies(const RowGemmArgs& g, int n0, int t) {
    const int r = t / kChunks, c = t % kChunks;
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const int n = n0 + r + i * kRowStep;
      valid[i] = n < g.N;
      src[i] = g.W + (valid[i] ? static_cast<size_t>(n) * g.w_stride : 0) + c * 16;
    }
    dst = swizzled(r, c);  // r + i * kRowStep has the same r % 8
  }
  __device__ __forceinline__ void copy(unsigned char* tile, int atom) const {
#pragma unroll
    for (int i = 0; i < kRows; ++i)
      cp_async_16(tile + dst + i * kRowStep * kAtomBytes, src[i] + (valid[i] ? atom * kAtomBytes : 0), valid[i]);
  }
};

// The block's threads meet here once a stage: the warpgroup and the activation warp run loops of
// their own, with the same barriers in the same order.
__device__ __forceinline__ void stage_barrier() { asm volatile("bar.sync 0, %0;\n" ::"n"(kThreads) : "memory"); }

// The activation warp: stage k's token rows into its slot, kAhead stages ahead, after pdl_wait().
// NextWeights: it also asks the leading bytes of the block's share of the next projection's rows
// into L2, a few rows a stage, so that they go out at the pace of the block's own copies.
template <int TN, int STAGES, int AHEAD>
__device__ __forceinline__ void copy_tokens(const RowGemmArgs& g, unsigned char* ring, int stage_bytes, int atoms) {
  const int lane = threadIdx.x % 32;
  const TokenCopies<TN> tokens(g, lane);
  auto tile = [&](int k) { return ring + (k % STAGES) * stage_bytes + kWeightTileBytes; };
  const NextPrefetch next(g, atoms);
  for (int k = 0; k < AHEAD; ++k) {
    if (k < atoms) tokens.copy(tile(k), k);
    cp_async_commit();
  }
  for (int k = 0; k < atoms; ++k) {
    cp_async_wait<AHEAD - 1>();
    fence_proxy_async_shared();
    stage_barrier();
    if (k + AHEAD < atoms) tokens.copy(tile(k + AHEAD), k + AHEAD);
    cp_async_commit();
    next.issue(g, k, lane);
  }
}

#endif  // TACHYON_WGMMA

// grid: one block per F weight rows; kThreads threads.
template <bool FP8, typename Out, int TN, bool SOLO, int F>
__global__ void __launch_bounds__(kThreads, SOLO ? 1 : 2) row_gemm_kernel(RowGemmArgs g) {
  static_assert(F % 16 == 0 && F <= kFeatures, "whole warps' rows of the tile");
#if TACHYON_WGMMA
  using R = Ring<TN, SOLO>;
  constexpr bool kARegs = FP8 && TACHYON_ROW_GEMM_A_REGISTERS;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Swizzle atoms must start 1024-byte aligned (the descriptors' base offset is 0).
  unsigned char* ring = smem_raw + ((1024u - (smem_address(smem_raw) & 1023u)) & 1023u);
  const int t = threadIdx.x;
  const int atoms = g.row_bytes / kAtomBytes;
  // Warp-uniform, and visibly so to ptxas (a shuffle from lane 0): wgmma under a branch it cannot
  // prove uniform would be serialized.
  if (__shfl_sync(0xffffffffu, t / kMmaThreads, 0) != 0) {
    pdl_wait();
    copy_tokens<TN, R::kStages, R::kAhead>(g, ring, R::kStageBytes, atoms);
    return;
  }

  // The warpgroup. One cp.async group a stage per thread, empty past K, so the wait count stays fixed.
  auto stage = [&](int k) { return ring + (k % R::kStages) * R::kStageBytes; };
  const int n0 = blockIdx.x * F;
  const WeightCopies<F> weights(g, n0, t);
  for (int k = 0; k < R::kAhead; ++k) {
    if (k < atoms) weights.copy(stage(k), k);
    cp_async_commit();
  }
  // CudaKnobs.rowGemmPrefetchMiB: the block's rows past those stages on their way into L2 too, while
  // the kernels before (a decode step's norms, RoPE, attention, quantization: latency-bound chains
  // that leave the memory idle) run; thread t asks for row t's.
  if (g.prefetch_row_bytes > 0 && t < F) {
    const int from = R::kAhead * kAtomBytes;
    const int bytes = min(g.row_bytes - from, g.prefetch_row_bytes);
    if (bytes > 0 && n0 + t < g.N) prefetch_l2(g.W + static_cast<size_t>(n0 + t) * g.w_stride + from, bytes);
  }
  pdl_wait();

  const int warp = t / 32, lane = t % 32;
  const RowEpilogue<FP8, Out, TN> epilogue(g, n0, F, warp, lane);

  float d[TN / 8][4] = {};
  // Stage k's products. A_REGS: this warp's 16 weight rows of the stage as A fragments, one set of
  // 4 k-steps; it was last read by stage k - 2's wgmma, which the wait below sees done.
  auto multiply = [&](int k, uint32_t(&a)[kAtomBytes / kStepBytes][4]) {
    cp_async_wait<R::kAhead - 1>();  // this thread's copies of stage k
    wgmma_wait<1>();                 // stage k - 2's wgmma, whose slot stage k + kAhead takes below
    fence_proxy_async_shared();
    stage_barrier();
    if constexpr (kARegs) {
      // Before the copies are issued, so that the loads' latency runs under them.
      wgmma_fence_operands(a);  // kept in place until stage k - 2's wgmma had read them
      const AFragmentLane at(warp, lane);
      if (warp * 16 < F)  // warps past F keep zeros: rows never copied
#pragma unroll
        for (int s = 0; s < kAtomBytes / kStepBytes; ++s)
          ldmatrix_x4(a[s], stage(k) + swizzled(at.row, 2 * s + at.half));
    }
    if (k + R::kAhead < atoms) weights.copy(stage(k + R::kAhead), k + R::kAhead);
    cp_async_commit();
    const uint32_t w = smem_address(stage(k)), x = w + kWeightTileBytes;
    wgmma_fence();
#pragma unroll
    for (int s = 0; s < kAtomBytes / kStepBytes; ++s) {
      if constexpr (kARegs)
        wgmma_rs_32_bytes_e4m3<TN>(d, a[s], sw128_desc(x + s * kStepBytes, 16, 8 * kAtomBytes), k > 0 || s > 0);
      else
        wgmma_ss_32_bytes<TN, FP8>(d, sw128_desc(w + s * kStepBytes, 16, 8 * kAtomBytes),
                                   sw128_desc(x + s * kStepBytes, 16, 8 * kAtomBytes), k > 0 || s > 0);
    }
    wgmma_commit();
  };
  if constexpr (kARegs) {
    // Two sets of A fragments taking turns: stage k's wgmma may still read its set while stage
    // k + 1 loads the other.
    uint32_t a[2][kAtomBytes / kStepBytes][4] = {};
    for (int k = 0; k < atoms; k += 2) {
      multiply(k, a[0]);
      if (k + 1 < atoms) multiply(k + 1, a[1]);
    }
    wgmma_wait<0>();
    wgmma_fence_operands(a[0]);
    wgmma_fence_operands(a[1]);
  } else {
    uint32_t unused[kAtomBytes / kStepBytes][4];
    for (int k = 0; k < atoms; ++k) multiply(k, unused);
    wgmma_wait<0>();
  }
  wgmma_fence_operands(d);

  epilogue.write(g, d);
#endif
}

// SMs of the current device, looked up once (the backend drives one device).
int sm_count() {
  static const int sms = [] {
    int dev = 0, n = 1;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
  }();
  return sms;
}

// Before Kernel's first launch: the SM's whole 228 KB as shared memory (a hint the driver may
// otherwise weigh against L1), so that two paired blocks fit on one SM.
template <auto Kernel>
void prefer_shared_memory() {
  static const bool set = [] {
    CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
    return true;
  }();
  (void)set;
}

#if TACHYON_ROW_GEMM_BULK > 0
// One token's O and down (32 features a block) at least, or the switch would build nothing.
static_assert(BulkRing<8, 32, TACHYON_ROW_GEMM_BULK>::kFits, "TACHYON_ROW_GEMM_BULK: 256, 512 or 1024");
#endif

// Launches one of the kernels over the weights' rows, F a block, with PDL; where
// TACHYON_ROW_GEMM_STREAMING, the weights marked streaming in L2 (read once a step).
template <auto Kernel>
void launch_rows(const char* name, const RowGemmArgs& g, int F, size_t shared, cudaStream_t s) {
  allow_dynamic_shared<Kernel>(shared);
  prefer_shared_memory<Kernel>();
#if TACHYON_ROW_GEMM_STREAMING
  const cudaAccessPolicyWindow window = streaming_window(g.W, static_cast<size_t>(g.N) * g.w_stride);  // Llama-3-8B's gate/up: 117 MB
  launch_pdl_window(name, window.num_bytes > 0 ? &window : nullptr, Kernel, dim3((g.N + F - 1) / F), dim3(kThreads),
                    shared, s, g);
#else
  launch_pdl(name, Kernel, dim3((g.N + F - 1) / F), dim3(kThreads), shared, s, g);
#endif
}

template <bool FP8, typename Out, int TN, bool SOLO, int F>
void launch_ring(const RowGemmArgs& g, cudaStream_t s) {
  if constexpr (FP8 && SOLO && TACHYON_ROW_GEMM_BULK > 0) {
    using B = BulkRing<TN, F, TACHYON_ROW_GEMM_BULK>;
    if constexpr (B::kFits) {
      launch_rows<row_gemm_bulk_kernel<Out, TN, F, TACHYON_ROW_GEMM_BULK>>("row_gemm_bulk_kernel", g, F, B::kBytes, s);
      return;
    }
  }
  launch_rows<row_gemm_kernel<FP8, Out, TN, SOLO, F>>("row_gemm_kernel", g, F, Ring<TN, SOLO>::kBytes, s);
}

// Features a block: the fewest blocks of 32 or 48 that still fit one an SM (Llama-3-8B's O and
// down projections, 4,096 features: 128 blocks of 32; its QKV, 6,144: 128 of 48), else 64, two
// blocks an SM where they take more than one wave.
template <bool FP8, typename Out, int TN>
void launch_tokens(const RowGemmArgs& g, cudaStream_t s) {
  const int sms = sm_count();
  if ((g.N + 31) / 32 <= sms) launch_ring<FP8, Out, TN, true, 32>(g, s);
  else if ((g.N + 47) / 48 <= sms) launch_ring<FP8, Out, TN, true, 48>(g, s);
  else if ((g.N + kFeatures - 1) / kFeatures <= sms) launch_ring<FP8, Out, TN, true, kFeatures>(g, s);
  else launch_ring<FP8, Out, TN, false, kFeatures>(g, s);
}

template <bool FP8, typename Out>
void launch_typed(const RowGemmArgs& g, cudaStream_t s) {
  if (g.M <= 8) launch_tokens<FP8, Out, 8>(g, s);
  else if (g.M <= 16) launch_tokens<FP8, Out, 16>(g, s);
  else if (g.M <= 32) launch_tokens<FP8, Out, 32>(g, s);
  else launch_tokens<FP8, Out, 64>(g, s);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool row_gemm_available() { return wgmma_available(); }

cudaAccessPolicyWindow streaming_window(const void* w, size_t bytes) {
  static const size_t max_window = [] {
    int dev = 0, max_bytes = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&max_bytes, cudaDevAttrMaxAccessPolicyWindowSize, dev));
    return static_cast<size_t>(max_bytes);
  }();
  cudaAccessPolicyWindow window{};
  window.base_ptr = const_cast<void*>(w);
  window.num_bytes = std::min(bytes, max_window);
  window.hitRatio = 1.0f;
  window.hitProp = cudaAccessPropertyStreaming;
  window.missProp = cudaAccessPropertyStreaming;
  return window;
}

bool row_gemm_supports(Operand type, int N, int K) {
  if (type == Operand::kInt8 || N <= 0 || K <= 0) return false;
  return K % (type == Operand::kFp8 ? kAtomBytes : kAtomBytes / 2) == 0;
}

void launch_row_gemm(Operand type, Output out, const void* A, const void* W, void* D, int M, int N, int K, GemmScales sc,
                     cudaStream_t s, RowAdd add, size_t l2_prefetch_bytes, NextWeights next, int w_stride) {
  if (M == 0) return;
  if (!row_gemm_available()) fail("the few-row GEMM needs an sm_90a build on an sm_90 device");
  if (!row_gemm_supports(type, N, K) || out == Output::kI32 || M < 0 || M > kRowGemmMaxRows)
    fail("the few-row GEMM does not take ", M, "x", N, "x", K, " (M up to ", kRowGemmMaxRows, ", K a multiple of 128 bytes)");
  if (!aligned16(A) || !aligned16(W) || !aligned16(D)) fail("the few-row GEMM needs 16-byte aligned A, W and D");
  const bool fp8 = type == Operand::kFp8;
  if (fp8 && (!sc.rows || !sc.cols)) fail("an FP8 few-row GEMM needs its row and column scales");
  if ((out == Output::kF32Add) != (add != RowAdd::kNone) || (out == Output::kF32Add && !fp8))
    fail("the few-row GEMM adds into D for FP8 products with Output::kF32Add, and only then");
  const int row_bytes = K * (fp8 ? 1 : 2);
  if (w_stride == 0) w_stride = row_bytes;
  if (w_stride < row_bytes || w_stride % 16 != 0) fail("the few-row GEMM's weight rows must be at least a row apart, in whole 16 bytes");
  // A row's share of the prefetch, whole 128-byte atoms, at most the row.
  const size_t share = std::min(l2_prefetch_bytes / static_cast<size_t>(N), static_cast<size_t>(row_bytes));
  // The next projection's rows' share of its prefetch, whole 128-byte lines, at most a row; none
  // where that is less than a line.
  const size_t next_share = next.w && next.rows > 0 ? std::min(next.bytes / next.rows, static_cast<size_t>(next.row_bytes)) / kAtomBytes * kAtomBytes : 0;
  if (next_share > 0 && (reinterpret_cast<uintptr_t>(next.w) % kAtomBytes != 0 || next.row_bytes % kAtomBytes != 0))
    fail("the next weights to prefetch must be rows of whole 128-byte lines, 128-byte aligned");
  const RowGemmArgs g{static_cast<const unsigned char*>(A), static_cast<const unsigned char*>(W), D, sc.rows, sc.cols, M, N,
                      row_bytes, add, static_cast<int>(share / kAtomBytes * kAtomBytes),
                      next_share > 0 ? static_cast<const unsigned char*>(next.w) : nullptr, next.rows, next.row_bytes,
                      static_cast<int>(next_share), w_stride};
  if (fp8 && out == Output::kBf16) launch_typed<true, __nv_bfloat16>(g, s);
  else if (fp8) launch_typed<true, float>(g, s);
  else if (out == Output::kBf16) launch_typed<false, __nv_bfloat16>(g, s);
  else launch_typed<false, float>(g, s);
}

}  // namespace tachyon
