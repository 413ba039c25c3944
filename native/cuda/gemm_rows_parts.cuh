// What the few-row GEMM's kernels (gemm_rows.cu's cp.async ring, gemm_rows_bulk.cuh's bulk ring)
// share: their arguments, the token rows' copies into 128-byte swizzle atoms, the next projection's
// L2 prefetch, and the epilogue that gives cuBLASLt's bits. Included by gemm_rows.cu (and by
// bench/weight-stream.cu for the block's threads and shared memory, which its copy kernels mirror).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/gemm_rows.h"
#include "cuda/mma.cuh"
#include "cuda/wgmma.cuh"

namespace tachyon {
namespace row_gemm {

constexpr int kFeatures = 64;                             // wgmma's M: weight rows a stage's tile holds
constexpr int kAtomBytes = 128;                           // of each row a stage: one swizzle atom's width
constexpr int kWeightTileBytes = kFeatures * kAtomBytes;  // 8 KB a stage
constexpr int kMmaThreads = 128;                          // the warpgroup
constexpr int kThreads = kMmaThreads + 32;                // and the activation warp

// Shared memory a block's ring may take, less 1 KB of slack to align the atoms to 1,024 bytes: all
// 227 KB a block may have where the grid has at most one block an SM; elsewhere half the SM's
// 228 KB less the 1 KB the hardware reserves a block, so that two blocks share an SM and the grid
// takes fewer waves.
constexpr int kSmemSolo = 227 * 1024;
constexpr int kSmemPaired = 228 * 1024 / 2 - 1024;

struct RowGemmArgs {
  const unsigned char* A;  // [M, row_bytes]: tokens
  const unsigned char* W;  // [N, w_stride]: weight rows, row_bytes of each
  void* D;                 // [M, N], bf16 or float32
  const float* rows;       // [M], FP8 only: per-token scales
  const float* cols;       // [N], FP8 only: per-channel scales
  int M, N;
  int row_bytes;           // K times the element size: a multiple of kAtomBytes
  RowAdd add;              // Output::kF32Add: how the product is added to what D holds
  int prefetch_row_bytes;  // of each weight row past the prologue's stages, asked into L2 before pdl_wait() (a multiple of 128)
  const unsigned char* next;  // NextWeights: the next projection's weights [next_rows, next_row_bytes], null for none
  int next_rows, next_row_bytes;
  int next_row_prefetch;      // bytes of each of its rows to ask into L2 (a multiple of 128)
  int w_stride;               // bytes from one weight row to the next: row_bytes, or more where rows are padded
};

// The device code, for sm_90a only (the other targets build empty kernels, never launched).
#if TACHYON_WGMMA
constexpr int kStepBytes = 32;            // of each row a wgmma k-step
constexpr int kChunks = kAtomBytes / 16;  // 16-byte copies a row a stage

// Byte offset of a row's 16-byte chunk c in a column of swizzle atoms.
__device__ __forceinline__ uint32_t swizzled(int row, int c) {
  return static_cast<uint32_t>(row * kAtomBytes + ((c ^ (row & 7)) << 4));
}

// Where a warp's lane points ldmatrix.x4 to load the warp's 16 weight rows of a 32-byte k-step as
// wgmma's A fragment (the register-A builds): lanes 8i..8i+7 address matrix i's rows; matrices 0-3
// are rows 0-7 and 8-15 of the k-step's first 16 bytes, then of its second, the fragment's
// registers in order. row: of the block's tile; half: which 16 bytes of the k-step (0 or 1).
struct AFragmentLane {
  int row, half;
  __device__ __forceinline__ AFragmentLane(int warp, int lane) : row(warp * 16 + lane % 8 + 8 * ((lane / 8) & 1)), half(lane / 16) {}
};

// The activation warp's share of a stage's TN token rows: chunk lane % 8 of rows lane / 8 + 4 j. Rows
// past M are zero-filled (their outputs are never written).
template <int TN>
struct TokenCopies {
  static constexpr int kRows = TN * kChunks / 32;
  static constexpr int kRowStep = 32 / kChunks;
  const unsigned char* src[kRows];
  bool valid[kRows];
  int r, c;

