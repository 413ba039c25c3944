#include <napi.h>

#include "addon/runtime_wrap.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeRuntime", tachyon::RuntimeWrap::Define(env));
  exports.Set("backends", Napi::String::New(env, "cpu"));
  return exports;
}

NODE_API_MODULE(tachyon_native, Init)
