// What a GEMM multiplies and writes (gemm.h's cuBLASLt GEMMs and gemm_rows.h's own kernel share
// them); apart from gemm.h so the kernels compile without cuBLAS's headers.
#pragma once

namespace tachyon {

enum class Operand { kBf16, kFp8, kInt8 };
// kI32: kInt8 operands only. kF32Add: kFp8 operands only, D float32 holding a value already, the
// scaled product added to it (cuBLASLt's beta = 1 with C = D): a projection adding into the
// float32 residual stream in place (CudaKnobs.residualInGemm).
enum class Output { kF32, kBf16, kI32, kF32Add };

// An int8 product runs at least this many rows: cuBLASLt's IMMA kernels are not trusted below
// (PyTorch's _int_mm refuses 16 rows or fewer on this path). A and D of an int8 product must hold
// max(M, kImmaMinRows) rows; the rows past M are computed and never read.
constexpr int kImmaMinRows = 32;

// kFp8 only: rows[M] (per token) and cols[N] (per weight row), both float32 on the device.
struct GemmScales {
  const float* rows = nullptr;
  const float* cols = nullptr;
};

}  // namespace tachyon
