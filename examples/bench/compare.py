#!/usr/bin/env python3
"""Quick allocator comparison: tiered vs mimalloc vs system on the workloads of
examples/bench/workloads.rs, each workload of each allocator in a fresh process.

Run from the repository root:

    python3 examples/bench/compare.py [--rounds N] [workload ...]

Builds the three `bench_*` examples in release mode, then runs every (workload, allocator)
pair `--rounds` times (default 5), alternating the allocators (the order rotates each round,
so that a noisy moment of a shared machine does not always hit the same one). Prints, per
workload and allocator: the least CPU time (user + system of all threads, over the timed
part) and the least wall time of the rounds, each with its ratio to mimalloc's, the
median over the rounds of the CPU-time ratio to mimalloc within the round (both measured
moments apart, so a noisy minute hits both), and the peak RSS (the highest of the rounds;
the kernel's VmHWM of that process) with its ratio to mimalloc's. Ratios come from the same run; absolute times from a shared machine are noisy,
CPU time less so than wall time.
"""

import argparse
import statistics
import subprocess
import sys

ALLOCATORS = ["tiered", "mimalloc", "system"]
WORKLOADS = ["churn", "larson2", "prodcons64", "serde_json"]


def run_one(alloc, workload):
    out = subprocess.run(
        [f"target/release/examples/bench_{alloc}", workload], check=True, capture_output=True, text=True
    ).stdout.split()
    # <allocator> <workload> <wall seconds> s <CPU seconds> s-cpu <peak RSS> MiB
    assert out[0] == alloc and out[1] == workload and out[5] == "s-cpu", out
    return float(out[2]), float(out[4]), float(out[6])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("workloads", nargs="*", default=WORKLOADS)
    args = ap.parse_args()
    examples = sum((["--example", f"bench_{a}"] for a in ALLOCATORS), [])
    subprocess.run(["cargo", "build", "--release", "--quiet", *examples], check=True)
    res = {}
    for r in range(args.rounds):
        order = ALLOCATORS[r % 3 :] + ALLOCATORS[: r % 3]
        for w in args.workloads:
            for a in order:
                wall, cpu, rss = run_one(a, w)
                res.setdefault((w, a), []).append((wall, cpu, rss))
                print(f"round {r + 1}: {a} {w} {wall:.3f} s {cpu:.3f} s-cpu {rss:.1f} MiB", file=sys.stderr)
    print(
        f"# {args.rounds} alternating rounds: least CPU and wall time, highest peak RSS; x = ratio to mimalloc;"
        " round x = median of the per-round CPU ratios"
    )
    print(
        f"{'workload':<11} {'allocator':<9} {'cpu s':>7} {'x':>5} {'wall s':>7} {'x':>5} {'round x':>7}"
        f" {'peak RSS MiB':>12} {'x':>5}"
    )
    for w in args.workloads:
        m = res[(w, "mimalloc")]
        mw, mc, mr = min(x[0] for x in m), min(x[1] for x in m), max(x[2] for x in m)
        for a in ALLOCATORS:
            v = res[(w, a)]
            wall, cpu, rss = min(x[0] for x in v), min(x[1] for x in v), max(x[2] for x in v)
            per_round = statistics.median(x[1] / y[1] for x, y in zip(v, m))
            print(
                f"{w:<11} {a:<9} {cpu:>7.3f} {cpu / mc:>5.2f} {wall:>7.3f} {wall / mw:>5.2f} {per_round:>7.2f}"
                f" {rss:>12.1f} {rss / mr:>5.2f}"
            )


if __name__ == "__main__":
    main()
