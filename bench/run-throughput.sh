#!/usr/bin/env bash
# Issue 7's benchmark in one command, on a GPU machine with the CUDA backend built:
# the transformers BF16 peer and the card's copy bandwidth, then Tachyon's engine on every
# workload, and batch 1 beside the bound from reading the weights
# once per token at that bandwidth. SCALE=0.25 runs a quarter of the requests;
# other arguments go to bench/throughput.ts (--only NAME, --no-batch-invariant, --kv-cache-dtype auto|fp8, --max-num-seqs N).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# The peer first: its bandwidth line is what batch 1 is set against, and it is short.
python3 bench/transformers_baseline.py | tee "$out/peer"
node dist/bench/throughput.js --scale "${SCALE:-1}" "$@" | tee "$out/tachyon"
node -e '
const fs = require("fs");
const last = (f) => JSON.parse(fs.readFileSync(f, "utf8").trim().split("\n").filter((l) => l.startsWith("{")).pop());
const t = last(process.argv[1]), p = last(process.argv[2]);
const bound = t.weight_bytes_per_token / (p.d2d_bandwidth_gb_s * 1e9) * 1e3;
console.log(`batch 1: ${t.batch1_ms_per_token.toFixed(2)} ms per token; bound ${bound.toFixed(2)} ms (${(t.weight_bytes_per_token / 1e9).toFixed(2)} GB at ${p.d2d_bandwidth_gb_s.toFixed(0)} GB/s): ${(t.batch1_ms_per_token / bound).toFixed(2)}x (target 1.5x)`);
' "$out/tachyon" "$out/peer"
rm -rf "$out"
