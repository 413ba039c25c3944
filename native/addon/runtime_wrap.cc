#include "addon/runtime_wrap.h"

#include <cstring>

#include "addon/gpu_loader.h"
#include "addon/js_fields.h"
#include "cpu/error.h"

namespace tachyon {

namespace {

ModelConfig read_config(const Napi::Object& o) {
  Napi::Env env = o.Env();
  ModelConfig c;
  c.vocab_size = int_field(o, "vocabSize", 1, 1 << 24);
  c.hidden_size = int_field(o, "hiddenSize", 1, 1 << 16);
  c.intermediate_size = int_field(o, "intermediateSize", 1, 1 << 18);
  c.num_layers = int_field(o, "numLayers", 1, 1024);
  c.num_heads = int_field(o, "numHeads", 1, 1024);
  c.num_kv_heads = int_field(o, "numKvHeads", 1, 1024);
  c.head_dim = int_field(o, "headDim", 2, 1024);
  c.max_positions = int_field(o, "maxPositions", 1, 1 << 24);
  c.norm_eps = static_cast<float>(number_field(o, "normEps"));
  const std::string family = string_field(o, "family"), norm = string_field(o, "norm"), position = string_field(o, "position"),
                    mlp = string_field(o, "mlp");
  if (family == "llama") c.family = Family::kLlama;
  else if (family == "gpt2") c.family = Family::kGpt2;
  else if (family == "gptj") c.family = Family::kGptj;
  else throw Napi::RangeError::New(env, "unsupported model family '" + family + "'");
  if (norm == "rms") c.norm = NormKind::kRms;
  else if (norm == "layer") c.norm = NormKind::kLayer;
  else throw Napi::RangeError::New(env, "unsupported norm '" + norm + "'");
  if (position == "rope") c.position = PositionKind::kRope;
  else if (position == "rope-interleaved") c.position = PositionKind::kRopeInterleaved;
  else if (position == "learned") c.position = PositionKind::kLearned;
  else throw Napi::RangeError::New(env, "unsupported position kind '" + position + "'");
  if (mlp == "swiglu") c.mlp = MlpKind::kSwiGLU;
  else if (mlp == "gelu-tanh") c.mlp = MlpKind::kGeluTanh;
  else if (mlp == "gelu") c.mlp = MlpKind::kGelu;
  else throw Napi::RangeError::New(env, "unsupported MLP '" + mlp + "'");
  c.parallel_block = bool_field(o, "parallelBlock", false);
  c.lm_head_bias = bool_field(o, "lmHeadBias", false);
  c.rope_theta = number_field(o, "ropeTheta");
  const std::string scaling = string_field(o, "ropeScaling");
  if (scaling == "none") c.rope_scaling = RopeScaling::kNone;
  else if (scaling == "linear") c.rope_scaling = RopeScaling::kLinear;
  else if (scaling == "llama3") c.rope_scaling = RopeScaling::kLlama3;
  else throw Napi::RangeError::New(env, "unsupported rope scaling '" + scaling + "'");
  c.rope_factor = number_field(o, "ropeFactor");
  c.rope_low_freq_factor = number_field(o, "ropeLowFreqFactor");
  c.rope_high_freq_factor = number_field(o, "ropeHighFreqFactor");
  c.rope_original_max_positions = int_field(o, "ropeOriginalMaxPositions", 1, 1 << 24);
  c.tie_word_embeddings = bool_field(o, "tieWordEmbeddings", false);
  c.qkv_bias = bool_field(o, "qkvBias", false);
  c.o_bias = bool_field(o, "oBias", false);
  c.mlp_bias = bool_field(o, "mlpBias", false);
  c.rotary_dim = int_field(o, "rotaryDim", 0, c.head_dim);
  if (c.num_heads % c.num_kv_heads != 0)
    throw Napi::RangeError::New(env, "numHeads must be a multiple of numKvHeads");
  if (c.position != PositionKind::kLearned && (c.rotary_dim % 2 != 0 || c.rotary_dim < 2))
    throw Napi::RangeError::New(env, "rotaryDim must be even and at least 2 for rotary embeddings");
  if (c.position == PositionKind::kRope && c.rotary_dim != c.head_dim)
    throw Napi::RangeError::New(env, "rotaryDim must equal headDim for half-rotation rotary embeddings");
  if (!(c.norm_eps > 0) || !(c.rope_theta > 0) || !(c.rope_factor > 0) ||
      !(c.rope_high_freq_factor > c.rope_low_freq_factor) || !(c.rope_low_freq_factor > 0))
    throw Napi::RangeError::New(env, "normEps, ropeTheta and rope scaling factors must be positive");
  return c;
}

void read_dtype(const std::string& s, TensorEntry& e) {
  e.dtype_text = s;
  if (s == "F32") e.dtype = DType::kF32;
  else if (s == "F16") e.dtype = DType::kF16;
  else if (s == "BF16") e.dtype = DType::kBF16;
  else if (s == "F8_E4M3") e.dtype = DType::kF8E4M3;
  else if (s == "I8") e.dtype = DType::kI8;
  else e.dtype_supported = false;  // an error only if the model needs this tensor
}

std::vector<TensorEntry> read_tensors(const Napi::Array& arr, int num_files) {
  std::vector<TensorEntry> out;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Object t = arr.Get(i).As<Napi::Object>();
    TensorEntry e;
    e.name = string_field(t, "name");
    e.file = int_field(t, "file", 0, num_files - 1);
    read_dtype(string_field(t, "dtype"), e);
    Napi::Array shape = field(t, "shape").As<Napi::Array>();
    for (uint32_t d = 0; d < shape.Length(); ++d) e.shape.push_back(static_cast<int64_t>(shape.Get(d).As<Napi::Number>().DoubleValue()));
    e.begin = static_cast<uint64_t>(number_field(t, "begin"));
    e.end = static_cast<uint64_t>(number_field(t, "end"));
    out.push_back(std::move(e));
  }
  return out;
}

// Resolves or rejects a Promise with the outcome of work done off the JS thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(RuntimeWrap* rt, Napi::Object receiver)
      : Napi::AsyncWorker(receiver.Env()),
        runtime(rt),
        deferred(Napi::Promise::Deferred::New(receiver.Env())),
        keep_alive(Napi::Persistent(receiver)) {}
  Napi::Promise promise() { return deferred.Promise(); }

