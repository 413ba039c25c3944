// GEMMs of few rows (decode at small batch): out[M, N] (float32) =
// A[M, K] · W[N, K]^T, both E4M3 (unscaled product, as the cuBLASLt path) or
// both bf16. Reading W once is the whole cost, so a warp streams one row of W
// with 16-byte loads and all M rows of A ride along.
#pragma once
#include <cuda_runtime.h>

namespace tachyon {

constexpr int kGemvMaxRows = 8;

// Whether the kernel serves this shape (M <= kGemvMaxRows, rows of 16 bytes' multiples).
bool gemv_supports(bool fp8, int M, int K);

void launch_gemv(bool fp8, const void* A, const void* W, float* out, int M, int N, int K, cudaStream_t s);


}  // namespace tachyon
