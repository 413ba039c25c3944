// The CUDA backend: the runtime contract on an NVIDIA GPU. BF16 weights read
// by cuBLASLt, a float32 residual stream, a bf16 or E4M3 paged KV cache, own kernels
// for norms, RoPE + KV write, paged attention, SwiGLU, and sampling.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include "backend.h"
#include "cuda/attention.h"
#include "cuda/device_buffer.h"
#include "cuda/gemm.h"
#include "cuda/gemv.h"
#include "cuda/kernels.h"
#include "cuda/pinned.h"
#include "cuda/profiled_steps.h"
#include "cuda/logit_adjust.h"
#include "cuda/sampling.h"

namespace tachyon {

class CudaModel : public Backend {
 public:
  CudaModel(const ModelConfig& config, const ModelWeights* weights, const GpuOptions& options);
  ~CudaModel() override;

  const ModelConfig& config() const override { return config_; }
  BatchLimits limits() const override;
  BackendInfo info() const override { return info_; }
  void step(const StepBatch& batch, StepOutput& out) override;
  // Async scheduling (backend.h): launch queues the forward, and unless the step samples under
  // grammar masks its sampling and the copies back; collect waits and fills out. A fed token is
  // gathered on the device from the previous step's sampled tokens.
  void launch(StepBatch& batch, int slot) override;
  void collect(StepBatch& batch, int slot, StepOutput& out, const StepOutput* prev) override;

 private:
  // A projection's weight: bf16 [N, K], or E4M3 (fp8) or int8 (int8, w8a8) [N, K] with per-row scales [N].
  struct Linear {
    DeviceBuffer w, scale;
    int N = 0, K = 0;
    WeightType type = WeightType::kBf16;
  };
  struct Layer {
    Linear qkv, o, gate_up, down;
    DeviceBuffer attn_norm, mlp_norm;            // f32 [hidden]
    DeviceBuffer attn_norm_bias, mlp_norm_bias;  // f32 [hidden], LayerNorm (GPT-2); empty for RMSNorm
    DeviceBuffer b_qkv, b_o, b_gate_up, b_down;  // f32, empty when absent
  };

