#!/usr/bin/env python3
"""Instructions executed and warp-stall samples per SASS opcode of one kernel (by count, then by
stalls), from
`ncu -i REPORT --page source --csv --print-source sass > FILE.csv`:
    python3 bench/sass_summary.py FILE.csv [top]
Where a kernel's time goes when it is bound by issue rather than by memory or tensor cores."""
import collections
import csv
import sys

rows = csv.reader(open(sys.argv[1], newline=""))
next(rows)  # the kernel's name
header = next(rows)
executed = header.index("Instructions Executed")
stalls = header.index("Warp Stall Sampling (All Samples)")
source = header.index("Source")
count, sampled = collections.Counter(), collections.Counter()
for row in rows:
    if len(row) <= max(executed, stalls, source):
        continue
    words = row[source].split()
    if not words:
        continue
    op = (words[1] if words[0].startswith("@") and len(words) > 1 else words[0]).split(".")
    # WARPGROUP.ARRIVE (wgmma.fence) and WARPGROUP.DEPBAR (the wgmma wait) apart; other opcodes whole.
    op = ".".join(op[:2]) if op[0] == "WARPGROUP" else op[0]
    count[op] += int(row[executed] or 0)
    sampled[op] += int(row[stalls] or 0)
total, total_samples = sum(count.values()), max(1, sum(sampled.values()))
print(f"{total:,} instructions executed, {total_samples:,} stall samples")
for op, n in count.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 25):
    print(f"{op:18s} {n:14,d} {100 * n / total:5.1f}%   stalls {100 * sampled[op] / total_samples:5.1f}%")
print("by stall samples:")
for op, n in sampled.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 25):
    print(f"{op:18s} stalls {100 * n / total_samples:5.1f}%   executed {count[op]:14,d}")
