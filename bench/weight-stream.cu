// Why batch 1's one-block-an-SM projections (Llama-3-8B's O and down: 128 blocks of 32 weight rows;
// QKV: 128 of 48) stream about 2.8 TB/s while gate/up (448 blocks of 64, two an SM) streams 3.8
// (bench/RESULTS.md). Bytes in flight, blocks an SM, stages a loop step, the SM's cp.async tracking
// (TMA tensor tiles) and the prologue's depth were each changed inside the row GEMM and none moved
// it. This separates the copy pattern from the GEMM: a decode step's weights (32 layers of
// QKV, O, gate/up and down, 6.98 GB, each layer's its own) read by kernels that only copy them into
// shared memory, in the chain a step launches (programmatic dependent launch in a CUDA graph):
//
//   row_gemm       the library's row GEMM at one token (native/cuda/gemm_rows.cu, as the step
//                  calls it: O and down adding into a float32 stream), the reference; pfN with
//                  CudaKnobs.rowGemmPrefetchMiB N (up to N MiB of the weights past the prologue's
//                  stages asked into L2 before the wait, while the kernels before run); nxN with
//                  CudaKnobs.rowGemmNextMiB N (QKV, O and down ask up to N MiB of the next
//                  projection's weights into L2 as they run)
//   ring S/N       its copy loop without the arithmetic: the same blocks and features a block, 128
//                  threads copying 16 bytes each (cp.async) and an activation warp at the same
//                  barriers, a stage S bytes of K of every row (the row GEMM's S is 128), at most
//                  N stages in the ring (the row GEMM: 16, 14 of them in flight)
//   bulk S         the same blocks, each row's S contiguous bytes a stage by one cp.async.bulk (the
//                  copy engine, one instruction a row, no tensor map), slots handed over by mbarriers
//   mma            the row GEMM's loop without its copies: barrier, four dependent m64n8k32 wgmma a
//                  stage on whatever the ring holds (no memory traffic); "2 chains" alternates two
//                  accumulator sets, so that one stage's products need not wait for the last's;
//                  "rs" takes the weights' A operand from registers instead of shared memory
//   pad P          row_gemm and ring 128/16 on the same weights with each row P bytes longer
//                  than its K (the rows' stride K + P): the grid's blocks move through K in step, so
//                  at any moment they ask for the same 128 bytes of rows exactly 4 KB (O, QKV,
//                  gate/up) or 14 KB (down) apart, addresses whose low bits are all alike; if the
//                  memory's channels are chosen by those bits, a padded stride spreads the requests
//   rot            ring 128/16 with block i starting its rows at stage 7 i (mod K / 128) and
//                  wrapping: the same bytes, the blocks out of step (a GEMM cannot reorder its K;
//                  a copy can), which tells the same thing without padding
//   slab           the same blocks, each reading its F rows (F x K contiguous bytes) in address
//                  order, 512 threads with eight 16-byte loads in flight each (64 KB a block)
//   flat           a grid-stride read of each matrix in 16-byte loads (four 256-thread blocks an
//                  SM): what the bytes cost read in address order
//
// For each: us a projection (32 launches of one projection, each layer's weights), and a whole
// step's chain (32 x {norm, QKV, RoPE, attention, quantize, O, norm, gate/up, SwiGLU, down}) with
// the small kernels as one-block row kernels (bench/pdl-chain.cu's shape) and without them. If a
// copy-only ring reads at the row GEMM's rate, the pattern is the limit and the ring/bulk rows that
// beat it say which pattern to build; if it reads at flat's rate, the GEMM's own loop is, and `mma`
// says how long that loop takes with no memory at all (with 2 chains faster, the wgmma accumulator
// chain, which the row GEMM's bits fix, is the floor; as slow, the barrier and issue are).
// Build and run on the GPU machine: bash bench/weight-stream.sh (about a minute).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/dynamic_shared.h"
#include "cuda/gemm_rows.h"
#include "cuda/gemm_rows_parts.cuh"
#include "cuda/mbarrier.cuh"
#include "cuda/mma.cuh"
#include "cuda/pdl.cuh"
#include "cuda/reduce.cuh"
#include "cuda/wgmma.cuh"
#include "event-timing.h"
#include "pdl-switch.h"


using namespace tachyon;

