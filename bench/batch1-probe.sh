#!/usr/bin/env bash
# Batch 1's open questions in one device call (at most 550 s, the sum of its steps' timeouts; see
# bench/RESULTS.md, twenty-second to twenty-fourth sessions): where the one-block-an-SM
# projections' time goes, and whether the row GEMM's build switches help. Each step runs under its
# own timeout and the next runs whatever it gave; logs under $OUT (or a temporary folder), the
# lines that matter printed as each step ends.
#   1. bench/weight-stream.sh, every row (copy patterns, the loop alone, prefetch, padded rows)
#   2. its row_gemm row built with -DTACHYON_ROW_GEMM_BULK=1024, then -DTACHYON_ROW_GEMM_A_REGISTERS=1
#   3. bench/gemm-invariance.sh --rows with each of those switches: their bits against cuBLASLt's
# Needs cuBLASLt for step 3: `source .device/activate` (or scripts/device-session.sh) first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$(mktemp -d)}
step() {  # NAME SECONDS FILTER COMMAND...: FILTER, an extended regex of the log's lines to print (all: .)
  local name=$1 seconds=$2 filter=$3
  shift 3
  echo "== $name"
  timeout "$seconds" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || { echo "   rc $rc (124: timed out)"; tail -5 "$out/$name.log"; }
  grep -E "$filter" "$out/$name.log"
}
# Bits: each shape's header and the row GEMM's line against the reference; speed: its 1-row timings.
bits='^== |launch_row_gemm|^  1 rows:'
step weight-stream 170 . bash bench/weight-stream.sh
step weight-stream-bulk 80 '^(variant|row_gemm)' env CUDAFLAGS=-DTACHYON_ROW_GEMM_BULK=1024 bash bench/weight-stream.sh row_gemm
step weight-stream-aregs 80 '^(variant|row_gemm)' env CUDAFLAGS=-DTACHYON_ROW_GEMM_A_REGISTERS=1 bash bench/weight-stream.sh row_gemm
step invariance-bulk 110 "$bits" env CUDAFLAGS=-DTACHYON_ROW_GEMM_BULK=1024 bash bench/gemm-invariance.sh --rows
step invariance-aregs 110 "$bits" env CUDAFLAGS=-DTACHYON_ROW_GEMM_A_REGISTERS=1 bash bench/gemm-invariance.sh --rows
echo "logs in $out"