 protected:
  void Execute() override {
    try {
      run();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnError(const Napi::Error& e) override {
    finish();
    deferred.Reject(e.Value());
  }
  virtual void run() = 0;
  virtual void finish() {}

  RuntimeWrap* runtime;
  Napi::Promise::Deferred deferred;
  Napi::ObjectReference keep_alive;  // the runtime object outlives its in-flight work
};

}  // namespace

class LoadWorker : public PromiseWorker {
 public:
  using PromiseWorker::PromiseWorker;

 protected:
  void run() override {
    RuntimeWrap& r = *runtime;
    if (r.device_ == "cuda") {
      // The GPU backend draws its own dummy weights on the device; real ones are read from the mapping.
      std::unique_ptr<ModelWeights> w;
      if (!r.dummy_) w = std::make_unique<ModelWeights>(load_weights(r.config_, r.files_, r.tensors_));
      model = create_gpu_backend(r.gpu_library_, r.config_, w.get(), r.gpu_);
      return;
    }
    ModelWeights w = r.dummy_ ? make_dummy_weights(r.config_, r.dummy_seed_)
                              : load_weights(r.config_, r.files_, r.tensors_);
    model = std::make_unique<CpuModel>(r.config_, std::move(w), r.options_);
  }
  void finish() override { runtime->busy_ = false; }
  void OnOK() override {
    finish();
    runtime->model_ = std::move(model);
    deferred.Resolve(Env().Undefined());
  }

