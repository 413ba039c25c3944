#!/usr/bin/env bash
# Builds and runs bench/gemm-invariance.cu on the GPU machine (after `source .device/activate`,
# which finds cuBLASLt inside the PyTorch environment): which cuBLASLt algorithms compute a row the
# same way whatever the row count, and whether our own wgmma kernels (the bench's and the library's
# few-row GEMM, native/cuda/gemm_rows.cu, built in with what it needs) match them bit for bit, and
# how fast the library's is beside cuBLASLt at 1 to 64 rows. --rows: the library's row GEMM alone
# (its bits against the reference and its timings), a minute shorter. $CUDAFLAGS go to nvcc, as in
# the library's build (e.g. CUDAFLAGS=-DTACHYON_ROW_GEMM_STREAMING=0).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${CUBLASLT_ROOT:-${CUDA_LIBS_HINT:?source .device/activate first, or set CUBLASLT_ROOT}}
bin=$(mktemp -d)/gemm-invariance
lib=$(ls "$root"/lib/libcublasLt.so* | head -1)
# shellcheck disable=SC2086 # CUDAFLAGS: words, as CMake splits them
nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a ${CUDAFLAGS:-} -I"$root/include" -I native \
  bench/gemm-invariance.cu native/cuda/gemm_rows.cu native/cuda/wgmma_probe.cu \
  -L"$root/lib" -l:"$(basename "$lib")" -Xlinker -rpath="$root/lib" -o "$bin"
"$bin" "$@"