namespace {

constexpr int kLayers = 32;
// As the row GEMM: a copying warpgroup and one more warp; its blocks' shared memory, one an SM or two.
constexpr int kThreads = row_gemm::kThreads;
constexpr int kSmemSolo = row_gemm::kSmemSolo;
constexpr int kSmemPaired = row_gemm::kSmemPaired;
constexpr int kSmallRow = 4096;  // floats a small kernel's row (the hidden size)

struct Projection {
  const char* name;
  int N, K;  // weight rows (features) and bytes a row (E4M3)
  bool adds;  // the step's O and down add into the float32 residual stream
};
constexpr Projection kProjections[4] = {
    {"qkv", 6144, 4096, false}, {"o", 4096, 4096, true}, {"gate_up", 28672, 4096, false}, {"down", 4096, 14336, true}};

size_t projection_bytes(int p) { return static_cast<size_t>(kProjections[p].N) * kProjections[p].K; }

// Features a block and blocks an SM, as the row GEMM chooses them (gemm_rows.cu, launch_tokens).
struct Geometry {
  int F;
  bool solo;
};
Geometry geometry(int N, int sms) {
  if ((N + 31) / 32 <= sms) return {32, true};
  if ((N + 47) / 48 <= sms) return {48, true};
  if ((N + 63) / 64 <= sms) return {64, true};
  return {64, false};
}

// A ring's stage: F rows times SEG bytes, shrunk (halved) until at least 6 stages fit the block's
// shared memory; at most MAX stages.
struct RingShape {
  int seg, stages;
};
__host__ __device__ constexpr RingShape ring_shape(int F, bool solo, int seg, int max_stages) {
  const int budget = (solo ? kSmemSolo : kSmemPaired) - 1024;
  while (seg > 128 && budget / (F * seg) < 6) seg /= 2;
  const int fit = budget / (F * seg);
  return {seg, fit < max_stages ? fit : max_stages};
}

__device__ __forceinline__ void stage_barrier() { asm volatile("bar.sync 0, %0;\n" ::"n"(kThreads) : "memory"); }

__device__ __forceinline__ uint32_t swizzled_chunk(int row, int c) {  // within a row's segment: 128-byte atoms
  return static_cast<uint32_t>(((c >> 3) << 7) | (((c & 7) ^ (row & 7)) << 4));
}

// grid: N / F blocks. The row GEMM's loop with its wgmma taken out: copies kAhead stages ahead,
// the weights' first stages before pdl_wait(), a barrier a stage; each thread reads 4 bytes of the
// stage it waited for, so the copies are consumed.
// pitch: bytes from one row to the next (K, or K + P for the pad rows); rotate: block i's first
// stage is (rotate * i) % (K / SEG) (0: the row GEMM's order).
template <int F, bool SOLO, int SEG, int MAX>
__global__ void __launch_bounds__(kThreads, SOLO ? 1 : 2) ring_kernel(const uint8_t* W, int K, int pitch, int rotate, uint32_t* sink) {
  constexpr RingShape kShape = ring_shape(F, SOLO, SEG, MAX);
  constexpr int kSeg = kShape.seg, kStages = kShape.stages, kAhead = kStages - 2;
  constexpr int kStageBytes = F * kSeg;
  constexpr int kChunksRow = kSeg / 16;
  constexpr int kCopies = F * kChunksRow / 128;
  static_assert(kAhead >= 2 && F * kChunksRow % 128 == 0, "whole copies a thread, four stages at least");
  extern __shared__ __align__(16) uint8_t ring[];
  const int t = threadIdx.x;
  const int segs = K / kSeg;
  if (t >= 128) {  // the activation warp: its barriers (the token copies are a few hundred bytes)
    pdl_wait();
    for (int k = 0; k < segs; ++k) stage_barrier();
    return;
  }
  const uint8_t* rows = W + static_cast<size_t>(blockIdx.x) * F * pitch;
  const int first = static_cast<int>((static_cast<long long>(rotate) * blockIdx.x) % segs);
  auto copy = [&](int k) {
    uint8_t* stage = ring + (k % kStages) * kStageBytes;
    const int kk = (k + first) % segs;
#pragma unroll
    for (int j = 0; j < kCopies; ++j) {
      const int i = t + 128 * j, r = i / kChunksRow, c = i % kChunksRow;
      cp_async_16(stage + r * kSeg + swizzled_chunk(r, c), rows + static_cast<size_t>(r) * pitch + kk * kSeg + c * 16, true);
    }
  };
  for (int k = 0; k < kAhead; ++k) {
    if (k < segs) copy(k);
    cp_async_commit();
  }
  pdl_wait();
  uint32_t acc = 0;
  for (int k = 0; k < segs; ++k) {
    cp_async_wait<kAhead - 1>();
    stage_barrier();
    if (k + kAhead < segs) copy(k + kAhead);
    cp_async_commit();
    acc ^= *reinterpret_cast<const uint32_t*>(ring + (k % kStages) * kStageBytes + t * 16);
  }
  sink[blockIdx.x * 128 + t] = acc;
}

// grid: N / F blocks. The row GEMM's loop with its copies taken out: the same ring of 8 KB weight
// tiles and one token's atoms (whatever shared memory holds; only the time counts), a barrier a
// stage with the activation warp, four m64n8k32 E4M3 wgmma a stage and at most one stage's group
// still running at the barrier. CHAINS = 1 accumulates every stage into one set of registers, as
// the row GEMM does (each wgmma waits on the one before); CHAINS = 2 alternates two sets, so two
// stages' products can be in the tensor cores at once. If `mma` takes the row GEMM's time, the loop
// (its dependent wgmma chain or its barrier) is the limit, not the copies.
constexpr int kMmaStageBytes = 64 * 128 + 8 * 128;  // the row GEMM's stage at one token: 64 weight rows and 8 token rows of 128 bytes
// As the row GEMM's Ring: what fits beside 1 KB of alignment slack, at most 16.
__host__ __device__ constexpr int mma_stages(bool solo) {
  const int fit = ((solo ? kSmemSolo : kSmemPaired) - 1024) / kMmaStageBytes;
  return fit < 16 ? fit : 16;
}
// RS: A from registers (wgmma.cuh's wgmma_rs_m64n8k32_e4m3, as the row GEMM's A_REGISTERS build;
// fixed for the whole loop: this times the chain, not the ldmatrix loads that build adds), one chain.
template <bool SOLO, int CHAINS, bool RS>
__global__ void __launch_bounds__(kThreads, SOLO ? 1 : 2) mma_kernel(int K, uint32_t* sink) {
  constexpr int kStageBytes = kMmaStageBytes, kStages = mma_stages(SOLO);
  extern __shared__ __align__(16) uint8_t smem[];
  uint8_t* ring = smem + ((1024u - (smem_address(smem) & 1023u)) & 1023u);
  const int t = threadIdx.x;
  const int atoms = K / 128;
  if (__shfl_sync(0xffffffffu, t / 128, 0) != 0) {
    pdl_wait();
    for (int k = 0; k < atoms; ++k) stage_barrier();
    return;
  }
  pdl_wait();
  static_assert(!RS || CHAINS == 1, "RS: one chain");
  const uint32_t a[4] = {0x30303030u + (t & 7), 0x30303030u, 0x30303030u, 0x30303030u};  // E4M3 0.125-0.2 (B: whatever the ring holds)
  float d[CHAINS][1][4] = {};
  // Stage k into one chain's accumulators (d[c] with c known at compile time: they stay in registers).
  auto stage = [&](int k, float(&acc)[1][4]) {
    wgmma_wait<1>();
    fence_proxy_async_shared();
    stage_barrier();
    const uint32_t w = smem_address(ring + (k % kStages) * kStageBytes), x = w + 64 * 128;
    wgmma_fence();
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      if constexpr (RS) wgmma_rs_m64n8k32_e4m3(acc, a, sw128_desc(x + s * 32, 16, 1024), k >= CHAINS || s > 0);
      else wgmma_ss_32_bytes<8, true>(acc, sw128_desc(w + s * 32, 16, 1024), sw128_desc(x + s * 32, 16, 1024), k >= CHAINS || s > 0);
    }
    wgmma_commit();
  };
  for (int k = 0; k < atoms; k += CHAINS) {
#pragma unroll
    for (int c = 0; c < CHAINS; ++c)
      if (k + c < atoms) stage(k + c, d[c]);
  }
  wgmma_wait<0>();
  wgmma_fence_operands(d[0]);
  if constexpr (CHAINS == 2) wgmma_fence_operands(d[1]);
  float sum = 0.0f;
#pragma unroll
  for (int c = 0; c < CHAINS; ++c) sum += d[c][0][0] + d[c][0][1] + d[c][0][2] + d[c][0][3];
  sink[blockIdx.x * 128 + t] = __float_as_uint(sum);
}

