// GEMMs: D[M, N] (float32) = A[M, K] · W[N, K]^T, row-major, A and W both bf16
// or both E4M3 (the FP8 product is unscaled; the reader applies the scales).
//
// The kernel for each weight shape is chosen at load by timing cuBLASLt's
// candidates and, for a few rows, the GEMV kernel, once per bucket of row
// counts (1, 2, 4, ... up to the step's token budget): decode at batch 1 and
// prefill at 8,192 rows want different kernels.
// Batch-invariant mode keeps one cuBLASLt algorithm without split-K, tuned at
// 256 rows, for every M instead: a row's result then never depends on how
// many rows ran beside it (at the cost of small-batch speed).
#pragma once
#include <cuda_bf16.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"

namespace tachyon {

enum class Operand { kBf16, kFp8 };

class Gemm {
 public:
  Gemm(size_t workspace_bytes, bool batch_invariant);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Chooses the kernels for (type, N, K) for every bucket up to max_m rows; A and D must hold max_m rows.
  void tune(Operand type, const void* A, const void* W, float* D, int max_m, int N, int K, cudaStream_t s);
  void run(Operand type, const void* A, const void* W, float* D, int M, int N, int K, cudaStream_t s);

  // One line per (shape, bucket): what tuning chose and how long it took, for the log.
  const std::vector<std::string>& report() const { return report_; }

 private:
  struct Choice {
    bool gemv = false;
    cublasLtMatmulAlgo_t algo{};
  };
  struct Descs {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    ~Descs();
  };
  void describe(Descs& ds, Operand type, int M, int N, int K) const;
  Choice tune_at(Operand type, const void* A, const void* W, float* D, int M, int N, int K, cudaStream_t s);
  int bucket(int M) const;
  using Key = std::tuple<int, int, int, int>;  // (operand type, N, K, bucket)

  bool invariant_;
  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer workspace_;
  std::map<Key, Choice> choices_;
  std::vector<std::string> report_;
};

}  // namespace tachyon
