// The contract every backend implements, and the one entry point a backend
// library exports. The addon drives a Backend through this interface only;
// the CUDA backend lives in its own shared library (build/cuda), loaded with
// dlopen when device 'cuda' is asked for, so CPU-only builds never link CUDA.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "cpu/batch.h"
#include "cpu/model_config.h"
#include "cpu/weights.h"

namespace tachyon {

// What one step hands back. Rows of sequences that did not sample hold -1 / NaN.
struct StepOutput {
  std::vector<int32_t> tokens;          // [S]
  std::vector<float> logprobs;          // [S]
  int top_n = 0;
  std::vector<int32_t> top_ids;         // [S, top_n]
  std::vector<float> top_logprobs;      // [S, top_n]
  std::vector<float> logits;            // [S, vocab] when asked for
};

struct BackendInfo {
  int num_blocks = 0;
  int block_size = 0;
  uint64_t bytes_per_block = 0;
  int num_threads = 1;
  uint64_t device_bytes_used = 0;  // weights + workspace + KV pool (GPU backends)
  std::string device_name;
  std::string weight_dtype;        // what the GEMMs read: f32/bf16/fp8/int8 (weight-only)/w8a8 (CPU: the checkpoint's, or I8)
  std::string gemm_tuning;         // GPU backends: the load-time GEMM tuning's lines (kernel, time and any bit mismatch), one a line
  uint64_t projection_weight_bytes = 0;  // GPU backends: the layers' projection weights as held on the device (padded rows included)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const ModelConfig& config() const = 0;
  virtual BatchLimits limits() const = 0;
  virtual BackendInfo info() const = 0;
  // batch has passed validate_batch against config() and limits(); it has no feed.
  virtual void step(const StepBatch& batch, StepOutput& out) = 0;

  // Async scheduling: launch(N + 1) may come before collect(N), so the host builds step N + 1
  // while the device runs step N. Calls alternate slots 0, 1, 0, ...; launch on the JS thread
  // (must not block for long), collect on a worker, each in step order, and at most two steps
  // launched and not collected. A batch's feed reads the tokens the step before it sampled;
  // prev is that step's output once collected (nullptr if it failed: fed rows then compute on
  // an arbitrary valid token, and their results are not read).
  // The default runs the whole step in collect, resolving the feed on the host.
  virtual void launch(StepBatch& /*batch*/, int /*slot*/) {}
  virtual void collect(StepBatch& batch, int /*slot*/, StepOutput& out, const StepOutput* prev) {
    resolve_feed(batch, prev);
    step(batch, out);
  }
};

// Settings a GPU backend reads beside RuntimeOptions. The addon sets every
// field from the TypeScript options (defaults: config/defaults.ts only).
struct GpuOptions {
  int device = 0;
  std::string dtype;                   // bf16 | fp8
  std::string kv_cache_dtype = "auto";  // --kv-cache-dtype: auto (bf16) | fp8 (E4M3) | int8
  std::string quantization;            // --quantization: "" | int8 (weight-only) | w8a8
  double memory_fraction = 0;          // of the card, for weights + workspace + KV pool
  uint64_t kv_cache_bytes = 0;         // 0: everything the fraction leaves
  int block_size = 0;
  int max_num_tokens = 0;
  int max_num_seqs = 0;
  bool dummy = false;                  // random weights of the config's shape
  uint64_t dummy_seed = 0;
  // Knobs (config: --batch-invariant, --cuda-graphs, --pdl, --fused-gemv, --fast-attention, --fp8-prefill-scores,
  // --fp8-prefill-values, --prefill-pairs, --residual-in-gemm, --profile).
  bool batch_invariant = true;         // no few-row path; the decode kernel for every decode step
  bool cuda_graphs = true;             // decode steps replayed from captured graphs
  bool pdl = true;                     // programmatic dependent launch (sm_90)
  bool fused_gemv = true;              // the few-row path for steps of at most 4 tokens
  bool fast_attention = true;          // prefill and decode kernels (off: attention.cu for every row)
  bool warp_specialized_prefill = true;   // sm_90a: the warp-specialized, persistent prefill kernel where prefill_rope_q serves (same bits)
  bool overlap_decode_attention = true;  // mixed steps: the decode kernel on a second stream beside the prefill kernel (same bits)
  bool prefill_rope_q = true;          // prompt rows' q turned inside the prefill kernel, not written by the RoPE kernel (same bits)
  int decode_warps = 0;                // the decode kernel's warps a block: 0 chosen per step; 1-16 forced (measuring; same bits)
  bool fp8_prefill_scores = true;      // prompt rows' Q K^T on E4M3 tensor cores (E4M3 cache, head_dim 128, warp-specialized kernel); other bits
  bool fp8_prefill_values = true;      // with fp8_prefill_scores: P V on E4M3 tensor cores too (P rounded to E4M3, V^T of the cached bytes); other bits
  bool bf16_residual = false;          // the batched path's residual stream in bf16, as transformers keeps it (half the norms' bytes); other bits
  bool residual_in_gemm = true;        // FP8: the O and down GEMMs add into the float32 residual stream in place (the norms read it only); other bits
  bool prefill_pairs = false;          // with fp8_prefill_values: two K/V tiles a consumer iteration, leaner softmax (not yet measured); other bits
  int prefill_blocks = 0;              // the warp-specialized prefill kernel's blocks: 0 one an SM; else at most that many (tests, measuring; same bits)
  int row_gemm_prefetch_mib = 0;       // the few-row GEMM's weights asked into L2 before its PDL wait, MiB a launch: 0 none (not yet measured; same bits)
  int weight_row_pad = 0;              // FP8 projections' weight rows padded by this many bytes past K on the device (a multiple of 128): 0 packed (not yet measured; same bits)
  int row_gemm_next_mib = 0;           // the batched path's QKV, O and down few-row GEMMs ask up to this many MiB of the next projection's weights into L2 as they run: 0 none (not yet measured; same bits)
  bool profile = false;                // per-step GPU time and layer 0's ops on stderr; NVTX ranges
};

// Exported (extern "C") by the CUDA library. Returns nullptr and fills error on failure.
using CreateGpuBackendFn = Backend* (*)(const ModelConfig& config, const ModelWeights* weights, const GpuOptions& options,
                                        char* error, size_t error_len);
constexpr const char* kCreateGpuBackendSymbol = "tachyon_create_cuda_backend";

// Bumped whenever a struct shared with the backend library (StepBatch, GpuOptions,
// StepOutput, ModelConfig, ModelWeights, BackendInfo) changes layout: the addon refuses a
// library built from other headers instead of reading fields at shifted offsets.
constexpr int kBackendAbiVersion = 23;
using BackendAbiVersionFn = int (*)();
constexpr const char* kBackendAbiVersionSymbol = "tachyon_backend_abi_version";

}  // namespace tachyon