// grid: N / F blocks. Warp 4 copies: each stage one cp.async.bulk of SEG bytes a row, completing on
// the slot's `full` barrier; the warpgroup reads the stage and gives the slot back through `empty`
// (an arrival a warp). All the ring's stages are in flight.
// pitch and rotate as ring_kernel's.
template <int F, bool SOLO, int SEG, int MAX>
__global__ void __launch_bounds__(kThreads, SOLO ? 1 : 2) bulk_kernel(const uint8_t* W, int K, int pitch, int rotate, uint32_t* sink) {
  constexpr RingShape kShape = ring_shape(F, SOLO, SEG, MAX);
  constexpr int kSeg = kShape.seg, kStages = kShape.stages;
  constexpr int kStageBytes = F * kSeg;
  extern __shared__ __align__(16) uint8_t ring[];
  __shared__ uint64_t full[kStages], empty[kStages];
  const int t = threadIdx.x, lane = t % 32;
  const int segs = K / kSeg;
  if (t == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&full[s], 1);
      mbarrier_init(&empty[s], 4);
    }
    mbarrier_init_fence();
  }
  __syncthreads();
  if (t >= 128) {
    const uint8_t* rows = W + static_cast<size_t>(blockIdx.x) * F * pitch;
    const int first = static_cast<int>((static_cast<long long>(rotate) * blockIdx.x) % segs);
    for (int k = 0; k < segs; ++k) {
      const int s = k % kStages;
      if (k == kStages) pdl_wait();  // the first ring of weights before it
      mbarrier_wait(&empty[s], ((k / kStages) & 1) ^ 1);
      if (lane == 0) mbarrier_expect_bytes(&full[s], kStageBytes);
      __syncwarp();
      for (int r = lane; r < F; r += 32)
        bulk_copy_to_shared(ring + s * kStageBytes + r * kSeg, rows + static_cast<size_t>(r) * pitch + (k + first) % segs * kSeg, kSeg, &full[s]);
    }
    if (segs <= kStages) pdl_wait();
    return;
  }
  pdl_wait();
  uint32_t acc = 0;
  for (int k = 0; k < segs; ++k) {
    const int s = k % kStages;
    mbarrier_wait(&full[s], (k / kStages) & 1);
    acc ^= *reinterpret_cast<const uint32_t*>(ring + s * kStageBytes + (t * 16) % kStageBytes);
    __syncwarp();
    if (lane == 0) mbarrier_arrive(&empty[s]);
  }
  sink[blockIdx.x * 128 + t] = acc;
}

