#!/usr/bin/env bash
# Nsight Compute on the prefill and decode attention kernels at benchmark shapes
# (bench/attention-probe.ts: four 2048-token prompts; 256 sequences decoding at
# about 850 context, one warp a (token, KV head) as at the long rows), in one
# device command: each kernel's details page, and its SASS instructions and stall
# samples per opcode (bench/sass_summary.py). Reports go to $OUT (or a temporary
# folder). On the GPU machine, after the CUDA build (arguments go to the probe, e.g.
# --shape gpt-j-6b). KERNELS=decode (or prefill) profiles one of them only; for 2048/2048's
# steady state rather than its tail, give --decode-output 180 (bench/RESULTS.md, twelfth session):
#   bash bench/profile-kernels.sh [--shape NAME]
#   KERNELS=decode bash bench/profile-kernels.sh --decode-seqs 461 --decode-context 3000 --decode-output 180 --max-num-seqs 512
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$(mktemp -d)}
node dist/bench/attention-probe.js "$@" > "$out/probe.log"
cat "$out/probe.log"
probe_args=("$@")
decode_skip=$(sed -n 's/^decode kernel: --launch-skip \([0-9]*\).*/\1/p' "$out/probe.log")
profile() {  # name, kernel regex, launches to skip
  ncu --clock-control none --set full -k "regex:$2" --launch-skip "$3" --launch-count 1 -f -o "$out/$1" \
    node dist/bench/attention-probe.js ${probe_args[@]+"${probe_args[@]}"} > "$out/$1-ncu.log" 2>&1
  ncu -i "$out/$1.ncu-rep" --page details > "$out/$1-details.txt"
  ncu -i "$out/$1.ncu-rep" --page source --csv --print-source sass > "$out/$1-sass.csv"
  echo "== $1: $(grep -m1 -o '[a-z_0-9]*attention[a-z_0-9]*kernel<[^(]*' "$out/$1-details.txt" || true) $(grep -m1 -E 'Grid Size' "$out/$1-details.txt" | tr -s ' ' || true)"
  grep -E '^ +(Duration|DRAM Throughput|Issue Slots Busy|Registers Per Thread|Achieved Occupancy|Warp Cycles Per Issued Instruction) ' "$out/$1-details.txt" | tr -s ' ' || true
  python3 bench/sass_summary.py "$out/$1-sass.csv" 15
}
kernels=${KERNELS:-prefill decode}
[[ " $kernels " == *" prefill "* ]] && profile prefill prefill_attention 8
[[ " $kernels " == *" decode "* ]] && profile decode decode_attention "$decode_skip"
echo "reports in $out"
