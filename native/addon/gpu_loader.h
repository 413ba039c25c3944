// Opens the CUDA backend library and creates a backend from it.
#pragma once
#include <memory>
#include <string>

#include "backend.h"

namespace tachyon {

std::unique_ptr<Backend> create_gpu_backend(const std::string& library, const ModelConfig& config, const ModelWeights* weights,
                                            const GpuOptions& options);

}  // namespace tachyon
