// CudaModel's forward passes: batched layers (cuBLASLt GEMMs) and the few-row path (fused GEMVs) for steps of at most 4 tokens.
#include "cuda/cuda_model.h"

#include "cuda/fp8.h"
#include "cuda/int8.h"

#include "cuda/kernels.h"
#include "cuda/pdl.cuh"

namespace tachyon {

CudaModel::GemmOperands CudaModel::gemm_operands(const __nv_bfloat16* in, const Linear& w, int M, cudaStream_t s, void* out) {
  if (w.type == WeightType::kInt8 && w8a8_) {
    launch_quantize_rows_int8(in, in_q_.as<int8_t>(), in_scale_.as<float>(), M, w.K, s);
    return {Operand::kInt8, Output::kI32, in_q_.as<void>(), w.w.as<void>(), acc_.as<void>(), GemmScales{}};
  }
  if (w.type == WeightType::kInt8) {
    launch_dequantize_weight_int8(w.w.as<int8_t>(), w.scale.as<float>(), dequant_.as<__nv_bfloat16>(), w.N, w.K, s);
    return {Operand::kBf16, Output::kBf16, in, dequant_.as<void>(), out, GemmScales{}};
  }
  if (!fp8_) return {Operand::kBf16, Output::kBf16, in, w.w.as<void>(), out, GemmScales{}};
  // in == nullptr: the producing kernel already wrote in_q_ / in_scale_ (fused quantization).
  if (in) launch_quantize_rows(in, in_q_.as<__nv_fp8_e4m3>(), in_scale_.as<float>(), M, w.K, s);
  return {Operand::kFp8, Output::kBf16, in_q_.as<void>(), w.w.as<void>(), out, GemmScales{in_scale_.as<float>(), w.scale.as<float>()}};
}

__nv_bfloat16* CudaModel::linear(const __nv_bfloat16* in, const Linear& w, int M, cudaStream_t s, __nv_bfloat16* out,
                                 NextWeights next) {
  if (!out) out = proj_.as<__nv_bfloat16>();
  const GemmOperands g = gemm_operands(in, w, M, s, out);
  gemm_->run(g.type, g.out, g.A, g.W, g.D, M, w.N, w.K, g.scales, s, next);
  // W8A8: the int32 sums times the token and channel scales.
  if (g.out == Output::kI32) launch_scale_int32(acc_.as<int32_t>(), in_scale_.as<float>(), w.scale.as<float>(), out, M, w.N, s);
  return out;
}

CudaModel::GemmOperands CudaModel::residual_operands(const __nv_bfloat16* in, const Linear& w, int M, cudaStream_t s) {
  GemmOperands g = gemm_operands(in, w, M, s, x_.as<void>());
  if (g.type != Operand::kFp8) fail("only FP8 projections add into the residual stream");
  g.out = Output::kF32Add;
  return g;
}

void CudaModel::linear_into_residual(const __nv_bfloat16* in, const Linear& w, int M, cudaStream_t s, NextWeights next) {
  const GemmOperands g = residual_operands(in, w, M, s);
  gemm_->run(g.type, g.out, g.A, g.W, g.D, M, w.N, w.K, g.scales, s, next);
}

NextWeights CudaModel::next_weights(const Linear* w) const {
  if (row_gemm_next_bytes_ == 0 || !w || w->N == 0) return {};
  return NextWeights{w->w.as<void>(), w->N, static_cast<int>(w->w.bytes() / w->N), row_gemm_next_bytes_};
}

// --profile: events between the ops of layer 0; inside a graph capture they become
// timed nodes of the graph (external records).
#define TICK(li, name)                                                                                         \
  do {                                                                                                         \
    if (timing_ && (li) == 0 && op_marks_ < kOpEvents) {                                                       \
      op_names_[op_marks_] = name;                                                                             \
      CUDA_CHECK(cudaEventRecordWithFlags(op_events_[op_marks_++], stream_, capturing_ ? cudaEventRecordExternal : 0)); \
    }                                                                                                          \
  } while (0)

void CudaModel::forward(int T, int sampled) {
  const ModelConfig& c = config_;
  const int H = c.hidden_size;
  const bool few = few_rows(T);
  // The few-row path's GEMVs add into a float32 stream; the batched path's may be bf16.
  const ResidualStream x{x_.as<void>(), !few && bf16_residual_};
  launch_embed(embed_.as<__nv_bfloat16>(), d_tokens_.as<int32_t>(), x, T, H, stream_, pos_embed_.as<__nv_bfloat16>(),
               d_positions_.as<int32_t>());
  op_marks_ = 0;
  const Residual r = few ? layers_few(T) : layers_batched(T);
  if (sampled == 0) return;
  // The last residual add and the final norm, for the sampled rows only (every row when each
  // token samples: decode, where the few-row path's residual is already complete).
  if (few && sampled == T)
    launch_rmsnorm(static_cast<const float*>(r.x.x), final_norm_.as<float>(), c.norm_eps, h_last_.as<__nv_bfloat16>(), T, H, stream_);
  else
    launch_add_rmsnorm(r.x, r.delta, r.bias, final_norm_.as<float>(), c.norm_eps, h_last_.as<__nv_bfloat16>(),
                       d_rows_.as<int32_t>(), sampled, H, stream_, nullptr, nullptr, final_norm_bias_.as<float>(), r.delta2);
  const __nv_bfloat16* head = c.tie_word_embeddings ? embed_.as<__nv_bfloat16>() : lm_head_.as<__nv_bfloat16>();
  gemm_->run(Operand::kBf16, Output::kF32, h_last_.as<__nv_bfloat16>(), head, logits_.as<float>(), sampled, c.vocab_size, H,
             GemmScales{}, stream_);
  if (lm_head_bias_.bytes() > 0) launch_add_row_bias(logits_.as<float>(), lm_head_bias_.as<float>(), sampled, c.vocab_size, stream_);
}

CudaModel::Residual CudaModel::layers_batched(int T) {
  const ModelConfig& c = config_;
  const int H = c.hidden_size, I = c.intermediate_size, D = c.head_dim, B = options_.block_size;
  const ResidualStream x{x_.as<void>(), bf16_residual_};
  // Every projection writes bf16 into proj_ (scales applied), read once by the kernel after it.
  const __nv_bfloat16* pending = nullptr;  // the previous layer's MLP output, added to the residual by the next norm
  const float* pending_bias = nullptr;
  const __nv_bfloat16* pending2 = nullptr;  // GPT-J: the attention output is pending, and the MLP's beside it
  const bool q_skip = q_skip_step();  // prompt rows whose q the prefill kernel turns (prefill_rope_q_)
  for (int li = 0; li < c.num_layers; ++li) {
    const Layer& l = layers_[li];
    TICK(li, "norm");
    launch_add_rmsnorm(x, pending, pending_bias, l.attn_norm.as<float>(), c.norm_eps, h_.as<__nv_bfloat16>(), nullptr, T,
                       H, stream_, q_out(), q_scale(), l.attn_norm_bias.as<float>(), pending2);
    if (c.parallel_block) {
      parallel_block(li, T);
      pending = proj_.as<__nv_bfloat16>();  // the attention output (no bias in GPT-J)
      pending2 = h_.as<__nv_bfloat16>();    // the MLP output, its bias pending
      pending_bias = l.b_down.as<float>();
      continue;
    }
    TICK(li, "qkv");
    // row_gemm_next_bytes_: QKV, O and down ask the weights after them into L2 as they run (not
    // gate/up, which streams at the memory's rate on its own).
    const __nv_bfloat16* qkv = linear(fp8_ ? nullptr : h_.as<__nv_bfloat16>(), l.qkv, T, stream_, nullptr, next_weights(&l.o));
    TICK(li, "rope+kv");
    launch_rope_kv_write(qkv, l.b_qkv.as<float>(), qkv_.as<float>(), d_positions_.as<int32_t>(), d_token_seq_.as<int32_t>(),
                         d_tables_.as<int32_t>(), table_stride_, rope_cos_sin_.as<float2>(), kv_layer(li), T,
                         c.num_heads, c.num_kv_heads, D, B, stream_, q_skip ? d_q_skip_.as<uint8_t>() : nullptr);
    TICK(li, "attn");
    attention(li, q_skip ? qkv : nullptr);
    TICK(li, "o");
    // residual_in_gemm_: the GEMM adds the attention output into x, and the norm only reads x.
    const __nv_bfloat16* o = nullptr;
    if (residual_in_gemm_) linear_into_residual(attn_.as<__nv_bfloat16>(), l.o, T, stream_, next_weights(&l.gate_up));
    else o = linear(attn_.as<__nv_bfloat16>(), l.o, T, stream_, nullptr, next_weights(&l.gate_up));
    TICK(li, "norm");
    launch_add_rmsnorm(x, o, o ? l.b_o.as<float>() : nullptr, l.mlp_norm.as<float>(), c.norm_eps, h_.as<__nv_bfloat16>(), nullptr,
                       T, H, stream_, q_out(), q_scale(), l.mlp_norm_bias.as<float>());
    TICK(li, "gate_up");
    const __nv_bfloat16* gate_up = linear(fp8_ ? nullptr : h_.as<__nv_bfloat16>(), l.gate_up, T, stream_);
    TICK(li, "silu");
    // FP8: the activation (SwiGLU, or GPT-2's GELU) quantizes its output for the down GEMM.
    launch_mlp_act(c.mlp, gate_up, l.b_gate_up.as<float>(), act_.as<__nv_bfloat16>(), T, I, stream_, q_out(), q_scale());
    TICK(li, "down");
    const NextWeights after_down = next_weights(li + 1 < c.num_layers ? &layers_[li + 1].qkv : nullptr);
    if (residual_in_gemm_) {  // x complete: the next norm (or the final one) only reads it
      linear_into_residual(nullptr, l.down, T, stream_, after_down);
      pending = nullptr;
      pending_bias = nullptr;
    } else {
      pending = linear(fp8_ ? nullptr : act_.as<__nv_bfloat16>(), l.down, T, stream_, nullptr, after_down);
      pending_bias = l.b_down.as<float>();
    }
    TICK(li, "end");
  }
  return Residual{x, pending, pending_bias, pending2};
}

// GPT-J's block after its one norm (h_, or in_q_ with FP8): QKV and RoPE + KV write, then the MLP
// while the normed input is still in place, its output into h_ (which FP8 leaves unused and bf16 no
// longer needs once both GEMMs have read it), then attention, its output in proj_. The next norm
// adds both.
void CudaModel::parallel_block(int li, int T) {
  const ModelConfig& c = config_;
  const Layer& l = layers_[li];
  const int I = c.intermediate_size;
  __nv_bfloat16* h = h_.as<__nv_bfloat16>();
  TICK(li, "qkv");
  const __nv_bfloat16* qkv = linear(fp8_ ? nullptr : h, l.qkv, T, stream_);
  TICK(li, "rope+kv");
  launch_rope_kv_write(qkv, l.b_qkv.as<float>(), qkv_.as<float>(), d_positions_.as<int32_t>(), d_token_seq_.as<int32_t>(),
                       d_tables_.as<int32_t>(), table_stride_, rope_cos_sin_.as<float2>(), kv_layer(li), T, c.num_heads,
                       c.num_kv_heads, c.head_dim, options_.block_size, stream_);
  TICK(li, "fc");
  const __nv_bfloat16* fc = linear(fp8_ ? nullptr : h, l.gate_up, T, stream_);
  TICK(li, "gelu");
  launch_mlp_act(c.mlp, fc, l.b_gate_up.as<float>(), act_.as<__nv_bfloat16>(), T, I, stream_, q_out(), q_scale());
  TICK(li, "fc_out");
  linear(fp8_ ? nullptr : act_.as<__nv_bfloat16>(), l.down, T, stream_, h);
  TICK(li, "attn");
  attention(li);
  TICK(li, "o");
  linear(attn_.as<__nv_bfloat16>(), l.o, T, stream_);
  TICK(li, "end");
}

bool CudaModel::few_rows(int T) const { return few_rows_ && T <= kFewRows; }

FusedGemv CudaModel::projection(const Linear& w, const DeviceBuffer& bias, const __nv_bfloat16* in) const {
  FusedGemv g;
  g.rows = in;
  g.W = w.w.as<void>();
  g.w_type = w.type;
  g.scale = w.scale.as<float>();
  g.bias = bias.as<float>();
  g.N = w.N;
  g.K = w.K;
  return g;
}

CudaModel::Residual CudaModel::layers_few(int T) {
  const ModelConfig& c = config_;
  const int H = c.hidden_size;
  float* x = x_.as<float>();  // the O and down projections add into it (float32 on this path)
  __nv_bfloat16* h = h_.as<__nv_bfloat16>();
  for (int li = 0; li < c.num_layers; ++li) {
    const Layer& l = layers_[li];
    TICK(li, "norm");
    launch_rmsnorm(x, l.attn_norm.as<float>(), c.norm_eps, h, T, H, stream_);
    TICK(li, "qkv+rope+kv");
    FusedGemv qkv = projection(l.qkv, l.b_qkv, h);
    qkv.epilogue = GemvEpilogue::kRopeKv;
    qkv.out = qkv_.as<float>();
    const KvLayer kv = kv_layer(li);
    qkv.rope = RopeKvTarget{d_positions_.as<int32_t>(), d_token_seq_.as<int32_t>(), d_tables_.as<int32_t>(), table_stride_,
                            rope_cos_sin_.as<float2>(), kv, 1.0f / kv.k_scale, 1.0f / kv.v_scale, c.num_heads,
                            c.num_kv_heads, c.head_dim, options_.block_size};
    launch_fused_gemv(qkv, T, stream_);
    TICK(li, "attn");
    AttentionArgs attn = attention_args(li);
    attn.num_tiles = T;  // a token per block row, whatever the step's tiles
    launch_few_attention(attn, stream_);
    TICK(li, "o+residual");
    FusedGemv o = projection(l.o, l.b_o, attn_.as<__nv_bfloat16>());
    o.residual = x;
    launch_fused_gemv(o, T, stream_);
    TICK(li, "norm");
    launch_rmsnorm(x, l.mlp_norm.as<float>(), c.norm_eps, h, T, H, stream_);
    TICK(li, "gate_up+silu");
    FusedGemv gate_up = projection(l.gate_up, l.b_gate_up, h);
    gate_up.epilogue = GemvEpilogue::kSwiGLU;
    gate_up.act = act_.as<__nv_bfloat16>();
    launch_fused_gemv(gate_up, T, stream_);
    TICK(li, "down+residual");
    FusedGemv down = projection(l.down, l.b_down, act_.as<__nv_bfloat16>());
    down.residual = x;
    launch_fused_gemv(down, T, stream_);
    TICK(li, "end");
  }
  return Residual{ResidualStream{x}, nullptr, nullptr};
}

void CudaModel::attention(int li, const __nv_bfloat16* qkv_raw) {
  AttentionArgs a = attention_args(li);
  if (decode_step_ && attn_splits_ == 0 && decode_kernel_) {
    launch_decode_attention(a, sm_count_, stream_, decode_long_, options_.decode_warps);
  } else if (!decode_step_ && prefill_kernel_) {
    // make_tiles: the prefill kernel's tiles, then one-token tiles for the decode kernel.
    AttentionArgs d = a;
    d.tiles += prefill_tiles_;
    d.num_tiles = a.num_tiles - prefill_tiles_;
    a.num_tiles = prefill_tiles_;
    if (qkv_raw) {  // prefill_rope_q_: the prompt rows' q, unturned (the RoPE kernel skipped them)
      a.q_raw = qkv_raw;
      a.q_bias = layers_[li].b_qkv.as<float>();
      a.q_cos_sin = rope_cos_sin_.as<float2>();
    }
    // Overlap: the prefill kernel is bound by issue, the decode kernel by memory. Their rows and
    // reads are disjoint, and both need only the RoPE + KV write before them: the fork is recorded
    // after it, the prefill kernel goes out first, and the O projection waits for both.
    // attention_prefill_sm90.cu (one 8-warp block of about 145 KB at head_dim 128) leaves room on
    // each SM for decode blocks beside it. The warp-specialized kernel's block takes an SM's whole
    // register file and it is persistent, so decode blocks run only on SMs its grid leaves
    // (prefillBlocks below the SM count) or once its blocks finish; 2048/128 still measured faster
    // with it (bench/RESULTS.md, sixteenth and seventeenth sessions).
    const bool overlap = side_stream_ && !capturing_ && prefill_tiles_ > 0 && d.num_tiles > 0;
    if (overlap) CUDA_CHECK(cudaEventRecord(fork_, stream_));
    if (prefill_ws_ && qkv_raw) {
      // The persistent kernel's blocks: one an SM, or prefillBlocks. Leaving 16 or 32 SMs to a mixed
      // step's decode kernel measured no faster (2048/128: 3,580 and 3,579 against 3,599 output
      // tok/s, seventeenth session).
      const int blocks = options_.prefill_blocks > 0 ? options_.prefill_blocks : sm_count_;
      launch_prefill_attention_sm90_ws(a, blocks, prefill_fp8_scores_, prefill_fp8_values_, prefill_pairs_, stream_);
    }
    else if (prefill_sm90_) launch_prefill_attention_sm90(a, stream_);
    else launch_prefill_attention(a, stream_);
    if (overlap) {
      CUDA_CHECK(cudaStreamWaitEvent(side_stream_, fork_, 0));
      launch_decode_attention(d, sm_count_, side_stream_, decode_long_, options_.decode_warps, false);
      CUDA_CHECK(cudaEventRecord(join_, side_stream_));
      CUDA_CHECK(cudaStreamWaitEvent(stream_, join_, 0));
    } else {
      if (d.num_tiles > 0) TICK(li, "attn-decode");
      launch_decode_attention(d, sm_count_, stream_, decode_long_, options_.decode_warps);
    }
  } else {
    launch_paged_attention(a, decode_step_, attn_splits_, sm_count_, stream_);
  }
}

AttentionArgs CudaModel::attention_args(int li) const {
  const ModelConfig& c = config_;
  AttentionArgs a{qkv_.as<float>(), d_positions_.as<int32_t>(), d_token_seq_.as<int32_t>(), d_tables_.as<int32_t>(),
                  table_stride_, kv_layer(li), attn_.as<__nv_bfloat16>(), d_tiles_.as<int2>(),
                  num_tiles_, c.num_heads, c.num_kv_heads, c.head_dim, options_.block_size,
                  d_attn_partial_.as<float>(), d_attn_counters_.as<int>(), 0u, 0};
  block_divisor(options_.block_size, a.block_mul, a.block_shift);
  return a;
}

KvLayer CudaModel::kv_layer(int li) const {
  const size_t offset = li * layer_kv_elems_ * kv_element_bytes(kv_type_);
  KvLayer kv{k_cache_.as<unsigned char>() + offset, v_cache_.as<unsigned char>() + offset, kv_type_, 1.0f, 1.0f};
  if (kv_type_ == KvType::kInt8) {
    const size_t slots = layer_kv_elems_ / config_.head_dim;
    kv.k_scales = k_scales_.as<float>() + li * slots;
    kv.v_scales = v_scales_.as<float>() + li * slots;
  }
  return kv;
}

#undef TICK

}  // namespace tachyon
