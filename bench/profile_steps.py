"""Median time of each of layer 0's ops over the steps that --profile printed, grouped by step kind.

The CUDA backend's --profile prints one line a step on stderr:
  cuda step: T tokens S seqs: host enqueue .. ms, gpu forward F ms, ...; layer 0: norm 3us qkv 7us ...
This reads those lines (a file, or standard input) and prints, for decode steps (T == S) and for
steps with prompts (T > S), grouped by the token count's power of two, the median forward time and
each op's median in microseconds, largest first, with its share of the layer.

  node dist/bench/throughput.js --only "llama-3-8b fp8 batch 1" --profile 2> steps.log
  python3 bench/profile_steps.py steps.log

--by-seqs OP prints instead, for decode-only steps, one line per sequence count: the step's
forward and OP's median (e.g. attn: the decode kernel's staircase over a probe's tail, run once
per --decode-warps value to compare).

  python3 bench/profile_steps.py --by-seqs attn probe.err
"""
import re
import statistics
import sys

LINE = re.compile(r'cuda step: (\d+) tokens (\d+) seqs: .*?gpu forward ([\d.]+) ms.*?; layer 0:(.*)$')
OP = re.compile(r' (\S+) (\d+)us')


def groups(lines):
    out = {}
    for line in lines:
        m = LINE.search(line)
        if not m:
            continue
        tokens, seqs, forward, ops = int(m[1]), int(m[2]), float(m[3]), m[4]
        kind = 'decode' if tokens == seqs else 'prompts'
        bucket = 1 << (tokens - 1).bit_length()
        g = out.setdefault((kind, bucket), {'forward': [], 'ops': {}})
        g['forward'].append(forward)
        seen = {}
        for name, us in OP.findall(ops):
            seen[name] = seen.get(name, 0) + 1  # a layer runs two norms: norm, norm 2
            key = name if seen[name] == 1 else f'{name} {seen[name]}'
            g['ops'].setdefault(key, []).append(int(us))
    return out


def by_seqs(lines, op):
    rows = {}
    for line in lines:
        m = LINE.search(line)
        if not m or int(m[1]) != int(m[2]):
            continue
        times = [int(us) for name, us in OP.findall(m[4]) if name == op]
        if times:
            forward, us = rows.setdefault(int(m[2]), ([], []))
            forward.append(float(m[3]))
            us.append(times[0])
    print(f'sequences  steps  forward ms  {op} us')
    for seqs, (forward, us) in sorted(rows.items()):
        print(f'{seqs:9d}  {len(forward):5d}  {statistics.median(forward):10.2f}  {statistics.median(us):6.0f}')


def main():
    args = sys.argv[1:]
    if args[:1] == ['--by-seqs']:
        op, rest = args[1], args[2:]
        by_seqs(open(rest[0]) if rest else sys.stdin, op)
        return
    lines = open(args[0]) if args else sys.stdin
    for (kind, bucket), g in sorted(groups(lines).items()):
        medians = {name: statistics.median(v) for name, v in g['ops'].items()}
        layer = sum(medians.values())
        print(f'{kind} steps of up to {bucket} tokens: {len(g["forward"])} steps, forward median {statistics.median(g["forward"]):.2f} ms, layer 0 {layer:.0f} us')
        for name, us in sorted(medians.items(), key=lambda kv: -kv[1]):
            print(f'  {name:16s} {us:8.0f} us  {100 * us / layer if layer else 0:5.1f}%')


if __name__ == '__main__':
    main()
