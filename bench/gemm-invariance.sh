#!/usr/bin/env bash
# Builds and runs bench/gemm-invariance.cu on the GPU machine (after `source .device/activate`,
# which finds cuBLASLt inside the PyTorch environment): which cuBLASLt algorithms compute a row the
# same way whatever the row count, and whether our own wgmma kernel matches them bit for bit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${CUBLASLT_ROOT:-${CUDA_LIBS_HINT:?source .device/activate first, or set CUBLASLT_ROOT}}
bin=$(mktemp -d)/gemm-invariance
lib=$(ls "$root"/lib/libcublasLt.so* | head -1)
nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I"$root/include" bench/gemm-invariance.cu -L"$root/lib" -l:"$(basename "$lib")" -Xlinker -rpath="$root/lib" -o "$bin"
"$bin"
