#!/usr/bin/env bash
# Issue 7's benchmark in one command, on a GPU machine with the CUDA backend built:
# Tachyon's engine on every workload, then the transformers BF16 peer and the
# card's copy bandwidth (for the batch-1 bound). SCALE=0.25 runs a quarter of the requests.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
node dist/bench/throughput.js --scale "${SCALE:-1}"
python3 bench/transformers_baseline.py
