# Sourced at the start of a command on the GPU machine (no Node.js, no network there), after
# scripts/pack-device.sh ran here and the run carried [".device", "dist", "build/Release", ".carry"]:
#   source scripts/device-session.sh; build; suite; tp batch --only batch
# It activates the packed Node.js and the PyTorch environment's CUDA libraries, links the carried
# node_modules, and defines three helpers that write their logs under $OUT:
#   build [TAG]        the CUDA library from a removed build/cuda ($CUDAFLAGS go to nvcc)
#   suite [TAG]        the GPU test suite, its totals and the first failures
#   tp TAG ARGS...     one bench/throughput.ts run, its table rows
# shellcheck shell=bash
source .device/activate
ln -sfn .carry/node_modules node_modules
export TACHYON_SHAKESPEARE=$PWD/.carry/tinyshakespeare.txt
: "${OUT:=$(mktemp -d)}"
build() {
  rm -rf build/cuda
  TACHYON_CUDA_ARCHS=90a node scripts/build-cuda.mjs > "$OUT/build$1.log" 2>&1 || { tail -30 "$OUT/build$1.log"; return 1; }
}
suite() {
  # shellcheck disable=SC2046 # the test files, one word each
  TACHYON_REQUIRE_GPU=1 timeout 300 node --test --test-concurrency=1 $(find dist/test/gpu -name '*.test.js' | sort) > "$OUT/suite$1.log" 2>&1
  echo "suite rc $?"
  grep -E "^# (tests|pass|fail)" "$OUT/suite$1.log"
  grep -B2 -A20 "^not ok" "$OUT/suite$1.log" | head -60
}
tp() {
  local tag=$1
  shift
  timeout 150 node dist/bench/throughput.js "$@" > "$OUT/tp-$tag.log" 2>&1
  grep -E '^\| llama|^\| gpt' "$OUT/tp-$tag.log" || tail -5 "$OUT/tp-$tag.log"
}
