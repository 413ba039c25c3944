// Paged causal attention on tensor cores (mma.m16n8k16, bf16 in, float32 out).
//
// A warp serves 16 query rows: whole tokens of one sequence times the query
// heads that share one KV head (GQA), so each cached K/V row is read once for
// all of them. Positions go in tiles of 16 through shared memory, and in
// splits of kAttnSplit positions: each split gets a fresh online-softmax state,
// and the splits are folded into the result one after another, always in
// position order. A query row's arithmetic therefore depends only on its own
// position and its sequence's cache, never on the batch: small decode batches
// may run the splits in parallel blocks, the last of which folds them, and the
// result is the same to the bit.
#pragma once
#include <cuda_bf16.h>

#include "cuda/kv_cache.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

namespace tachyon {

constexpr int kAttnSplit = 64;  // positions per split
constexpr int kAttnMaxGroup = 16;        // query heads per KV head both attention kernels serve
constexpr int kAttnPartialSlots = 4096;  // per-(tile or token, KV head, split or range) states the partial buffer holds

// Calls f(std::integral_constant<int, D>) for a head_dim the kernels are built for (multiples of 16 up
// to 128, and 256: GPT-J); false for any other.
template <typename F>
bool with_head_dim(int D, F&& f) {
  switch (D) {
    case 16: f(std::integral_constant<int, 16>{}); return true;
    case 32: f(std::integral_constant<int, 32>{}); return true;
    case 48: f(std::integral_constant<int, 48>{}); return true;
    case 64: f(std::integral_constant<int, 64>{}); return true;
    case 80: f(std::integral_constant<int, 80>{}); return true;
    case 96: f(std::integral_constant<int, 96>{}); return true;
    case 112: f(std::integral_constant<int, 112>{}); return true;
    case 128: f(std::integral_constant<int, 128>{}); return true;
    case 256: f(std::integral_constant<int, 256>{}); return true;
    default: return false;
  }
}

struct AttentionArgs {
  const float* qkv;  // [T, (heads + 2 kv_heads) * D], q after RoPE
  const int32_t* positions;
  const int32_t* token_seq;
  const int32_t* block_tables;
  int table_stride;
  KvLayer kv;  // this layer's cache
  __nv_bfloat16* out;  // [T, heads * D]
  const int2* tiles;   // (first token, count): consecutive tokens of one sequence
  int num_tiles;
  int heads, kv_heads, head_dim, block_size;
  float* partial;       // split-parallel decode: per (tile, KV head, split) state
  int* split_counters;  // split-parallel decode: blocks finished per (tile, KV head); zero between launches
  // block_size as a multiply and shift (block_divisor()): the kernels find a position's block for
  // every 16-byte copy they stage, where a division by a runtime int costs some 25 instructions.
  uint32_t block_mul;
  int block_shift;
  // The prefill kernels only (nullptr elsewhere): q read from the QKV projection's bf16 output
  // [T, (heads + 2 kv_heads) * D] (+ q_bias) and turned by q_cos_sin (rope_cos_sin's table) as the
  // RoPE kernel would (rope.cuh), instead of its float32 q in qkv, which it then leaves unwritten
  // for these rows (launch_rope_kv_write's q_skip): 16 bytes written and read back a value fewer.
  const __nv_bfloat16* q_raw = nullptr;
  const float* q_bias = nullptr;
  const float2* q_cos_sin = nullptr;
};

// Division of a non-negative int below 2^31 by d >= 1 as q = (umulhi(n, mul) + n) >> shift, with
// shift = ceil(log2 d) and mul = floor(2^32 (2^shift - d) / d) + 1 (Granlund and Montgomery);
// a power of two gets mul = 1 (umulhi is 0), so q = n >> shift.
inline void block_divisor(int d, uint32_t& mul, int& shift) {
  if (d < 1 || d > (1 << 20)) throw std::invalid_argument("block_divisor: block size out of range");
  shift = 0;
  while ((1u << shift) < static_cast<uint32_t>(d)) ++shift;
  mul = static_cast<uint32_t>(((static_cast<uint64_t>(1) << 32) * ((static_cast<uint64_t>(1) << shift) - d)) / d + 1);
}

// log2(e) / sqrt(head_dim), the scores' scale in the kernels' log2 domain, times an E4M3 cache's K
// scale (its V scale multiplies the output).
inline float attention_score_scale_log2(const AttentionArgs& a) {
  return 1.4426950408889634f / std::sqrt(static_cast<float>(a.head_dim)) * (a.kv.type == KvType::kE4M3 ? a.kv.k_scale : 1.0f);
}

// Throws unless the kernel serves this head layout (head_dim a multiple of 16 up to 128, or 256; at most 16 query heads per KV head).
void check_attention_shape(int heads, int kv_heads, int head_dim);

// Query tokens per tile: 1 in decode-only steps, else as many as four warps of 16 rows hold.
int attention_tile_tokens(int heads, int kv_heads, bool decode);

// Splits a decode step may run in parallel blocks: those of its longest context, or 0 (one block per tile
// and KV head walks every split) when the step has blocks enough or the partial buffer is too small.
int attention_parallel_splits(int num_tiles, int kv_heads, int max_position, int sm_count);

// Bytes of the partial-state buffer and of the (zero-filled) counters split-parallel decode needs.
size_t attention_partial_bytes(int heads, int kv_heads, int head_dim);
size_t attention_counter_bytes();

// decode: every tile is one token. splits > 0 (decode only): run that many splits per tile in parallel.
void launch_paged_attention(const AttentionArgs& a, bool decode, int splits, int sm_count, cudaStream_t s);

// Generated tokens (attention_decode.cu; StepBatch::prompt_lens): positions in the mma's M,
// query heads in N. Serves at most 8 query heads per KV head and head_dim a multiple of 16 (32 for
// a one-byte cache) up to 128, or 256. a.tiles: one token each.
// warps: 0 chooses the warps a (token, KV head) block gets (as many as keep the step's blocks in one
// wave; past one wave, with long_context, up to 4 to shorten the last wave); a power of two up to 16
// forces that many (at most what the head size, cache and device allow), for measuring. The fold
// order, and so every bit, is the same either way.
// long_context: some generated token of the step is at position kLongDecodeContext or later.
constexpr int kLongDecodeContext = 1024;
bool decode_attention_supports(int heads, int kv_heads, int head_dim, KvType kv);
// programmatic false: an ordinary launch (a second stream, ordered after an event: CudaModel's overlap).
void launch_decode_attention(const AttentionArgs& a, int sm_count, cudaStream_t s, bool long_context, int warps = 0,
                             bool programmatic = true);

// Prompt rows (attention_prefill.cu; StepBatch::prompt_lens): 128 query rows a block, 64
// positions a tile (32 at head_dim 256), one online softmax over the whole context (no splits).
// Serves what attention.cu serves. a.tiles: runs of prefill_attention_tile_tokens() tokens at most.
bool prefill_attention_supports(int heads, int kv_heads, int head_dim);
int prefill_attention_tile_tokens(int heads, int kv_heads);
void launch_prefill_attention(const AttentionArgs& a, cudaStream_t s);

// The same on Hopper's warpgroup MMA (attention_prefill_sm90.cu): head_dim 64 or 128, on an sm_90
// device running code built for sm_90a; same tiles (prefill_attention_tile_tokens()).
bool prefill_attention_sm90_supports(int heads, int kv_heads, int head_dim);
void launch_prefill_attention_sm90(const AttentionArgs& a, cudaStream_t s);
// The same tiles and bits, warp-specialized (attention_prefill_sm90_ws.cu: a producer warpgroup
// stages the tiles, two consumer warpgroups multiply) and persistent: at most max_blocks blocks,
// each taking (tile, KV head) items in turn; where prefill_attention_sm90_supports().
// The default where the prefill kernel turns q itself (GpuOptions::warp_specialized_prefill).
// fp8_scores (where prefill_fp8_scores_supports()): Q K^T on E4M3 tensor cores, the cache's K bytes
// as they are and q rounded to E4M3 with a scale a row (TensorRT-LLM's FP8 context attention does
// the same). fp8_values (needs fp8_scores): P V on E4M3 tensor cores too, P rounded to E4M3 and V
// the cache's bytes transposed in shared memory. Not the same bits as the other kernels; both knobs
// on by default (GpuOptions::fp8_prefill_scores, fp8_prefill_values). pairs (needs fp8_values): two
// K/V tiles a consumer iteration with a leaner softmax (GpuOptions::prefill_pairs, off by default
// until measured on a GPU).
bool prefill_fp8_scores_supports(int head_dim, KvType kv);
void launch_prefill_attention_sm90_ws(const AttentionArgs& a, int max_blocks, bool fp8_scores, bool fp8_values, bool pairs,
                                      cudaStream_t s);

// Steps of few tokens (the few-row path; attention_few.cu): each token's context is cut into
// ranges of whole 32-position chunks that run in parallel blocks of four warps, and the last block
// of a token and KV head folds them. Latency over batch invariance: the ranges follow the context
// length, so the rounding differs from launch_paged_attention's. a.tiles is unused; num_tiles is
// the step's token count, at most kFewAttentionTokens.
constexpr int kFewAttentionTokens = 8;
// Its staged chunk and q live in static shared memory (48 KB at most): head_dim 256 would take 50 KB.
constexpr int kFewAttentionMaxHeadDim = 128;
void launch_few_attention(const AttentionArgs& a, cudaStream_t s);

}  // namespace tachyon