 private:
  std::unique_ptr<Backend> model;
};

class StepWorker : public PromiseWorker {
 public:
  StepWorker(RuntimeWrap* rt, Napi::Object receiver, int slot) : PromiseWorker(rt, receiver), slot_(slot) {}

 protected:
  void run() override {
    RuntimeWrap& r = *runtime;
    const StepOutput* prev = r.output_ok_[1 - slot_] ? &r.output_[1 - slot_] : nullptr;
    r.model_->collect(r.batch_[slot_], slot_, r.output_[slot_], prev);
  }
  void OnError(const Napi::Error& e) override {
    runtime->collected(slot_, false);
    deferred.Reject(e.Value());
  }
  void OnOK() override {
    runtime->collected(slot_, true);
    Napi::Env env = Env();
    const StepOutput& o = runtime->output_[slot_];
    Napi::Object result = Napi::Object::New(env);
    result.Set("tokens", copy_out<Napi::Int32Array>(env, o.tokens));
    result.Set("logprobs", copy_out<Napi::Float32Array>(env, o.logprobs));
    result.Set("topN", Napi::Number::New(env, o.top_n));
    result.Set("topIds", copy_out<Napi::Int32Array>(env, o.top_ids));
    result.Set("topLogprobs", copy_out<Napi::Float32Array>(env, o.top_logprobs));
    if (runtime->batch_[slot_].return_logits) result.Set("logits", copy_out<Napi::Float32Array>(env, o.logits));
    deferred.Resolve(result);
  }

 private:
  template <typename Array, typename T>
  static Array copy_out(Napi::Env env, const std::vector<T>& v) {
    Array a = Array::New(env, v.size());
    if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(T));
    return a;
  }
  int slot_;
};

Napi::Function RuntimeWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeRuntime",
                     {InstanceMethod("load", &RuntimeWrap::Load), InstanceMethod("info", &RuntimeWrap::Info),
                      InstanceMethod("step", &RuntimeWrap::Step), InstanceMethod("close", &RuntimeWrap::Close),
                      InstanceMethod("provideMasks", &RuntimeWrap::ProvideMasks)});
}