  void upload_weights(const ModelWeights& w);
  void make_dummy_weights(uint64_t seed);
  void allocate_workspace();
  void tune_gemms();
  void allocate_kv_cache();
  void forward(int T, int sampled);
  void parallel_block(int li, int T);
  // The residual stream after the layers: x plus the last projection's output, not yet added.
  struct Residual {
    ResidualStream x;
    const __nv_bfloat16* delta;
    const float* bias;
    const __nv_bfloat16* delta2 = nullptr;  // GPT-J: the MLP output beside the attention output
  };
  Residual layers_batched(int T);
  // At most kFewRows tokens: seven kernels a layer, the GEMVs doing the residual adds, RoPE +
  // KV write and SwiGLU on the side with weight-only FP8 arithmetic (gemv.h), and the few-token
  // attention (attention_few.cu).
  Residual layers_few(int T);
  // Steps of at most this many tokens take layers_few. Measured (batch-N decode, median step):
  // 1 row 3.82 vs 5.11 ms on the batched kernels, 2: 4.27 vs 5.46, 4: 5.00 vs 5.36, 8: 9.90 vs
  // 5.78 (each GEMV warp then reads A eight times per weight chunk).
  static constexpr int kFewRows = 4;
  static_assert(kFewRows <= kGemvMaxRows && kFewRows <= kFewAttentionTokens, "the few-row kernels' limits");
  bool few_rows(int T) const;
  AttentionArgs attention_args(int layer) const;
  void attention(int layer, const __nv_bfloat16* qkv_raw = nullptr);  // the step's attention kernels for one layer (qkv_raw: prefill_rope_q_)
  FusedGemv projection(const Linear& w, const DeviceBuffer& bias, const __nv_bfloat16* in) const;
  // Decode-only steps (one token per sequence, each sampling) replay a CUDA graph captured
  // once per batch-size bucket and context class (decode_long_); padding rows use a reserved KV
  // block. Returns false when the step does not qualify.
  bool forward_decode_graph(const StepBatch& b);
  // Fed tokens (StepBatch::feed): d_tokens_[t] = the previous step's sampled token of row feed[t].
  void apply_feed();
  int bucket_for(int S) const;
  // Every projection to E4M3 (fp8) or int8 (int8, w8a8) with per-row scales, unless the checkpoint brought them so.
  void quantize_weights(WeightType to);
  // GpuOptions::weight_row_pad: each FP8 projection's rows moved `bytes` apart past their K (Gemm reads
  // them with that stride; the pad bytes are zeros no product reads, though the next-weights L2
  // prefetch may ask for them).
  void pad_weight_rows(int bytes);
  // proj_[M, N] = in[M, K] · W^T in bf16: bf16 operands, or in quantized per token to E4M3 first
  // (in == nullptr: in_q_ / in_scale_ already hold it), the scales applied in the GEMM; W8A8: in
  // quantized per token to int8, int32 sums in acc_, scaled to bf16; weight-only INT8: W widened to
  // bf16 in dequant_ for a bf16 GEMM. Returns proj_.
  // out: another bf16 buffer instead of proj_ (GPT-J's parallel block keeps two outputs).
  // next: the weights to ask into L2 while it runs (next_weights()).
  __nv_bfloat16* linear(const __nv_bfloat16* in, const Linear& w, int M, cudaStream_t s, __nv_bfloat16* out = nullptr,
                        NextWeights next = {});
  // residual_in_gemm_: x_[M, N] += in · W^T, FP8, the scaled product added in the GEMM's epilogue.
  void linear_into_residual(const __nv_bfloat16* in, const Linear& w, int M, cudaStream_t s, NextWeights next = {});
  // GpuOptions::row_gemm_next_mib: w's weights, for the projection before it to ask that many MiB
  // of into L2 (nothing where the option is 0 or there is no w).
  NextWeights next_weights(const Linear* w) const;
  // into_residual: tuned as linear_into_residual runs it (residual_operands).
  void tune_linear(const __nv_bfloat16* in, const Linear& w, int M, bool into_residual = false);
  // The cuBLASLt product linear() runs for w (what tuning times too), its operands prepared on s:
  // the input quantized (FP8, W8A8) or the weight widened (weight-only INT8). D is out, or acc_ (W8A8).
  struct GemmOperands {
    Operand type;
    Output out;
    const void *A, *W;
    void* D;
    GemmScales scales;
  };
  GemmOperands gemm_operands(const __nv_bfloat16* in, const Linear& w, int M, cudaStream_t s, void* out);
  // gemm_operands for a product added into the float32 stream x_ (Output::kF32Add): FP8 only.
  GemmOperands residual_operands(const __nv_bfloat16* in, const Linear& w, int M, cudaStream_t s);

  ModelConfig config_;
  GpuOptions options_;
  BackendInfo info_;
  // Every step's work goes on this one stream, in launch order. Async scheduling rests on it: the
  // engine may hand a finished sequence's blocks to step N + 1 while step N, which still writes
  // them, is on the GPU, and a fed token is gathered from the sampled ids the step before wrote.
  cudaStream_t stream_ = nullptr;
  // GpuOptions::overlap_decode_attention: a mixed step's decode kernel runs on side_stream_, forked
  // from stream_ after the RoPE + KV write (fork_) and joined back before the O projection (join_),
  // so everything after it on stream_ still comes after it, as above. On by default (2048/128
  // 3,389 against 3,349 output tok/s; 2048/2048 the same either way: bench/RESULTS.md).
  cudaStream_t side_stream_ = nullptr;
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  int q_dim_, kv_dim_, qkv_dim_;