// grid-stride 16-byte loads, eight in flight a thread, in address order; pdl_wait() after them (the
// weights do not depend on the kernel before).
__global__ void __launch_bounds__(256) flat_kernel(const uint4* W, size_t n16, uint32_t* sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  uint32_t acc = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 7 * stride < n16; i += 8 * stride) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = __ldcs(W + i + u * stride);
#pragma unroll
    for (int u = 0; u < 8; ++u) acc ^= v[u].x ^ v[u].w;
  }
  for (; i < n16; i += stride) acc ^= __ldcs(W + i).y;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  sink[blockIdx.x * 256 + threadIdx.x] = acc;
}

// grid: N / F blocks of 512 threads, each reading its F x K bytes in address order.
__global__ void __launch_bounds__(512, 1) slab_kernel(const uint4* W, int slab16, uint32_t* sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  const uint4* slab = W + static_cast<size_t>(blockIdx.x) * slab16;
  uint32_t acc = 0;
  int i = threadIdx.x;
  for (; i + 7 * 512 < slab16; i += 8 * 512) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = __ldcs(slab + i + u * 512);
#pragma unroll
    for (int u = 0; u < 8; ++u) acc ^= v[u].x ^ v[u].w;
  }
  for (; i < slab16; i += 512) acc ^= __ldcs(slab + i).y;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  sink[blockIdx.x * 512 + threadIdx.x] = acc;
}

