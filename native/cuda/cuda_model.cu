// CudaModel: a model on one GPU, built at load (weights, workspace, tuned GEMMs, KV pool).
// Its parts: model_weights, model_memory, model_tuning, model_step, model_graphs, model_forward, model_timing (.cu).
#include "cuda/cuda_model.h"

#include <cstdio>
#include <memory>

#include "cpu/rope_freq.h"
#include "cuda/fp8.h"
#include "cuda/kernels.h"
#include "cuda/upload.h"
#include "cuda/pdl.cuh"

namespace tachyon {

CudaModel::CudaModel(const ModelConfig& c, const ModelWeights* w, const GpuOptions& o) : config_(c), options_(o) {
  CUDA_CHECK(cudaSetDevice(o.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  if (o.overlap_decode_attention) {
    CUDA_CHECK(cudaStreamCreateWithFlags(&side_stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
  }
  q_dim_ = c.num_heads * c.head_dim;
  kv_dim_ = c.num_kv_heads * c.head_dim;
  qkv_dim_ = q_dim_ + 2 * kv_dim_;
  fp8_ = o.dtype == "fp8";
  w8a8_ = o.quantization == "w8a8";
  // An INT8 checkpoint keeps its int8 weights (weight-only) unless FP8 is asked for, as on the CPU backend.
  int8_ = w8a8_ || o.quantization == "int8" || (w && !fp8_ && w->layers[0].wq.dtype == DType::kI8);
  if (fp8_ && int8_) fail("dtype fp8 and quantization '", o.quantization, "' exclude each other: choose one");
  kv_type_ = o.kv_cache_dtype == "fp8" ? KvType::kE4M3 : o.kv_cache_dtype == "int8" ? KvType::kInt8 : KvType::kBf16;
  // The writer's lanes of one head meet by xor shuffles (D / 8 must divide 32); the attention kernels
  // read one-byte rows in 32-dim pieces.
  if (kv_type_ == KvType::kInt8 && c.head_dim != 32 && c.head_dim != 64 && c.head_dim != 128 && c.head_dim != 256)
    fail("an INT8 KV cache needs head_dim 32, 64, 128 or 256, got ", c.head_dim);
  check_attention_shape(c.num_heads, c.num_kv_heads, c.head_dim);
  if (!row_kernels_support(c.hidden_size, c.intermediate_size))
    fail("the CUDA backend needs hidden_size and intermediate_size to be multiples of 8 up to 32,768 (got ", c.hidden_size,
         " and ", c.intermediate_size, ")");
  {
    int sms = 1;
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, o.device));
    sm_count_ = sms;
    int major = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, o.device));
    pdl_enabled() = major >= 9 && o.pdl;
  }
  timing_ = o.profile;
  use_graphs_ = o.cuda_graphs;
  if (w) upload_weights(*w);
  else make_dummy_weights(o.dummy_seed);
  if (fp8_) quantize_weights(WeightType::kFp8);
  if (int8_) quantize_weights(WeightType::kInt8);
  // The RoPE kernel turns D / 2 pairs a head: learned positions (GPT-2) turn none (zero angles), and
  // GPT-J turns its rotary_dim / 2 (its q and k rows are reordered at load to the kernel's pairing;
  // model_weights.cu), the rest at zero angles.
  std::vector<float> inv_freq = c.position == PositionKind::kLearned ? std::vector<float>() : rope_inv_freq(c);
  inv_freq.resize(c.head_dim / 2, 0.0f);
  rope_cos_sin_ = upload(rope_cos_sin(inv_freq, c.max_positions), "rotary table");
  const bool invariant = o.batch_invariant;
  gemm_ = std::make_unique<Gemm>(64u << 20);
  gemm_->set_row_prefetch(static_cast<size_t>(o.row_gemm_prefetch_mib) << 20);
  row_gemm_next_bytes_ = static_cast<size_t>(o.row_gemm_next_mib) << 20;
  allocate_workspace();
  // The few-row path's GEMVs sum in their own order and skip activation quantization, so a row's
  // result would depend on its batch size: not in batch-invariant mode, where a few rows take the
  // batched layers (gemm_rows.h's kernel gives them cuBLASLt's bits at about the GEMVs' speed).
  // Weight-only INT8 keeps it: its batched path widens each weight matrix to bf16 every step, far too
  // slow for a few rows, so those models are not batch-invariant (said once at load). W8A8's batched
  // path (int8 activations, exact int32 sums) is invariant, so W8A8 takes it like FP8 does.
  // The few-row path writes K/V from its GEMV element by element: not an INT8 cache, whose rows need their absmax.
  // The few-row path's GEMV epilogues are SwiGLU and RMSNorm: Llama-family models only; its attention
  // kernel stops at kFewAttentionMaxHeadDim.
  few_rows_ = (!invariant || (int8_ && !w8a8_)) && o.fused_gemv && kv_type_ != KvType::kInt8 && c.family == Family::kLlama &&
              c.head_dim <= kFewAttentionMaxHeadDim;
  if (invariant && few_rows_)
    std::fprintf(stderr, "cuda: weight-only INT8 keeps the few-row path (GEMVs), so steps of up to %d tokens round their own way: "
                 "this model is not batch-invariant\n", kFewRows);
  // Generated tokens take the decode kernel and prompt tokens the prefill kernel in every step
  // (make_tiles). Each rounds its own way, so batch-invariant mode takes both or neither (then
  // attention.cu serves every row).
  decode_kernel_ = o.fast_attention && decode_attention_supports(c.num_heads, c.num_kv_heads, c.head_dim, kv_type_);
  prefill_kernel_ = o.fast_attention && prefill_attention_supports(c.num_heads, c.num_kv_heads, c.head_dim);
  if (invariant && !(decode_kernel_ && prefill_kernel_)) decode_kernel_ = prefill_kernel_ = false;
  invariant_ = invariant;
  prefill_sm90_ = prefill_kernel_ && prefill_attention_sm90_supports(c.num_heads, c.num_kv_heads, c.head_dim);
  prefill_ws_ = prefill_sm90_ && o.warp_specialized_prefill;
  prefill_rope_q_ = prefill_kernel_ && o.prefill_rope_q && !c.parallel_block;
  // FP8 scores ride on the warp-specialized kernel, which needs the unturned q (prefill_rope_q_).
  prefill_fp8_scores_ = prefill_ws_ && prefill_rope_q_ && o.fp8_prefill_scores && prefill_fp8_scores_supports(c.head_dim, kv_type_);
  prefill_fp8_values_ = prefill_fp8_scores_ && o.fp8_prefill_values;
  prefill_pairs_ = prefill_fp8_values_ && o.prefill_pairs;
  bf16_residual_ = o.bf16_residual;
  // The O and down GEMMs adding into the float32 stream: FP8 products (cuBLASLt's FP8 epilogue and
  // the row GEMM's take the add), a float32 stream, one residual add a sublayer (not GPT-J's
  // parallel block) and no O or down bias (the norm adds those beside the delta it no longer reads).
  // On by default, so elsewhere it is ignored without a word, as fp8_prefill_scores is.
  residual_in_gemm_ = o.residual_in_gemm && fp8_ && !bf16_residual_ && !c.parallel_block;
  for (const Layer& l : layers_) residual_in_gemm_ = residual_in_gemm_ && l.b_o.bytes() == 0 && l.b_down.bytes() == 0;
  if (few_rows_) {
    const Layer& l = layers_[0];
    const __nv_bfloat16* in = h_.as<__nv_bfloat16>();
    FusedGemv qkv = projection(l.qkv, l.b_qkv, in), o = projection(l.o, l.b_o, in);
    FusedGemv gate_up = projection(l.gate_up, l.b_gate_up, in), down = projection(l.down, l.b_down, in);
    qkv.epilogue = GemvEpilogue::kRopeKv;
    qkv.rope.head_dim = c.head_dim;
    gate_up.epilogue = GemvEpilogue::kSwiGLU;
    // The few-token attention keeps a partial state per (token, KV head) at least.
    few_rows_ = rmsnorm_supports(c.hidden_size) && kFewRows * c.num_kv_heads <= kAttnPartialSlots;
    for (FusedGemv* g : {&qkv, &o, &gate_up, &down})
      few_rows_ = few_rows_ && fused_gemv_supports(*g, 1) && fused_gemv_supports(*g, kFewRows);
  }
  // Padded FP8 rows (CudaKnobs.weightRowPad) for cuBLASLt and the row GEMM; the few-row GEMVs read
  // rows packed, so where they serve the knob is ignored, with a word.
  if (o.weight_row_pad > 0) {
    if (!fp8_) {
      std::fprintf(stderr, "cuda: weightRowPad ignored: it pads FP8 weights, and this model's are %s\n", w8a8_ ? "w8a8" : int8_ ? "int8" : "bf16");
    } else if (few_rows_) {
      std::fprintf(stderr, "cuda: weightRowPad ignored: the few-row GEMVs (outside batch-invariant mode) read FP8 rows packed\n");
    } else {
      pad_weight_rows(o.weight_row_pad);
      gemm_->set_fp8_row_pad(o.weight_row_pad);
    }
  }
  tune_gemms();
  allocate_kv_cache();
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  info_.device_name = prop.name;
  info_.device_bytes_used = total_b - free_b;
  info_.weight_dtype = fp8_ ? "fp8" : w8a8_ ? "w8a8" : int8_ ? "int8" : "bf16";
  for (const Layer& l : layers_)
    for (const Linear* lin : {&l.qkv, &l.o, &l.gate_up, &l.down}) info_.projection_weight_bytes += lin->w.bytes();
  info_.num_threads = 1;
}

CudaModel::~CudaModel() {
  for (auto& [bucket, exec] : graphs_) cudaGraphExecDestroy(exec);
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
  if (side_stream_) {
    cudaStreamSynchronize(side_stream_);
    cudaStreamDestroy(side_stream_);
  }
  if (fork_) cudaEventDestroy(fork_);
  if (join_) cudaEventDestroy(join_);
  for (StepSlot& st : slots_)
    if (st.done) cudaEventDestroy(st.done);
}

BatchLimits CudaModel::limits() const {
  return BatchLimits{options_.max_num_tokens, options_.max_num_seqs, info_.num_blocks, info_.block_size};
}

}  // namespace tachyon

extern "C" tachyon::Backend* tachyon_create_cuda_backend(const tachyon::ModelConfig& config, const tachyon::ModelWeights* weights,
                                                        const tachyon::GpuOptions& options, char* error, size_t error_len) {
  try {
    return new tachyon::CudaModel(config, weights, options);
  } catch (const std::exception& e) {
    std::snprintf(error, error_len, "%s", e.what());
    return nullptr;
  }
}

// Checked by the addon before it creates a backend (backend.h, kBackendAbiVersion).
extern "C" int tachyon_backend_abi_version() { return tachyon::kBackendAbiVersion; }