  DeviceBuffer embed_, lm_head_, final_norm_, rope_cos_sin_;
  DeviceBuffer final_norm_bias_;  // LayerNorm's (GPT-2); empty for RMSNorm
  DeviceBuffer lm_head_bias_;     // f32 [vocab] (GPT-J); else empty
  DeviceBuffer pos_embed_;        // bf16 [max_positions, hidden]: learned positions (GPT-2); else empty
  std::vector<Layer> layers_;
  DeviceBuffer k_cache_, v_cache_;  // bf16 or E4M3 [layer][block][kv_head][slot][head_dim]
  size_t layer_kv_elems_ = 0;
  KvType kv_type_ = KvType::kBf16;  // --kv-cache-dtype
  DeviceBuffer k_scales_, v_scales_;  // INT8 cache: float [layer][block][kv_head][slot]
  KvLayer kv_layer(int li) const;

  bool fp8_ = false;
  // --quantization int8 (weight-only; also an INT8 checkpoint served without --dtype fp8) or w8a8:
  // int8 projections. Steps of few tokens take the GEMVs either way (weight-only arithmetic).
  bool int8_ = false;
  bool w8a8_ = false;
  bool bf16_residual_ = false;   // the batched path's residual stream in bf16 (GpuOptions::bf16_residual)
  bool residual_in_gemm_ = false;  // the batched path's O and down GEMMs add into x_ (GpuOptions::residual_in_gemm)
  size_t row_gemm_next_bytes_ = 0;  // GpuOptions::row_gemm_next_mib, in bytes
  bool few_rows_ = true;         // layers_few for steps of few tokens (off: --no-fused-gemv; batch-invariant mode unless INT8 weights)
  bool decode_kernel_ = false;   // attention_decode.cu for generated tokens (make_tiles, decode_splits)
  bool prefill_kernel_ = false;  // attention_prefill.cu for prompt rows (make_tiles); batch-invariant: both kernels or neither
  bool prefill_sm90_ = false;    // ... on wgmma (attention_prefill_sm90.cu): sm_90a build on an sm_90 device, head_dim 64 or 128
  bool prefill_ws_ = false;      // ... warp-specialized and persistent (attention_prefill_sm90_ws.cu): GpuOptions::warp_specialized_prefill
  bool prefill_fp8_scores_ = false;  // ... with Q K^T on E4M3 tensor cores: GpuOptions::fp8_prefill_scores, where it serves
  bool prefill_fp8_values_ = false;  // ... and P V on them too (GpuOptions::fp8_prefill_values)
  bool prefill_pairs_ = false;       // ... two tiles a consumer iteration (GpuOptions::prefill_pairs)
  // GpuOptions::prefill_rope_q: the prefill kernel turns its prompt rows' q from the QKV output
  // (AttentionArgs::q_raw) and the RoPE kernel skips them (d_q_skip_). Not for GPT-J's parallel
  // block, whose MLP output takes the QKV output's buffer before attention runs.
  bool prefill_rope_q_ = false;
  // This step has prefill-kernel rows whose q they turn (d_q_skip_ set for them).
  bool q_skip_step() const { return prefill_rope_q_ && prefill_tiles_ > 0; }
  bool use_graphs_ = true;       // TACHYON_CUDA_GRAPHS=0 turns them off
  bool capturing_ = false;
  int scratch_block_ = 0;        // written by padding rows of graph steps, never given to the engine
  std::map<int, cudaGraphExec_t> graphs_;  // by graph_key()
  static int graph_key(int bucket, bool long_context) { return bucket * 2 + (long_context ? 1 : 0); }
  bool timing_ = false;
  ProfiledSteps profiled_steps_;  // TACHYON_PROFILE_STEPS: whole steps for ncu
  cudaEvent_t events_[3] = {nullptr, nullptr, nullptr};
  static constexpr int kOpEvents = 12;
  cudaEvent_t op_events_[kOpEvents] = {};
  const char* op_names_[kOpEvents] = {};
  int op_marks_ = 0;                  // events the last forward recorded
  std::map<int, int> graph_op_marks_;  // ... and each graph's
  void report_timing(int T, int S, std::chrono::steady_clock::time_point start, std::chrono::steady_clock::time_point enqueued);
  // Activations sized for max_num_tokens / max_num_seqs.
  // qkv_: float32 [T, qkv_dim], the attention kernels' rotated q (q columns only; not the rows the
  // prefill kernel turns itself, prefill_rope_q_); proj_: bf16
  // [T, max(qkv_dim, 2I, H)], the output of every batched projection.
  DeviceBuffer x_, h_, qkv_, attn_, proj_, act_, h_last_, logits_;
  DeviceBuffer in_q_, in_scale_;  // fp8 and w8a8: the current GEMM input, quantized per token (E4M3 or int8)
  DeviceBuffer acc_;              // w8a8: int32 [T, max N], a GEMM's sums before scaling
  DeviceBuffer dequant_;          // weight-only int8 past the GEMVs: bf16 [N, K] of the projection at hand
  __nv_fp8_e4m3* q_out() const { return fp8_ ? in_q_.as<__nv_fp8_e4m3>() : nullptr; }
  float* q_scale() const { return fp8_ ? in_scale_.as<float>() : nullptr; }
  // Step inputs and outputs.
  DeviceBuffer d_tokens_, d_positions_, d_token_seq_, d_tables_, d_rows_, d_params_;
  DeviceBuffer d_out_tokens_, d_out_logprobs_, d_top_ids_, d_top_logprobs_, d_sample_ws_;
  int max_table_stride_ = 0;
  int table_stride_ = 0;  // this step's
  // Attention tiles of this step: runs of consecutive query tokens of one sequence.
  DeviceBuffer d_tiles_, d_attn_partial_, d_attn_counters_;
  DeviceBuffer d_q_skip_;  // uint8 [T]: 1 where the prefill kernel turns the token's q itself (prefill_rope_q_)
  int num_tiles_ = 0;
  bool decode_step_ = false;  // every tile one token
  int prefill_tiles_ = 0;     // prefill_kernel_ steps: the first tiles, for attention_prefill.cu; the rest are one token each
  int attn_splits_ = 0;       // split-parallel decode attention (0: off)
  bool decode_long_ = false;  // a generated token at position kLongDecodeContext or later (the decode kernel's warps)
  bool invariant_ = false;    // batch-invariant mode (GpuOptions::batch_invariant)
  int sm_count_ = 1;
  void make_tiles(const StepBatch& b);
  int decode_splits(int tokens, int max_position) const;
  // One step's host side. Two, used alternately: while step N runs, launching N + 1 must not
  // overwrite N's pinned sources (copies from pinned memory are read when the stream gets there)
  // or the buffers N's results land in.
  struct StepSlot {
    PinnedVector<int32_t> rows, feed, tokens, top_ids, masks;
    PinnedVector<int32_t> g_tokens, g_positions, g_seq, g_tables, g_rows;  // graph steps' padded inputs
    PinnedVector<int2> tiles;
    PinnedVector<uint8_t> q_skip;
    PinnedVector<DeviceSamplingParams> params;
    PinnedVector<SlotRestart> restarts;
    PinnedVector<float> logprobs, top_lps, logits;
    std::vector<int32_t> sampled_seq;  // [n] the sequence of each sampled row
    std::vector<int32_t> row_of_seq;   // [S] each sequence's sampled row, -1: none
    int T = 0, S = 0, n = 0, top_n = 0;
    bool adjusted = false, counted = false, masked = false, launched = false;
    cudaEvent_t done = nullptr;  // results copied back
    std::chrono::steady_clock::time_point host_start;
  };
  StepSlot slots_[2];
  StepSlot* st_ = &slots_[0];  // the slot being launched
  void sample_and_copy_back(const StepBatch& b, StepSlot& st);
  void report(StepSlot& st);

  // Logit adjustments (logit_adjust.h). Allocated on first use, from the memory the fraction
  // leaves outside the KV pool, so servers whose requests never ask pay nothing.
  void upload_adjustments(const StepBatch& b, bool adjusted);
  void ensure(DeviceBuffer& d, size_t bytes, const char* what);
  DeviceBuffer d_pen_counts_, d_pen_prompt_;  // [max_num_seqs, V] int32 / uint8
  DeviceBuffer d_adjusted_;                   // [max_num_seqs, V] float
  DeviceBuffer d_bias_ids_, d_bias_values_, d_history_, d_restarts_, d_masks_;
  DeviceBuffer d_feed_;
};

}  // namespace tachyon