// A step's small kernels (norm, RoPE, attention, quantization, SwiGLU) as one block reading a row
// the kernel before wrote: load, block sum, scale, store (bench/pdl-chain.cu: about 1.3 us a link).
__global__ void small_kernel(float* out, const float* in) {
  __shared__ float scratch[32];
  pdl_wait();
  constexpr int kPer = kSmallRow / 4 / 128;
  float4 v[kPer];
  float ss = 0.0f;
  for (int k = 0; k < kPer; ++k) {
    v[k] = reinterpret_cast<const float4*>(in)[threadIdx.x + k * 128];
    ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
  }
  const float inv = rsqrtf(block_sum(ss, scratch) / kSmallRow + 1e-5f);
  for (int k = 0; k < kPer; ++k)
    reinterpret_cast<float4*>(out)[threadIdx.x + k * 128] = make_float4(v[k].x * inv, v[k].y * inv, v[k].z * inv, v[k].w * inv);
}

// What every variant's launches read and write.
constexpr int kMaxPad = 256;  // the pad rows' longest: each projection's buffer holds its layers at stride K + kMaxPad

struct Buffers {
  uint8_t* weights[4];  // [kLayers][N][K] a projection (the pad rows: [kLayers][N][K + P])
  uint8_t* a;           // one token's E4M3 row (the largest K)
  float* rows;          // its scale
  float* cols;          // the weights' column scales (the largest N), all 1
  void* d;              // the row GEMM's output: bf16 or float32, the largest N
  uint32_t* sink;
  float *small_a, *small_b;
  int sms;
};

using Launch = void (*)(const Buffers&, int p, int layer, cudaStream_t);

// A ring's dynamic shared memory: its stages (the bulk ring's barriers are static).
template <int F, bool SOLO, int SEG, int MAX>
struct RingBytes {
  static constexpr size_t shared() {
    constexpr RingShape s = ring_shape(F, SOLO, SEG, MAX);
    return static_cast<size_t>(s.stages) * F * s.seg;
  }
};
template <int F, bool SOLO, int SEG, int MAX>
struct RingKind : RingBytes<F, SOLO, SEG, MAX> {
  static constexpr auto kernel = ring_kernel<F, SOLO, SEG, MAX>;
};
template <int F, bool SOLO, int SEG, int MAX>
struct BulkKind : RingBytes<F, SOLO, SEG, MAX> {
  static constexpr auto kernel = bulk_kernel<F, SOLO, SEG, MAX>;
};

// A projection's weights for this layer, rows PAD bytes longer than K; its features must fill whole
// blocks of F (no row left unread).
const uint8_t* layer_weights(const Buffers& b, int p, int layer, int F, int pad = 0) {
  const Projection& pr = kProjections[p];
  if (pr.N % F != 0) fail(pr.name, ": ", pr.N, " features are not whole blocks of ", F, " on this device");
  return b.weights[p] + static_cast<size_t>(layer) * pr.N * (pr.K + pad);
}

// Before a ring kernel's first launch: its shared memory allowed, the SM's whole 228 KB as shared
// memory (as the row GEMM asks: two paired blocks need all of it), and a check that its blocks fit
// as many an SM as the row GEMM's.
template <auto Kernel>
void prepare_ring(size_t shared, bool solo, int F) {
  static const bool prepared = [&] {
    allow_dynamic_shared<Kernel>(shared);
    CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
    int per_sm = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Kernel, kThreads, shared));
    if (per_sm < (solo ? 1 : 2)) fail("a ", solo ? "solo" : "paired", " ring kernel (first launched for ", F, " features) fits ", per_sm, " blocks an SM");
    return true;
  }();
  (void)prepared;
}

template <template <int, bool, int, int> class Kind, int F, bool SOLO, int SEG, int MAX, int PAD, int ROT>
void launch_kind(const Buffers& b, int p, int layer, cudaStream_t s) {
  using K = Kind<F, SOLO, SEG, MAX>;
  prepare_ring<K::kernel>(K::shared(), SOLO, F);
  const Projection& pr = kProjections[p];
  const uint8_t* w = layer_weights(b, p, layer, F, PAD);
  // The row GEMM's L2 policy (gemm_rows.h), as every variant takes it: only the copy pattern differs.
  const cudaAccessPolicyWindow window = streaming_window(w, static_cast<size_t>(pr.N) * (pr.K + PAD));
  launch_pdl_window("copy", &window, K::kernel, dim3(pr.N / F), dim3(kThreads), K::shared(), s, w, pr.K, pr.K + PAD, ROT,
                    b.sink);
}

