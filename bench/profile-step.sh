#!/usr/bin/env bash
# Whole steps under Nsight Compute, kernel by kernel, in the steady state of a throughput row (by
# default batch 1): the engine brackets steps FIRST .. FIRST + COUNT - 1 with cudaProfilerStart /
# cudaProfilerStop (TACHYON_PROFILE_STEPS, native/cuda/profiled_steps.h), ncu times each kernel of
# them (CUDA graph nodes included) with DRAM bytes, and bench/step_kernels.py sums them by kernel.
# Unlike --profile, no events go between kernels. On the GPU machine, after the CUDA build:
#   bash bench/profile-step.sh                          # llama-3-8b fp8 batch 1, steps 120-123
#   STEPS=60:2 bash bench/profile-step.sh --only "llama-3-8b fp8 batch 8"
# Reports go to $OUT (or a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$(mktemp -d)}
steps=${STEPS:-120:4}
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--only "llama-3-8b fp8 batch 1")
TACHYON_PROFILE_STEPS=$steps ncu --profile-from-start off --clock-control none --cache-control none \
  --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum -f -o "$out/steps" \
  node dist/bench/throughput.js "${args[@]}" > "$out/steps-ncu.log" 2>&1
grep -E '^\| ' "$out/steps-ncu.log" || true  # the row's own timing (the bracketed steps run slower under ncu)
ncu -i "$out/steps.ncu-rep" --page raw --csv --print-units base > "$out/steps.csv"
python3 bench/step_kernels.py "$out/steps.csv" "${steps#*:}" 40
