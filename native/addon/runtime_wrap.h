// The JS face of one loaded model: NativeRuntime, an ObjectWrap whose slow
// calls (load, step) run on libuv's worker threads and return Promises.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "addon/mask_mailbox.h"
#include "cpu/model.h"

namespace tachyon {

class RuntimeWrap : public Napi::ObjectWrap<RuntimeWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit RuntimeWrap(const Napi::CallbackInfo& info);

 private:
  friend class LoadWorker;
  friend class StepWorker;

  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  // provideMasks(masks: Int32Array) or provideMasks(null, why): the grammar masks of the running step.
  Napi::Value ProvideMasks(const Napi::CallbackInfo& info);

  void read_batch(const Napi::Object& input, StepBatch& b);
  // After step `slot` settles (on the JS thread): its collect worker is done; start the next one.
  void collected(int slot, bool ok);
  void require_idle(Napi::Env env, const char* what) const;

  ModelConfig config_;
  RuntimeOptions options_;
  std::vector<std::string> files_;
  std::vector<TensorEntry> tensors_;
  bool dummy_ = false;
  uint64_t dummy_seed_ = 0;

  std::unique_ptr<Backend> model_;
  std::string device_ = "cpu";
  std::string gpu_library_;
  GpuOptions gpu_;
  // Async scheduling: two step slots, launched alternately; a step's collect worker is queued
  // once the one before it has settled, so collects run one at a time and in order.
  StepBatch batch_[2];
  StepOutput output_[2];
  bool output_ok_[2] = {false, false};
  int next_slot_ = 0;
  int in_flight_ = 0;                      // launched, not settled
  bool masked_in_flight_ = false;           // a launched step samples under grammar masks
  Napi::AsyncWorker* waiting_collect_ = nullptr;  // launched while another step's collect runs
  MaskMailbox masks_;
  bool busy_ = false;                      // load
  bool closed_ = false;
};

}  // namespace tachyon
