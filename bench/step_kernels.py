#!/usr/bin/env python3
"""Where whole steps' GPU time goes, kernel by kernel, from an ncu report of the steps
TACHYON_PROFILE_STEPS bracketed (bench/profile-step.sh writes it):
    ncu -i REPORT --page raw --csv --print-units base > FILE.csv
    python3 bench/step_kernels.py FILE.csv STEPS [top]
Each kernel ran alone under ncu, so the sum is the step's kernel time with no launch gaps and no
PDL overlap; the throughput row's median step time minus that sum is what gaps and tails cost."""
import collections
import csv
import re
import sys


def number(text):
    text = (text or "").replace(",", "").strip()
    try:
        return float(text)
    except ValueError:
        return 0.0


def short_name(name):
    # "void tachyon::(anonymous namespace)::gemm_rows_kernel<128, 2>(args...)" -> "gemm_rows_kernel<128, 2>"
    name = name.replace("(anonymous namespace)::", "").removeprefix("void ").split("(")[0]
    return re.sub(r"^(\w+::)+", "", name)[:70]


rows = list(csv.reader(open(sys.argv[1], newline="")))
steps = int(sys.argv[2])
top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
# rows[0]: metric names, rows[1]: units, then a row a kernel; an empty report has none of them.
data = [r for r in rows[2:] if len(r) == len(rows[0])]
if not data:
    sys.exit("no kernels in the report: were the steps reached (TACHYON_PROFILE_STEPS)?")
col = {h: i for i, h in enumerate(rows[0])}
name_col = next(h for h in ("Kernel Name", "Function Name", "Demangled Name") if h in col)
time_ns, reads, writes, launches = (collections.Counter() for _ in range(4))
for r in data:
    k = short_name(r[col[name_col]])
    time_ns[k] += number(r[col["gpu__time_duration.sum"]])
    reads[k] += number(r[col["dram__bytes_read.sum"]])
    writes[k] += number(r[col["dram__bytes_write.sum"]])
    launches[k] += 1
total = sum(time_ns.values())
print(f"{len(data)} kernels over {steps} steps: {len(data) / steps:.0f} a step, {total / steps / 1e3:.1f} us of kernel time a step, "
      f"DRAM {sum(reads.values()) / steps / 1e9:.2f} GB read + {sum(writes.values()) / steps / 1e9:.2f} GB written a step")
print(f"{'kernel':70s} {'a step':>6s} {'us a step':>10s} {'share':>6s} {'us each':>8s} {'GB/s':>7s}")
for k, t in time_ns.most_common(top):
    gbs = (reads[k] + writes[k]) / t if t else 0.0  # bytes per ns = GB/s
    print(f"{k:70s} {launches[k] / steps:6.1f} {t / steps / 1e3:10.1f} {100 * t / total:5.1f}% {t / launches[k] / 1e3:8.2f} {gbs:7.0f}")
