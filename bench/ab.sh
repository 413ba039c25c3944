#!/usr/bin/env bash
# One throughput row under two settings, interleaved on one build (A: as given, B: with the extra
# arguments), so that a machine's drift (its clock at the power limit, a warm or cold start) falls
# on both sides: bench/throughput.ts's rows matching NAME, ROUNDS times each (default 2). On the
# GPU machine, after the CUDA build:
#   bash bench/ab.sh 2048/128 --no-residual-in-gemm
#   ROUNDS=3 bash bench/ab.sh batch --no-fp8-prefill-scores
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bash bench/ab.sh NAME ARG..." >&2; exit 2; }
only=$1
shift
for r in $(seq "${ROUNDS:-2}"); do
  for side in A B; do
    args=()
    [ "$side" = B ] && args=("$@")
    node dist/bench/throughput.js --only "$only" "${args[@]}" | grep -E '^\| (llama|gpt)' | sed "s/^/$side$r /"
  done
done