// PAD: the rows' stride K + PAD; ROT: block i starts at stage ROT i (ring_kernel's rotate).
template <template <int, bool, int, int> class Kind, int SEG, int MAX, int PAD = 0, int ROT = 0>
void launch_copies(const Buffers& b, int p, int layer, cudaStream_t s) {
  static_assert(PAD >= 0 && PAD <= kMaxPad && PAD % 16 == 0, "a pad the buffers hold, whole 16 bytes");
  const Geometry g = geometry(kProjections[p].N, b.sms);
  if (g.F == 32) launch_kind<Kind, 32, true, SEG, MAX, PAD, ROT>(b, p, layer, s);
  else if (g.F == 48) launch_kind<Kind, 48, true, SEG, MAX, PAD, ROT>(b, p, layer, s);
  else if (g.solo) launch_kind<Kind, 64, true, SEG, MAX, PAD, ROT>(b, p, layer, s);
  else launch_kind<Kind, 64, false, SEG, MAX, PAD, ROT>(b, p, layer, s);
}

// PREFETCH_MIB: CudaKnobs.rowGemmPrefetchMiB (the rows past the prologue's stages asked into L2
// before the wait). NEXT_MIB: CudaKnobs.rowGemmNextMiB, as the model gives it: QKV asks for O's
// weights, O for gate/up's, down for the next layer's QKV (in the per-projection columns, weights
// nothing then reads: what the extra traffic costs; in the step's, what it saves).
// PAD: the weight rows PAD bytes longer than K (the row GEMM's w_stride K + PAD).
template <int PREFETCH_MIB, int NEXT_MIB = 0, int PAD = 0>
void launch_row_gemm_step(const Buffers& b, int p, int layer, cudaStream_t s) {
  static_assert(PAD >= 0 && PAD <= kMaxPad && PAD % 16 == 0, "a pad the buffers hold, whole 16 bytes");
  const Projection& pr = kProjections[p];
  const uint8_t* w = layer_weights(b, p, layer, 1, PAD);
  NextWeights next;
  if (NEXT_MIB > 0 && p != 2) {
    const int np = (p + 1) % 4, nl = p == 3 ? (layer + 1) % kLayers : layer;
    next = {b.weights[np] + static_cast<size_t>(nl) * projection_bytes(np), kProjections[np].N, kProjections[np].K,
            static_cast<size_t>(NEXT_MIB) << 20};
  }
  launch_row_gemm(Operand::kFp8, pr.adds ? Output::kF32Add : Output::kBf16, b.a, w, b.d, 1, pr.N, pr.K,
                  GemmScales{b.rows, b.cols}, s, pr.adds ? RowAdd::kFused : RowAdd::kNone, static_cast<size_t>(PREFETCH_MIB) << 20,
                  next, pr.K + PAD);
}

// The copy-free loop (mma_kernel) on the blocks the row GEMM would launch for this projection.
template <bool SOLO, int CHAINS, bool RS>
void launch_mma_blocks(const Buffers& b, int p, int F, cudaStream_t s) {
  constexpr auto kernel = mma_kernel<SOLO, CHAINS, RS>;
  constexpr size_t shared = 1024 + static_cast<size_t>(mma_stages(SOLO)) * kMmaStageBytes;
  prepare_ring<kernel>(shared, SOLO, F);
  launch_pdl("mma", kernel, dim3(kProjections[p].N / F), dim3(kThreads), shared, s, kProjections[p].K, b.sink);
}
template <int CHAINS, bool RS>
void launch_mma(const Buffers& b, int p, int layer, cudaStream_t s) {
  (void)layer;  // no weights read
  const Geometry g = geometry(kProjections[p].N, b.sms);
  layer_weights(b, p, 0, g.F);  // whole blocks, as the copy rows
  if (g.solo) launch_mma_blocks<true, CHAINS, RS>(b, p, g.F, s);
  else launch_mma_blocks<false, CHAINS, RS>(b, p, g.F, s);
}

void launch_flat(const Buffers& b, int p, int layer, cudaStream_t s) {
  const Projection& pr = kProjections[p];
  const size_t bytes = static_cast<size_t>(pr.N) * pr.K;
  const uint8_t* w = layer_weights(b, p, layer, 1);
  const cudaAccessPolicyWindow window = streaming_window(w, bytes);
  launch_pdl_window("flat", &window, flat_kernel, dim3(b.sms * 4), dim3(256), 0, s, reinterpret_cast<const uint4*>(w), bytes / 16,
                    b.sink);
}