  __device__ __forceinline__ TokenCopies(const RowGemmArgs& g, int lane) : r(lane / kChunks), c(lane % kChunks) {
#pragma unroll
    for (int j = 0; j < kRows; ++j) {
      const int m = r + j * kRowStep;
      valid[j] = m < g.M;
      src[j] = g.A + (valid[j] ? static_cast<size_t>(m) * g.row_bytes : 0) + c * 16;
    }
  }
  __device__ __forceinline__ void copy(unsigned char* tile, int atom) const {
#pragma unroll
    for (int j = 0; j < kRows; ++j)
      cp_async_16(tile + swizzled(r + j * kRowStep, c), src[j] + (valid[j] ? atom * kAtomBytes : 0), valid[j]);
  }
};

// A float32 product rounded to nearest with denormals kept, as in bench/gemm-invariance.cu's kernel
// (built without fast math) that matched cuBLASLt: the library builds with --use_fast_math, whose
// -ftz=true would flush them in a plain a * b.
__device__ __forceinline__ float mul_rn(float a, float b) {
  float r;
  asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
__device__ __forceinline__ float add_rn(float a, float b) {
  float r;
  asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
__device__ __forceinline__ float fma_rn(float a, float b, float c) {
  float r;
  asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(a), "f"(b), "f"(c));
  return r;
}

__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }

// `bytes` (a multiple of 16) from p into L2, by the copy engine; nothing waits for them.
__device__ __forceinline__ void prefetch_l2(const void* p, int bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
}

// NextWeights, from the activation warp: this block's share of the next projection's rows,
// [row0, row_end), the leading bytes of `per_piece` of them with each of the launch's `pieces`
// (stages or bursts), so that the requests go out at the pace of the block's own copies.
struct NextPrefetch {
  int row0, row_end, per_piece;
  __device__ __forceinline__ NextPrefetch(const RowGemmArgs& g, int pieces)
      : row0(g.next ? static_cast<int>(static_cast<long long>(g.next_rows) * blockIdx.x / gridDim.x) : 0),
        row_end(g.next ? static_cast<int>(static_cast<long long>(g.next_rows) * (blockIdx.x + 1) / gridDim.x) : 0),
        per_piece((row_end - row0 + pieces - 1) / pieces) {}
  __device__ __forceinline__ void issue(const RowGemmArgs& g, int piece, int lane) const {
    for (int i = lane; i < per_piece; i += 32) {
      const int row = row0 + piece * per_piece + i;
      if (row < row_end) prefetch_l2(g.next + static_cast<size_t>(row) * g.next_row_bytes, g.next_row_prefetch);
    }
  }
};

// A warpgroup thread's outputs: d[j][e] holds feature f0 + 8 (e / 2) and token 8 j + 2 (lane % 4) + e % 2
// (wgmma's accumulator layout), f0 = n0 + 16 warp + lane / 4, a block's feature where 16 warp < F.
// Built after pdl_wait(): FP8 scales and, for Output::kF32Add, what D holds (kernels that the wait
// waited for wrote it) are read before the loop, so that the epilogue does not wait on memory.
template <bool FP8, typename Out, int TN>
struct RowEpilogue {
  int f0, f_end, lane;
  float cols[2] = {1.0f, 1.0f}, rows[TN / 8][2] = {};
  float held[TN / 8][4] = {};

  __device__ __forceinline__ RowEpilogue(const RowGemmArgs& g, int n0, int F, int warp, int lane_)
      : f0(n0 + warp * 16 + lane_ / 4), f_end(min(n0 + F, g.N)), lane(lane_) {
    if constexpr (FP8 && std::is_same_v<Out, float>) {
      if (g.add != RowAdd::kNone) {
        const float* D = static_cast<const float*>(g.D);
#pragma unroll
        for (int h = 0; h < 2; ++h)
#pragma unroll
          for (int j = 0; j < TN / 8; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int f = f0 + 8 * h, m = 8 * j + 2 * (lane % 4) + e;
              if (f < f_end && m < g.M) held[j][2 * h + e] = D[static_cast<size_t>(m) * g.N + f];
            }
      }
    }
    if constexpr (FP8) {
#pragma unroll
      for (int h = 0; h < 2; ++h)
        if (f0 + 8 * h < f_end) cols[h] = g.cols[f0 + 8 * h];
#pragma unroll
      for (int j = 0; j < TN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          if (8 * j + 2 * (lane % 4) + e < g.M) rows[j][e] = g.rows[8 * j + 2 * (lane % 4) + e];
    }
  }

  // The accumulators, finished (wgmma_wait<0> and their operand fence done), into D.
  __device__ __forceinline__ void write(const RowGemmArgs& g, const float (&d)[TN / 8][4]) const {
    Out* out = static_cast<Out*>(g.D);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int f = f0 + 8 * h;
      if (f >= f_end) continue;
#pragma unroll
      for (int j = 0; j < TN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int m = 8 * j + 2 * (lane % 4) + e;
          if (m >= g.M) continue;
          float v = d[j][2 * h + e];
          if constexpr (FP8) {
            // (acc * cols[n]) * rows[m], as cuBLASLt; kF32Add adds what D held after rounding that,
            // or in one fused multiply-add with it (tuning finds which gives cuBLASLt's bits).
            const float c = mul_rn(v, cols[h]);
            if (g.add == RowAdd::kFused) v = fma_rn(c, rows[j][e], held[j][2 * h + e]);
            else v = mul_rn(c, rows[j][e]);
            if (g.add == RowAdd::kRounded) v = add_rn(held[j][2 * h + e], v);
          }
          store(out + static_cast<size_t>(m) * g.N + f, v);
        }
    }
  }
};
#endif  // TACHYON_WGMMA

}  // namespace row_gemm
}  // namespace tachyon
