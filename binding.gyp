{
  "targets": [
    {
      "target_name": "tachyon_native",
      "sources": [
        "native/addon/addon.cc",
        "native/addon/runtime_wrap.cc",
        "native/addon/gpu_loader.cc",
        "native/cpu/thread_pool.cc",
        "native/cpu/weights.cc",
        "native/cpu/kernels.cc",
        "native/cpu/attention.cc",
        "native/cpu/kv_cache.cc",
        "native/cpu/rope_freq.cc",
        "native/cpu/sampler.cc",
        "native/cpu/penalties.cc",
        "native/cpu/model.cc",
        "native/cpu/rank.cc",
        "native/cpu/tensor_parallel.cc",
        "native/cpu/all_reduce.cc",
        "native/cpu/int8.cc",
        "native/cpu/batch.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-march=<!(node -p \"process.env.TACHYON_MARCH || 'native'\")", "-fno-math-errno", "-pthread"],
      "ldflags": ["-pthread"],
      "libraries": ["-ldl"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3"]
      }
    }
  ]
}
