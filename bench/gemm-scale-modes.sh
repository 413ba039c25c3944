#!/usr/bin/env bash
# Builds and runs bench/gemm-scale-modes.cu on the GPU machine (after `source .device/activate`,
# which finds cuBLASLt inside the PyTorch environment): cuBLASLt's FP8 candidates and their speed
# for Llama-3-8B's projections at 2,048 and 8,192 rows under other scale modes and epilogues than
# the library's. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${CUBLASLT_ROOT:-${CUDA_LIBS_HINT:?source .device/activate first, or set CUBLASLT_ROOT}}
bin=$(mktemp -d)/gemm-scale-modes
lib=$(ls "$root"/lib/libcublasLt.so* | head -1)
nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I"$root/include" -I native bench/gemm-scale-modes.cu \
  -L"$root/lib" -l:"$(basename "$lib")" -Xlinker -rpath="$root/lib" -o "$bin"
"$bin" "$@"
