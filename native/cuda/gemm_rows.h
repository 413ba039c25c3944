// Few-row GEMMs of our own on Hopper's wgmma (sm_90a): D[M, N] = A[M, K] · W[N, K]^T, row-major,
// for M = 1 to 64 tokens, where cuBLASLt's FP8 kernels with per-row scales have only 128x128
// tiles (a 4,096-feature projection gets 32 blocks). Each row comes out bit for bit as cuBLASLt's
// non-split-K kernels compute it at any row count (bench/gemm-invariance.cu, bench/RESULTS.md): all
// of K summed in order from zero in one wgmma accumulator chain, then for FP8
// __float2bfloat16((acc * cols[n]) * rows[m]), those two float multiplies in that order. So Gemm
// may offer it beside cuBLASLt's candidates without a row's result depending on its batch.
//
// Operands as gemm.h: kFp8 (E4M3 A and W, GemmScales rows[M] and cols[N]) or kBf16 (no scales);
// D bf16 or float32. Not kInt8.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "cuda/gemm_types.h"

namespace tachyon {

constexpr int kRowGemmMaxRows = 64;  // tokens: wgmma's N, at most 64 here

// Whether this build and device run the kernels (an sm_90a build on an sm_90 device).
bool row_gemm_available();

// Whether (type, N, K) fits: K a multiple of 128 bytes of a row (FP8: 128 elements; bf16: 64).
// Callers take cuBLASLt otherwise.
bool row_gemm_supports(Operand type, int N, int K);

// Output::kF32Add (FP8 only): how the scaled product p = (acc * cols[n]) * rows[m] meets what D
// holds. cuBLASLt's epilogue (beta = 1, C = D) does one of the two; Gemm's tuning compares both
// with it and takes the one that gives its bits, or none.
enum class RowAdd {
  kNone,     // D = p
  kRounded,  // D = D + p, p rounded first
  kFused,    // D = fma(acc * cols[n], rows[m], D)
};

// Another projection's weights (the one a decode step multiplies after this one), `bytes` of them
// asked into L2 while this one runs (CudaKnobs.rowGemmNextMiB): the same leading bytes of each of
// its rows (whole 128-byte lines, at most a row), so that every block of the launch that reads them
// finds its first stages there; this launch's blocks share the rows, a few a stage, so that the
// requests go out at its own pace. Nothing when w is null.
struct NextWeights {
  const void* w = nullptr;
  int rows = 0;       // N of that projection
  int row_bytes = 0;  // from one of its rows to the next: K times its element size, or more where rows are padded
  size_t bytes = 0;
};

// The L2 policy each launch gives its weights (where TACHYON_ROW_GEMM_STREAMING, the default): the
// first `bytes` from w, at most the device's largest access-policy window (num_bytes 0 where it has
// none), streaming, first to go from L2: they are read once a step. bench/weight-stream.cu's copy
// kernels take the same.
cudaAccessPolicyWindow streaming_window(const void* w, size_t bytes);

// M from 1 to kRowGemmMaxRows; A, W and D 16-byte aligned. Launched with PDL (pdl.cuh): the first
// weight copies go out before the previous kernel has finished. add: kNone unless out is kF32Add.
// l2_prefetch_bytes (CudaKnobs.rowGemmPrefetchMiB): up to this many more weight bytes, shared
// evenly by the rows, asked into L2 before the wait too (the same bits; 0: none). w_stride: bytes
// from one weight row to the next, a multiple of 16 (0: K times the element size, rows packed;
// more for padded rows, which bench/weight-stream.sh's `pad` rows time).
void launch_row_gemm(Operand type, Output out, const void* A, const void* W, void* D, int M, int N, int K, GemmScales sc,
                     cudaStream_t s, RowAdd add = RowAdd::kNone, size_t l2_prefetch_bytes = 0, NextWeights next = {},
                     int w_stride = 0);

}  // namespace tachyon
