// GEMMs: D[M, N] = A[M, K] · W[N, K]^T, row-major, A and W both bf16, both
// E4M3 or both int8; D float32 (logits) or bf16 (projections), or the int32
// sums of an int8 product (W8A8: int8.h applies its scales). An FP8 product is scaled in
// cuBLASLt's epilogue (outer-vector scaling): D[m][n] = rows[m] · cols[n] ·
// sum_k A[m][k] W[n][k], per-token activation scales times per-channel weight
// scales, so a projection's reader gets finished bf16 values and never a
// float32 intermediate (half the bytes written and read back). Output::kF32Add (FP8): the scaled
// product added to the float32 D in place (beta = 1, C = D), for the O and down projections
// adding into the residual stream (CudaKnobs.residualInGemm).
//
// The kernel for each weight shape is chosen at load by timing cuBLASLt's
// candidates once per bucket of row counts (1, 2, 4, ... up to the step's
// token budget): decode at batch 1 and prefill at 8,192 rows want different
// kernels. Up to 64 rows our own wgmma kernel (gemm_rows.h, sm_90a) competes
// too, where it gives cuBLASLt's bits (checked at tuning). Split-K candidates
// are never taken: they reorder the sum over K. Every other cuBLASLt kernel
// computed a row the same way at any row count where measured (H200: Llama-3-8B's
// FP8 projections and bf16 lm_head, bench/gemm-invariance.cu), so a row's result
// does not depend on how many rows ran beside it, whichever bucket's kernel ran.
// Tuning checks it for each shape on its random inputs (each bucket's first rows
// against the 1-row bucket's kernel) and reports a mismatch on stderr. (Steps of a few tokens mostly take the fused GEMVs of
// gemv.h outside batch-invariant mode; they round their own way.)
#pragma once
#include <cuda_bf16.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <cublasLt.h>

#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"
#include "cuda/gemm_rows.h"
#include "cuda/gemm_types.h"
#include "cuda/lt_descs.h"

namespace tachyon {

class Gemm {
 public:
  explicit Gemm(size_t workspace_bytes);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Chooses the kernels for (type, out, N, K) for every bucket up to max_m rows; A, D and the row
  // scales must hold max_m rows.
  void tune(Operand type, Output out, const void* A, const void* W, void* D, int max_m, int N, int K, GemmScales sc,
            cudaStream_t s);
  // next: another projection's weights to ask into L2 while the few-row GEMM runs (launch_row_gemm's;
  // cuBLASLt's kernels take none).
  void run(Operand type, Output out, const void* A, const void* W, void* D, int M, int N, int K, GemmScales sc,
           cudaStream_t s, NextWeights next = {});

  // One line per (shape, bucket): what tuning chose and how long it took, for the log.
  const std::vector<std::string>& report() const { return report_; }

  // Bytes a launch of the few-row GEMM asks into L2 before its PDL wait (launch_row_gemm's
  // l2_prefetch_bytes) when run() takes it; tuning times it without.
  void set_row_prefetch(size_t bytes) { row_prefetch_bytes_ = bytes; }
  // FP8 weights whose rows lie this many bytes past K apart (CudaKnobs.weightRowPad; a multiple of
  // 128): cuBLASLt's leading dimension and the row GEMM's stride. Set before tuning; 0: packed.
  void set_fp8_row_pad(int bytes) { fp8_row_pad_ = bytes; }

 private:
  struct Choice {
    cublasLtMatmulAlgo_t algo{};
    bool row_gemm = false;  // gemm_rows.h's kernel instead of algo
    RowAdd row_add = RowAdd::kNone;  // Output::kF32Add: its way of adding that matches cuBLASLt's
  };
  using Descs = LtDescs;
  void describe(Descs& ds, Operand type, Output out, int M, int N, int K, GemmScales sc) const;
  Choice tune_at(Operand type, Output out, const void* A, const void* W, void* D, int M, int N, int K, GemmScales sc,
                 cudaStream_t s);
  int bucket(int M) const;
  void launch(const Choice& c, Operand type, Output out, const void* A, const void* W, void* D, int M, int N, int K,
              GemmScales sc, cudaStream_t s, NextWeights next = {});
  std::vector<unsigned char> rows_of(const Choice& c, Operand type, Output out, const void* A, const void* W, void* D, int M,
                                     int rows, int N, int K, GemmScales sc, cudaStream_t s);
  using Key = std::tuple<int, int, int, int, int>;  // (operand type, output type, N, K, bucket)

  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer workspace_;
  std::map<Key, Choice> choices_;
  std::vector<std::string> report_;
  size_t row_prefetch_bytes_ = 0;
  int fp8_row_pad_ = 0;
  // Elements from one weight row to the next (cuBLASLt's leading dimension): K, or K + fp8_row_pad_ for FP8.
  int weight_ld(Operand type, int K) const { return type == Operand::kFp8 ? K + fp8_row_pad_ : K; }
  // The same in bytes for launch_row_gemm's w_stride (FP8: one byte an element; else 0, packed).
  int row_gemm_stride(Operand type, int K) const { return type == Operand::kFp8 ? weight_ld(type, K) : 0; }
};

}  // namespace tachyon
