#!/usr/bin/env bash
# Builds and runs bench/weight-stream.cu on the GPU machine: a batch-1 step's weights read by
# copy-only kernels of several patterns beside the library's row GEMM (native/cuda/gemm_rows.cu,
# built in with what it needs; no cuBLAS), a projection at a time and as a step's chain. About a
# minute; 7 GB of device memory.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/weight-stream
# shellcheck disable=SC2086 # CUDAFLAGS: words, as CMake splits them
nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a ${CUDAFLAGS:-} -I native \
  bench/weight-stream.cu native/cuda/gemm_rows.cu native/cuda/wgmma_probe.cu -o "$bin"
"$bin" "$@"