RuntimeWrap::RuntimeWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RuntimeWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "NativeRuntime needs an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  config_ = read_config(field(o, "config").As<Napi::Object>());
  options_.block_size = int_field(o, "blockSize", 1, 1024);
  options_.kv_cache_bytes = static_cast<uint64_t>(number_field(o, "kvCacheBytes"));
  options_.max_num_tokens = int_field(o, "maxNumTokens", 1, 1 << 20);
  options_.max_num_seqs = int_field(o, "maxNumSeqs", 1, 1 << 16);
  options_.num_threads = int_field(o, "numThreads", 1, 1024);
  options_.tensor_parallel_size = int_field(o, "tensorParallelSize", 1, 64);
  if (o.Has("quantization") && !o.Get("quantization").IsUndefined()) {
    const std::string q = string_field(o, "quantization");
    if (q != "int8" && q != "w8a8")
      throw Napi::RangeError::New(env, "quantization must be 'int8' (weight-only), 'w8a8' (INT8 weights and activations) or left out");
    options_.int8 = q == "int8";
    gpu_.quantization = q;
  }
  if (o.Has("device") && !o.Get("device").IsUndefined()) device_ = string_field(o, "device");
  if (device_ != "cpu" && device_ != "cuda") throw Napi::RangeError::New(env, "device must be 'cpu' or 'cuda'");
  std::string kv_dtype = "auto";
  if (o.Has("kvCacheDtype") && !o.Get("kvCacheDtype").IsUndefined()) kv_dtype = string_field(o, "kvCacheDtype");
  if (kv_dtype != "auto" && kv_dtype != "fp8" && kv_dtype != "int8")
    throw Napi::RangeError::New(env, "kvCacheDtype must be 'auto', 'fp8' or 'int8'");
  if (gpu_.quantization == "w8a8" && device_ != "cuda")
    throw Napi::RangeError::New(env, "quantization 'w8a8' runs on cuda only (INT8 tensor cores); the CPU backend has weight-only 'int8'");
  if (kv_dtype != "auto" && device_ != "cuda")
    throw Napi::RangeError::New(env, "kvCacheDtype '" + kv_dtype + "' runs on cuda only; the CPU backend keeps its KV cache in float32");
  gpu_.kv_cache_dtype = kv_dtype;
  if (device_ == "cuda") {
    if (options_.tensor_parallel_size > 1)
      throw Napi::RangeError::New(env, "tensorParallelSize > 1 is not available on cuda yet (the CPU backend has it)");
    gpu_library_ = string_field(o, "cudaLibrary");
    gpu_.dtype = string_field(o, "dtype");
    if (gpu_.dtype != "bf16" && gpu_.dtype != "fp8") throw Napi::RangeError::New(env, "dtype on cuda must be 'bf16' or 'fp8'");
    if (gpu_.dtype == "fp8" && !gpu_.quantization.empty())
      throw Napi::RangeError::New(env, "dtype 'fp8' and quantization '" + gpu_.quantization + "' exclude each other: choose one");
    gpu_.memory_fraction = number_field(o, "gpuMemoryFraction");
    if (!(gpu_.memory_fraction > 0 && gpu_.memory_fraction <= 1)) throw Napi::RangeError::New(env, "gpuMemoryFraction must be in (0, 1]");
    gpu_.kv_cache_bytes = options_.kv_cache_bytes;
    gpu_.block_size = options_.block_size;
    gpu_.max_num_tokens = options_.max_num_tokens;
    gpu_.max_num_seqs = options_.max_num_seqs;
    gpu_.batch_invariant = bool_field(o, "batchInvariant", gpu_.batch_invariant);
    gpu_.cuda_graphs = bool_field(o, "cudaGraphs", gpu_.cuda_graphs);
    gpu_.pdl = bool_field(o, "pdl", gpu_.pdl);
    gpu_.fused_gemv = bool_field(o, "fusedGemv", gpu_.fused_gemv);
    gpu_.fast_attention = bool_field(o, "fastAttention", gpu_.fast_attention);
    gpu_.warp_specialized_prefill = bool_field(o, "warpSpecializedPrefill", gpu_.warp_specialized_prefill);
    gpu_.overlap_decode_attention = bool_field(o, "overlapDecodeAttention", gpu_.overlap_decode_attention);
    gpu_.prefill_rope_q = bool_field(o, "prefillRopeQ", gpu_.prefill_rope_q);
    gpu_.fp8_prefill_scores = bool_field(o, "fp8PrefillScores", gpu_.fp8_prefill_scores);
    gpu_.fp8_prefill_values = bool_field(o, "fp8PrefillValues", gpu_.fp8_prefill_values);
    gpu_.prefill_pairs = bool_field(o, "prefillPairs", gpu_.prefill_pairs);
    gpu_.bf16_residual = bool_field(o, "bf16Residual", gpu_.bf16_residual);
    gpu_.residual_in_gemm = bool_field(o, "residualInGemm", gpu_.residual_in_gemm);
    gpu_.decode_warps = int_field(o, "decodeWarps", 0, 16, gpu_.decode_warps);
    if (gpu_.decode_warps & (gpu_.decode_warps - 1)) throw Napi::RangeError::New(env, "decodeWarps must be 0 (chosen per step) or 1, 2, 4, 8 or 16");
    gpu_.prefill_blocks = int_field(o, "prefillBlocks", 0, 1 << 20, gpu_.prefill_blocks);
    gpu_.row_gemm_prefetch_mib = int_field(o, "rowGemmPrefetchMiB", 0, 1024, gpu_.row_gemm_prefetch_mib);
    gpu_.row_gemm_next_mib = int_field(o, "rowGemmNextMiB", 0, 1024, gpu_.row_gemm_next_mib);
    gpu_.weight_row_pad = int_field(o, "weightRowPad", 0, 1024, gpu_.weight_row_pad);
    if (gpu_.weight_row_pad % 128 != 0) throw Napi::RangeError::New(env, "weightRowPad must be a multiple of 128 bytes (whole cache lines)");
    gpu_.profile = bool_field(o, "profile", gpu_.profile);
  }
  if (o.Has("dummySeed") && !o.Get("dummySeed").IsUndefined()) {
    dummy_ = true;
    dummy_seed_ = static_cast<uint64_t>(number_field(o, "dummySeed"));
    gpu_.dummy = true;
    gpu_.dummy_seed = dummy_seed_;
  } else {
    Napi::Array files = field(o, "files").As<Napi::Array>();
    for (uint32_t i = 0; i < files.Length(); ++i) files_.push_back(files.Get(i).As<Napi::String>().Utf8Value());
    tensors_ = read_tensors(field(o, "tensors").As<Napi::Array>(), static_cast<int>(files_.size()));
  }
}

