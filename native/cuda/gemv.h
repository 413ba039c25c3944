// Products of few rows (decode at small batch), where reading W once is the
// whole cost: a warp streams two rows of W with 16-byte loads and all M rows
// of A ride along.
//
// launch_fused_gemv: the decode path's projections with the small kernels
// after them folded in. A is bf16 (weight-only arithmetic: FP8 and INT8 weights
// are widened and multiplied by the bf16 activations, nothing is quantized), the
// weight scale and bias are applied on the way out, and the epilogue is a
// float32 store or an add into the residual stream, SwiGLU of a gate row and
// its up row into bf16, or RoPE of a q/k pair with k and v written to the
// paged KV cache (bf16 or E4M3).
// Weights never depend on the kernels before, so each warp issues its first
// loads before waiting on them (programmatic dependent launch).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/kv_cache.h"

namespace tachyon {

constexpr int kGemvMaxRows = 8;

// What a weight matrix holds (bf16, or E4M3 / int8 with per-row scales).
enum class WeightType { kBf16, kFp8, kInt8 };

// Whether the kernels serve this shape (M <= kGemvMaxRows, rows of 16 bytes' multiples).
bool gemv_supports(WeightType w, int M, int K);

enum class GemvEpilogue { kStore, kSwiGLU, kRopeKv };

// Where the rotated q goes and where k / v are cached (kRopeKv). W's rows are q heads, k heads, v
// heads of head_dim each; token m of the step is at positions[m] of sequence token_seq[m].
struct RopeKvTarget {
  const int32_t* positions = nullptr;
  const int32_t* token_seq = nullptr;
  const int32_t* block_tables = nullptr;
  int table_stride = 0;
  const float2* cos_sin = nullptr;  // [position][head_dim / 2]
  KvLayer kv;  // this layer's cache
  float k_inv_scale = 1.0f, v_inv_scale = 1.0f;  // E4M3 cache: 1 / kv.k_scale, 1 / kv.v_scale
  int heads = 0, kv_heads = 0, head_dim = 0, block_size = 0;
};

struct FusedGemv {
  const void* W = nullptr;      // [N, K], E4M3, int8 or bf16
  WeightType w_type = WeightType::kBf16;
  const float* scale = nullptr;  // [N] per-row weight scale, or null
  const float* bias = nullptr;   // [N], or null
  int N = 0, K = 0;
  const __nv_bfloat16* rows = nullptr;  // A: [M, K]
  GemvEpilogue epilogue = GemvEpilogue::kStore;
  float* out = nullptr;            // kStore: [M, N]; kRopeKv: q columns of [M, N] (rotated)
  float* residual = nullptr;        // kStore into the residual stream: residual[M, N] += value (out unused)
  __nv_bfloat16* act = nullptr;    // kSwiGLU: [M, N / 2] = silu(rows [0, N/2)) * rows [N/2, N)
  RopeKvTarget rope;
};

// Whether launch_fused_gemv serves M rows of this product.
bool fused_gemv_supports(const FusedGemv& f, int M);

void launch_fused_gemv(const FusedGemv& f, int M, cudaStream_t s);

}  // namespace tachyon
