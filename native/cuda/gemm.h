// GEMMs through cuBLASLt: D[M, N] (float32) = A[M, K] (bf16) · W[N, K]^T (bf16),
// row-major. One algorithm per weight shape (N, K), chosen at load by timing
// the heuristic's candidates and kept for every M: the same kernel whatever
// the batch size, so a row's result does not depend on the batch (no split-K).
#pragma once
#include <cuda_bf16.h>

#include <map>
#include <tuple>
#include <utility>

#include "cuda/cuda_check.h"
#include "cuda/device_buffer.h"

namespace tachyon {

enum class Operand { kBf16, kFp8 };

class Gemm {
 public:
  explicit Gemm(size_t workspace_bytes);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Times the candidates for (N, K) on the given buffers at M rows; A and D must hold M rows.
  // A and W are bf16 or E4M3 (with FP8 the product is unscaled; the reader applies the scales).
  void tune(Operand type, const void* A, const void* W, float* D, int M, int N, int K, cudaStream_t s);
  void run(Operand type, const void* A, const void* W, float* D, int M, int N, int K, cudaStream_t s);

  // What tuning chose, for the log: (N, K) -> (microseconds at the tuning M, candidates timed).
  const std::map<std::pair<int, int>, std::pair<float, int>>& report() const { return report_; }

 private:
  struct Descs {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    ~Descs();
  };
  void describe(Descs& ds, Operand type, int M, int N, int K) const;
  using Key = std::tuple<int, int, int>;  // (N, K, operand type)

  cublasLtHandle_t handle_ = nullptr;
  DeviceBuffer workspace_;
  std::map<Key, cublasLtMatmulAlgo_t> algos_;
  std::map<std::pair<int, int>, std::pair<float, int>> report_;
};

}  // namespace tachyon