void RuntimeWrap::require_idle(Napi::Env env, const char* what) const {
  if (closed_) throw Napi::Error::New(env, std::string("cannot ") + what + ": the runtime is closed");
  if (busy_ || in_flight_ > 0) throw Napi::Error::New(env, std::string("cannot ") + what + " while a load or step is running");
}

Napi::Value RuntimeWrap::Load(const Napi::CallbackInfo& info) {
  require_idle(info.Env(), "load");
  if (model_) throw Napi::Error::New(info.Env(), "the runtime is already loaded");
  auto* worker = new LoadWorker(this, Value());
  Napi::Promise promise = worker->promise();
  busy_ = true;
  worker->Queue();
  return promise;
}

Napi::Value RuntimeWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!model_) throw Napi::Error::New(env, "the runtime is not loaded");
  const BackendInfo i = model_->info();
  Napi::Object out = Napi::Object::New(env);
  out.Set("numBlocks", i.num_blocks);
  out.Set("blockSize", i.block_size);
  out.Set("bytesPerBlock", static_cast<double>(i.bytes_per_block));
  out.Set("numThreads", i.num_threads);
  out.Set("deviceName", i.device_name);
  out.Set("deviceBytesUsed", static_cast<double>(i.device_bytes_used));
  out.Set("weightDtype", i.weight_dtype);
  out.Set("gemmTuning", i.gemm_tuning);
  out.Set("projectionWeightBytes", static_cast<double>(i.projection_weight_bytes));
  return out;
}

