// Reading typed fields off JS option objects, with errors that name the field.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tachyon {

inline Napi::Value field(const Napi::Object& obj, const char* name) {
  Napi::Value v = obj.Get(name);
  if (v.IsUndefined()) throw Napi::TypeError::New(obj.Env(), std::string("missing field '") + name + "'");
  return v;
}

inline double number_field(const Napi::Object& obj, const char* name) {
  Napi::Value v = field(obj, name);
  if (!v.IsNumber()) throw Napi::TypeError::New(obj.Env(), std::string("field '") + name + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline int int_field(const Napi::Object& obj, const char* name, double lo, double hi) {
  const double d = number_field(obj, name);
  if (d != static_cast<double>(static_cast<int64_t>(d)) || d < lo || d > hi)
    throw Napi::RangeError::New(obj.Env(), std::string("field '") + name + "' must be an integer in [" +
                                               std::to_string(static_cast<int64_t>(lo)) + ", " +
                                               std::to_string(static_cast<int64_t>(hi)) + "]");
  return static_cast<int>(d);
}

// An optional integer field: fallback where it is absent or undefined.
inline int int_field(const Napi::Object& obj, const char* name, double lo, double hi, int fallback) {
  return obj.Get(name).IsUndefined() ? fallback : int_field(obj, name, lo, hi);
}

inline bool bool_field(const Napi::Object& obj, const char* name, bool fallback) {
  Napi::Value v = obj.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw Napi::TypeError::New(obj.Env(), std::string("field '") + name + "' must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline std::string string_field(const Napi::Object& obj, const char* name) {
  Napi::Value v = field(obj, name);
  if (!v.IsString()) throw Napi::TypeError::New(obj.Env(), std::string("field '") + name + "' must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// Copies a typed array field of element type T (checked against `type`).
template <typename T>
void copy_typed_array(const Napi::Object& obj, const char* name, napi_typedarray_type type, const char* type_name,
                      std::vector<T>& out) {
  Napi::Value v = field(obj, name);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(obj.Env(), std::string("field '") + name + "' must be a " + type_name);
  auto arr = v.As<Napi::TypedArrayOf<T>>();
  out.assign(arr.Data(), arr.Data() + arr.ElementLength());
}

}  // namespace tachyon
