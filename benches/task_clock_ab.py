#!/usr/bin/env python3
"""A/B of CPU time per replacement of the free-list churn, for builds compared side by side.

    benches/task_clock_ab.py ROUNDS STEPS LABEL=BINARY:STRATEGY ...

Each BINARY is a copy of `target/release/examples/freelist_churn` (keep one per build);
STRATEGY is its first argument (segregated-fit, talc, mimalloc, ...). For each LABEL the
fill alone is measured five times (`perf stat -e task-clock BINARY STRATEGY 0`, least
kept); then ROUNDS rounds run every LABEL once with STEPS replacements, in the given order
and reversed every other round. CPU ns per replacement = (task-clock - least fill) / STEPS.
Printed per LABEL: least, median, the median of the per-round ratios to the first LABEL and
to the anchors `talc` and `mimalloc` (each one that is a LABEL). Ratios of runs moments
apart resist the load of the shared machine better than either figure alone; the same
binary under two labels shows the resolution (about 3% with 30 rounds of 2,000,000).
"""
import statistics
import subprocess
import sys


def task_clock_ms(binary, strategy, steps):
    r = subprocess.run(["perf", "stat", "-x,", "-e", "task-clock", binary, strategy, str(steps)],
                       capture_output=True, text=True, check=True)
    for line in r.stderr.splitlines():
        if "task-clock" in line:
            return float(line.split(",")[0])
    raise RuntimeError("no task-clock in perf's output: " + r.stderr)


def main():
    rounds, steps = int(sys.argv[1]), int(sys.argv[2])
    specs = [(lbl, *rest.split(":", 1)) for lbl, rest in (a.split("=", 1) for a in sys.argv[3:])]
    fill = {lbl: min(task_clock_ms(b, s, 0) for _ in range(5)) for lbl, b, s in specs}
    ns = {lbl: [] for lbl, _, _ in specs}
    for r in range(rounds):
        for lbl, b, s in specs if r % 2 == 0 else specs[::-1]:
            ns[lbl].append((task_clock_ms(b, s, steps) - fill[lbl]) * 1e6 / steps)
    first = specs[0][0]
    for lbl, _, _ in specs:
        v = ns[lbl]
        line = f"{lbl:12s} least {min(v):6.1f} median {statistics.median(v):6.1f} ns"
        line += f"  /{first} median {statistics.median([a / b for a, b in zip(v, ns[first])]):.3f}"
        for anchor in ("talc", "mimalloc"):
            if anchor in ns:
                ratio = statistics.median([a / b for a, b in zip(v, ns[anchor])])
                line += f"  /{anchor} median {ratio:.3f}"
        print(line)


if __name__ == "__main__":
    main()