void RuntimeWrap::read_batch(const Napi::Object& in, StepBatch& b) {
  copy_typed_array(in, "tokenIds", napi_int32_array, "Int32Array", b.token_ids);
  b.feed.clear();
  if (in.Has("feed") && !in.Get("feed").IsUndefined()) copy_typed_array(in, "feed", napi_int32_array, "Int32Array", b.feed);
  copy_typed_array(in, "positions", napi_int32_array, "Int32Array", b.positions);
  copy_typed_array(in, "queryLens", napi_int32_array, "Int32Array", b.query_lens);
  copy_typed_array(in, "blockTables", napi_int32_array, "Int32Array", b.block_tables);
  b.table_stride = int_field(in, "blockTableStride", 1, 1 << 24);
  copy_typed_array(in, "sample", napi_uint8_array, "Uint8Array", b.sample);
  b.prompt_lens.clear();
  if (in.Has("promptLens") && !in.Get("promptLens").IsUndefined())
    copy_typed_array(in, "promptLens", napi_int32_array, "Int32Array", b.prompt_lens);
  b.return_logits = bool_field(in, "returnLogits", false);
  const size_t S = b.query_lens.size();
  b.params.assign(S, SamplingParams{});
  // Every sampling column, off the one list in cpu/sampling_columns.h.
#define TACHYON_READ_COLUMN(type, member, js, napi, init)                                        \
  {                                                                                            \
    std::vector<type> column;                                                                  \
    copy_typed_array(in, js, napi, #napi, column);                                             \
    if (column.size() != S) fail("sampling column '", js, "' must have ", S, " entries (one per query_lens entry)"); \
    for (size_t s = 0; s < S; ++s) b.params[s].member = column[s];                             \
  }
  TACHYON_SAMPLING_COLUMNS(TACHYON_READ_COLUMN)
#undef TACHYON_READ_COLUMN
  b.bias_start.clear();
  b.bias_ids.clear();
  b.bias_values.clear();
  if (in.Has("biasStart") && !in.Get("biasStart").IsUndefined()) {
    copy_typed_array(in, "biasStart", napi_int32_array, "Int32Array", b.bias_start);
    copy_typed_array(in, "biasIds", napi_int32_array, "Int32Array", b.bias_ids);
    copy_typed_array(in, "biasValues", napi_float32_array, "Float32Array", b.bias_values);
  }
  b.history_start.clear();
  b.history_tokens.clear();
  b.history_prompt.clear();
  if (in.Has("historyStart") && !in.Get("historyStart").IsUndefined()) {
    copy_typed_array(in, "historyStart", napi_int32_array, "Int32Array", b.history_start);
    copy_typed_array(in, "historyTokens", napi_int32_array, "Int32Array", b.history_tokens);
    copy_typed_array(in, "historyPrompt", napi_int32_array, "Int32Array", b.history_prompt);
  }
  b.num_mask_rows = in.Has("numMaskRows") ? int_field(in, "numMaskRows", 0, 1 << 20) : 0;
  b.await_masks = nullptr;
  if (b.num_mask_rows > 0) {
    masks_.reset(static_cast<size_t>(b.num_mask_rows) * ((config_.vocab_size + 31) / 32));
    b.await_masks = [this] { return masks_.wait(); };
  }
}

Napi::Value RuntimeWrap::ProvideMasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() >= 1 && info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    auto masks = info[0].As<Napi::Int32Array>();
    masks_.deliver(masks.Data(), masks.ElementLength());
  } else {
    const std::string why = info.Length() >= 2 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "no masks were given";
    masks_.deliver_error(why);
  }
  return env.Undefined();
}

Napi::Value RuntimeWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "cannot step: the runtime is closed");
  if (busy_) throw Napi::Error::New(env, "cannot step while the runtime is loading");
  if (!model_) throw Napi::Error::New(env, "the runtime is not loaded");
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "step needs a batch object");
  if (in_flight_ >= 2) throw Napi::Error::New(env, "cannot step: two steps are already in flight");
  // A masked step samples only once its masks arrive; a step launched behind it could not read its tokens.
  if (masked_in_flight_) throw Napi::Error::New(env, "cannot step while a step with grammar masks is in flight");
  const int slot = next_slot_;
  StepBatch& b = batch_[slot];
  try {
    read_batch(info[0].As<Napi::Object>(), b);
    validate_batch(b, model_->config(), model_->limits());
    if (!b.feed.empty() && in_flight_ == 0 && !output_ok_[1 - slot])
      fail("the batch feeds tokens from a previous step, but the last step failed or there was none");
    model_->launch(b, slot);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  next_slot_ = 1 - slot;
  ++in_flight_;
  masked_in_flight_ = b.num_mask_rows > 0;
  auto* worker = new StepWorker(this, Value(), slot);
  Napi::Promise promise = worker->promise();
  if (in_flight_ == 1) worker->Queue();
  else waiting_collect_ = worker;
  return promise;
}

void RuntimeWrap::collected(int slot, bool ok) {
  output_ok_[slot] = ok;
  --in_flight_;
  if (batch_[slot].num_mask_rows > 0) masked_in_flight_ = false;
  if (waiting_collect_) {
    Napi::AsyncWorker* next = waiting_collect_;
    waiting_collect_ = nullptr;
    next->Queue();
  }
}

Napi::Value RuntimeWrap::Close(const Napi::CallbackInfo& info) {
  require_idle(info.Env(), "close");
  model_.reset();
  closed_ = true;
  return info.Env().Undefined();
}

}  // namespace tachyon
