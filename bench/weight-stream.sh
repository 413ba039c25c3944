#!/usr/bin/env bash
# Builds and runs bench/weight-stream.cu on the GPU machine: a batch-1 step's weights read by
# copy-only kernels of several patterns beside the library's row GEMM (native/cuda/gemm_rows.cu,
# built in with what it needs; no cuBLAS), a projection at a time and as a step's chain. About a
# minute; 7.4 GB of device memory. Arguments: the names of the variants to run, whole (e.g. row_gemm
# "mma rs"); none runs them all. $CUDAFLAGS go to nvcc for the library's row GEMM too, so that a
# build switch's kernel takes the row_gemm rows (e.g. CUDAFLAGS=-DTACHYON_ROW_GEMM_BULK=1024).
# PROFILE=1: instead, Nsight Compute on the row GEMM's first O and down launches (one token, as the
# step's): duration, DRAM throughput, warp stall reasons, and stall samples per SASS opcode
# (bench/sass_summary.py), reports in $OUT (or a temporary folder). Whether its warps wait on the
# copies (DEPBAR: cp.async.wait_group) or on the wgmma (WARPGROUP.DEPBAR) says which bound it is.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/weight-stream
# shellcheck disable=SC2086 # CUDAFLAGS: words, as CMake splits them
nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a ${CUDAFLAGS:-} -I native \
  bench/weight-stream.cu native/cuda/gemm_rows.cu native/cuda/wgmma_probe.cu -o "$bin"
if [[ "${PROFILE:-0}" != 1 ]]; then
  "$bin" "$@"
  exit
fi
out=${OUT:-$(mktemp -d)}
# The row_gemm variant launches qkv, o, gate_up, down once each outside a graph first: o is launch 1, down 3.
for shot in o:1 down:3; do
  name=row-gemm-${shot%%:*}
  ncu --clock-control none --set full -k regex:row_gemm_kernel --launch-skip "${shot##*:}" --launch-count 1 -f -o "$out/$name" \
    "$bin" row_gemm > "$out/$name-ncu.log" 2>&1 || { tail -20 "$out/$name-ncu.log"; exit 1; }
  ncu -i "$out/$name.ncu-rep" --page details > "$out/$name-details.txt"
  ncu -i "$out/$name.ncu-rep" --page raw --csv > "$out/$name-raw.csv"
  ncu -i "$out/$name.ncu-rep" --page source --csv --print-source sass > "$out/$name-sass.csv"
  echo "== $name"
  grep -E '^ +(Duration|DRAM Throughput|Memory Throughput|Issue Slots Busy|Warp Cycles Per Issued Instruction|Achieved Occupancy) ' \
    "$out/$name-details.txt" | tr -s ' ' || true
  # Stall reasons, cycles a warp per issued instruction, largest first.
  python3 - "$out/$name-raw.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
head, values = rows[0], rows[-1]
pre, post = "smsp__average_warps_issue_stalled_", "_per_issue_active.ratio"
stalls = []
for name, value in zip(head, values):
    if name.startswith(pre) and name.endswith(post):
        try:
            stalls.append((float(value.replace(",", "")), name[len(pre):-len(post)]))
        except ValueError:
            pass
for v, n in sorted(stalls, reverse=True)[:8]:
    print(f"  stall {n:24s} {v:8.2f}")
PY
  python3 bench/sass_summary.py "$out/$name-sass.csv" 15
done
echo "reports in $out"
