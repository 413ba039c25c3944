#include "addon/gpu_loader.h"

#include <dlfcn.h>

#include "cpu/error.h"

namespace tachyon {

std::unique_ptr<Backend> create_gpu_backend(const std::string& library, const ModelConfig& config, const ModelWeights* weights,
                                            const GpuOptions& options) {
  // Kept loaded for the life of the process: backends and their code must outlive every runtime.
  void* handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) fail("cannot load the CUDA backend (", library, "): ", ::dlerror());
  auto abi = reinterpret_cast<BackendAbiVersionFn>(::dlsym(handle, kBackendAbiVersionSymbol));
  if (!abi || abi() != kBackendAbiVersion)
    fail("the CUDA backend library ", library, " was built from other sources than this addon (ABI ", abi ? abi() : 0, ", expected ",
         kBackendAbiVersion, "); rebuild it with npm run build:cuda");
  auto create = reinterpret_cast<CreateGpuBackendFn>(::dlsym(handle, kCreateGpuBackendSymbol));
  if (!create) fail("the CUDA backend library ", library, " has no ", kCreateGpuBackendSymbol);
  char error[1024] = {0};
  Backend* backend = create(config, weights, options, error, sizeof(error));
  if (!backend) fail(error[0] ? error : "the CUDA backend failed to start");
  return std::unique_ptr<Backend>(backend);
}

}  // namespace tachyon
