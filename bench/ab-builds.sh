#!/usr/bin/env bash
# One throughput row on two builds of the CUDA library, interleaved so that a machine's drift falls
# on both sides (as bench/ab.sh does for runtime knobs): A built as the tree is, B with the
# compile-time switches in $CUDAFLAGS_B (e.g. -DTACHYON_ROW_GEMM_STREAMING=0). Both libraries are
# built from a removed build/cuda (about a minute each on the GPU machine), kept under $AB_DIR, and
# copied into build/cuda before each run; B's stays there at the end. On the GPU machine, after
# `source .device/activate`:
#   CUDAFLAGS_B=-DTACHYON_ROW_GEMM_STREAMING=0 bash bench/ab-builds.sh batch --row-gemm-prefetch-mib 16
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: CUDAFLAGS_B=... bash bench/ab-builds.sh NAME [ARG...]" >&2; exit 2; }
: "${CUDAFLAGS_B:?nvcc flags for the B build}"
only=$1
shift
dir=${AB_DIR:-$(mktemp -d)}
lib=build/cuda/libtachyon_cuda.so
for side in A B; do
  flags=""
  [ "$side" = B ] && flags=$CUDAFLAGS_B
  rm -rf build/cuda
  CUDAFLAGS=$flags TACHYON_CUDA_ARCHS=${TACHYON_CUDA_ARCHS:-90a} node scripts/build-cuda.mjs > "$dir/build-$side.log" 2>&1 ||
    { tail -20 "$dir/build-$side.log"; exit 1; }
  cp "$lib" "$dir/$side.so"
done
for r in $(seq "${ROUNDS:-2}"); do
  for side in A B; do
    cp "$dir/$side.so" "$lib"
    node dist/bench/throughput.js --only "$only" "$@" | grep -E '^\| (llama|gpt)' | sed "s/^/$side$r /"
  done
done
