// A cuBLASLt product's descriptors (the operation and the A, B and D layouts), destroyed with it:
// the library's GEMM (gemm.cc) and the GEMM benches describe each product into one.
#pragma once
#include <cublasLt.h>

namespace tachyon {

struct LtDescs {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  LtDescs() = default;
  LtDescs(const LtDescs&) = delete;
  LtDescs& operator=(const LtDescs&) = delete;
  ~LtDescs() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace tachyon
