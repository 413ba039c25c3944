#!/usr/bin/env bash
# Builds and runs bench/pdl-chain.cu on the GPU machine: what a small kernel's boundary costs in a
# CUDA graph, with programmatic dependent launch and without (no cuBLAS needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/pdl-chain
nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I native bench/pdl-chain.cu -o "$bin"
"$bin"
