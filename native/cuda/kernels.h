// The CUDA backend's own kernels. Every output row is computed by one fixed
// sequence of operations that depends only on that row's inputs, so a
// sequence's results do not depend on the batch it runs in.
#pragma once
#include "cpu/model_config.h"
#include "cuda/kv_cache.h"
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cstdint>

namespace tachyon {

// Async scheduling: tokens[t] = sampled[feed[t]] where feed[t] >= 0 (the previous step's sampled
// row), clamped into the vocabulary so a failed step's leftovers never index past the embedding.
void launch_feed_tokens(int32_t* tokens, const int32_t* feed, const int32_t* sampled, int T, int vocab, cudaStream_t s);

// The residual stream x[T, H] between the layers: float32, or bf16 (CudaKnobs.bf16Residual, the
// batched path), as transformers keeps it in a bf16 model: half the bytes the norms read and write.
struct ResidualStream {
  void* x;
  bool bf16 = false;
};

// x[T, H] = embed[token[t]] (+ pos_embed[positions[t]]: learned positions, GPT-2)
void launch_embed(const __nv_bfloat16* embed, const int32_t* tokens, ResidualStream x, int T, int H, cudaStream_t s,
                  const __nv_bfloat16* pos_embed = nullptr, const int32_t* positions = nullptr);

// out = bf16(rmsnorm(x) * w), x unchanged (the few-row path, whose projections add into x themselves).
bool rmsnorm_supports(int H);
void launch_rmsnorm(const float* x, const float* w, float eps, __nv_bfloat16* out, int T, int H, cudaStream_t s);

// The row kernels below hold a row in registers, in pieces of 8: rows of H and I values must be
// multiples of 8 and at most 32,768 long.
bool row_kernels_support(int H, int I);

// x += delta (+ bias) when delta is given (a projection's bf16 output), then out = bf16(rmsnorm(x) * w),
// or with norm_bias bf16(layernorm(x) * w + norm_bias) (GPT-2, GPT-J); delta2: a second bf16 delta added
// with the first (GPT-J's MLP output beside its attention output); one block per row. rows: optional row index list (gather), else rows 0..n-1.
// With q_out, the output goes out as E4M3 with a per-row scale instead (out unused): the FP8 GEMM input.
void launch_add_rmsnorm(ResidualStream x, const __nv_bfloat16* delta, const float* bias, const float* w, float eps,
                        __nv_bfloat16* out, const int32_t* rows, int n, int H, cudaStream_t s,
                        __nv_fp8_e4m3* q_out = nullptr, float* q_scale = nullptr, const float* norm_bias = nullptr,
                        const __nv_bfloat16* delta2 = nullptr);

// rows[n, cols] += bias[cols] (float32; GPT-J's LM head bias on the logits).
void launch_add_row_bias(float* rows, const float* bias, int n, int cols, cudaStream_t s);

// qkv[T, (heads + 2 kv) * D] (bf16, + bias): RoPE on q into q_out (float32, the same [T, (heads + 2 kv) * D]
// layout; only q's columns are written), RoPE on k, and k and v written to the layer's paged cache
// (bf16, or E4M3 with its scales: kv_cache.h). cos_sin[position][D / 2]: the rotation of each pair
// (rope_cos_sin). D must be a multiple of 16. q_skip[T] (bf16 or E4M3 cache; nullptr: none): tokens
// whose q is left unwritten, prompt rows that the prefill kernel turns from qkv itself
// (AttentionArgs::q_raw). An INT8 cache writes every q.
void launch_rope_kv_write(const __nv_bfloat16* qkv, const float* bias, float* q_out, const int32_t* positions,
                          const int32_t* token_seq, const int32_t* block_tables, int table_stride, const float2* cos_sin,
                          const KvLayer& kv, int T, int heads, int kv_heads, int D, int block_size, cudaStream_t s,
                          const uint8_t* q_skip = nullptr);

// act[T, I] = bf16(act(in)): SwiGLU, silu(gate) * up from in[T, 2I]; GELU (tanh or erf) of in[T, I]
// (+ bias either way); with q_out, those values as E4M3 with a per-row scale into q_out / q_scale
// instead (act unused).
void launch_mlp_act(MlpKind kind, const __nv_bfloat16* in, const float* bias, __nv_bfloat16* act, int T, int I, cudaStream_t s,
                    __nv_fp8_e4m3* q_out = nullptr, float* q_scale = nullptr);

// Random values uniform in [-scale, scale] from a counter hash (dummy weights).
void launch_fill_random(__nv_bfloat16* out, size_t n, float scale, uint64_t seed, cudaStream_t s);

}  // namespace tachyon