void launch_slab(const Buffers& b, int p, int layer, cudaStream_t s) {
  const Projection& pr = kProjections[p];
  const Geometry g = geometry(pr.N, b.sms);
  const uint8_t* w = layer_weights(b, p, layer, g.F);
  const cudaAccessPolicyWindow window = streaming_window(w, static_cast<size_t>(pr.N) * pr.K);
  launch_pdl_window("slab", &window, slab_kernel, dim3(pr.N / g.F), dim3(512), 0, s, reinterpret_cast<const uint4*>(w),
                    g.F * pr.K / 16, b.sink);
}

void launch_small(const Buffers& b, cudaStream_t s, int i) {
  launch_pdl("small", small_kernel, dim3(1), dim3(128), 0, s, i % 2 ? b.small_a : b.small_b, i % 2 ? b.small_b : b.small_a);
}

// Median us of a graph's replay (3 warm-up, 15 timed), the graph built by `record`.
template <typename Record>
float time_graph(cudaStream_t s, Record record) {
  return bench::graph_median_us(s, record, 3, 15);
}


void report(const char* name, Launch launch, const Buffers& b, cudaStream_t s) {
  std::printf("%-14s", name);
  // Each projection once outside a graph: the kernels' attributes are set and checked before any
  // capture, and a fault shows here, named.
  for (int p = 0; p < 4; ++p) launch(b, p, 0, s);
  CUDA_CHECK(cudaStreamSynchronize(s));
  size_t step_bytes = 0;
  for (int p = 0; p < 4; ++p) {
    const float us = time_graph(s, [&] {
      for (int l = 0; l < kLayers; ++l) launch(b, p, l, s);
    }) / kLayers;
    std::printf(" %8.2f %5.2f", us, projection_bytes(p) / (us * 1e6));
    step_bytes += projection_bytes(p) * kLayers;
  }
  // A step: the small kernels where the step has them (norm | QKV | RoPE, attention, quantize | O |
  // norm | gate/up | SwiGLU | down), and the projections alone.
  for (bool smalls : {true, false}) {
    const float us = time_graph(s, [&] {
      int i = 0;
      for (int l = 0; l < kLayers; ++l) {
        const int before[4] = {1, 3, 1, 1};
        for (int p = 0; p < 4; ++p) {
          if (smalls)
            for (int k = 0; k < before[p]; ++k) launch_small(b, s, i++);
          launch(b, p, l, s);
        }
      }
    });
    std::printf(" %8.3f %5.2f", us / 1000.0f, step_bytes / (us * 1e6));
  }
  std::printf("\n");
  CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace

// Arguments, where given: the names of the variants to run, whole ("row_gemm", "mma rs"; bench/weight-stream.sh's
// PROFILE=1 runs "row_gemm" under ncu); none runs them all.
int main(int argc, char** argv) {
  const std::vector<std::string> only(argv + 1, argv + argc);
  try {
    if (!row_gemm_available()) fail("needs an sm_90a build on an sm_90 device");
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    Buffers b{};
    CUDA_CHECK(cudaDeviceGetAttribute(&b.sms, cudaDevAttrMultiProcessorCount, 0));
    size_t total = 0;
    for (int p = 0; p < 4; ++p) {
      const size_t bytes = static_cast<size_t>(kProjections[p].N) * (kProjections[p].K + kMaxPad) * kLayers;
      CUDA_CHECK(cudaMalloc(&b.weights[p], bytes));
      CUDA_CHECK(cudaMemset(b.weights[p], 0x30, bytes));  // E4M3 0.125: finite products
      total += projection_bytes(p) * kLayers;
    }
    CUDA_CHECK(cudaMalloc(&b.a, 14336));
    CUDA_CHECK(cudaMemset(b.a, 0x30, 14336));
    CUDA_CHECK(cudaMalloc(&b.rows, 4));
    CUDA_CHECK(cudaMalloc(&b.cols, 28672 * 4));
    const std::vector<float> ones(28672, 1.0f);
    CUDA_CHECK(cudaMemcpy(b.rows, ones.data(), 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(b.cols, ones.data(), 28672 * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc(&b.d, 28672 * 4));
    CUDA_CHECK(cudaMemset(b.d, 0, 28672 * 4));
    CUDA_CHECK(cudaMalloc(&b.sink, static_cast<size_t>(28672 / 32) * 512 * 4 + b.sms * 4 * 256 * 4));
    CUDA_CHECK(cudaMalloc(&b.small_a, kSmallRow * 4));
    CUDA_CHECK(cudaMalloc(&b.small_b, kSmallRow * 4));
    CUDA_CHECK(cudaMemcpy(b.small_a, ones.data(), kSmallRow * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(b.small_b, ones.data(), kSmallRow * 4, cudaMemcpyHostToDevice));

    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    std::printf("%d SMs, L2 %.1f MB; a step's weights %.2f GB (%d layers of QKV, O, gate/up, down, E4M3); median of 15 graph replays\n",
                b.sms, l2 / 1e6, total / 1e9, kLayers);
    std::printf("geometry (features a block, blocks an SM):");
    for (const Projection& p : kProjections) {
      const Geometry g = geometry(p.N, b.sms);
      std::printf(" %s %d x %d", p.name, g.F, g.solo ? 1 : 2);
    }
    std::printf("\nus a projection and TB/s; a step's chain in ms and TB/s, with the small kernels and without\n");
    std::printf("%-14s %8s %5s %8s %5s %8s %5s %8s %5s %8s %5s %8s %5s\n", "variant", "qkv", "TB/s", "o", "TB/s", "gate_up",
                "TB/s", "down", "TB/s", "step", "TB/s", "bare", "TB/s");
    const struct {
      const char* name;
      Launch launch;
    } variants[] = {
        {"row_gemm", launch_row_gemm_step<0>},
        {"row_gemm pf8", launch_row_gemm_step<8>},
        {"row_gemm pf16", launch_row_gemm_step<16>},
        {"row_gemm pf32", launch_row_gemm_step<32>},
        {"row_gemm nx8", launch_row_gemm_step<0, 8>},
        {"row_gemm nx32", launch_row_gemm_step<0, 32>},
        {"row_gemm pf16 nx16", launch_row_gemm_step<16, 16>},
        {"row_gemm pad128", launch_row_gemm_step<0, 0, 128>},
        {"row_gemm pad256", launch_row_gemm_step<0, 0, 256>},
        {"ring 128/16", launch_copies<RingKind, 128, 16>},
        {"ring 128/48", launch_copies<RingKind, 128, 48>},
        {"ring 256/16", launch_copies<RingKind, 256, 16>},
        {"ring 512/16", launch_copies<RingKind, 512, 16>},
        {"ring 1024/16", launch_copies<RingKind, 1024, 16>},
        {"ring 128/16 pad256", launch_copies<RingKind, 128, 16, 256>},
        {"ring 128/16 rot", launch_copies<RingKind, 128, 16, 0, 7>},
        {"bulk 128/16", launch_copies<BulkKind, 128, 16>},
        {"bulk 128/48", launch_copies<BulkKind, 128, 48>},
        {"bulk 512/16", launch_copies<BulkKind, 512, 16>},
        {"bulk 1024/16", launch_copies<BulkKind, 1024, 16>},
        {"bulk 2048/16", launch_copies<BulkKind, 2048, 16>},
        {"mma", launch_mma<1, false>},
        {"mma 2 chains", launch_mma<2, false>},
        {"mma rs", launch_mma<1, true>},
        {"slab", launch_slab},
        {"flat", launch_flat},
        {"row_gemm", launch_row_gemm_step<0>},  // again: the machine's drift over the run
    };
    for (const auto& v : variants)
      if (only.empty() || std::find(only.begin(), only.end(), v.name) != only.end()) report(v.name, v.launch, b, s);
    std::printf("ring/bulk S/N: S bytes of a row a stage (halved where fewer than 6 stages fit), N stages at most; as built\n"
                "(bytes a row a stage x stages, for 32 and 48 features one block an SM and 64 two an SM):\n");
    const int shapes[][2] = {{128, 16}, {128, 48}, {256, 16}, {512, 16}, {1024, 16}, {2048, 16}};
    for (const auto& sh : shapes) {
      std::printf("  %4d/%-2d:", sh[0], sh[1]);
      for (const Geometry g : {Geometry{32, true}, Geometry{48, true}, Geometry{64, false}}) {
        const RingShape r = ring_shape(g.F, g.solo, sh[0], sh[1]);
        std::printf("  F %d: %d x %d (%d KB)", g.F, r.seg, r.stages, g.F * r.seg * r.stages / 1024);
      }
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
