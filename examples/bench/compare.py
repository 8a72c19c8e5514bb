#!/usr/bin/env python3
"""Quick allocator comparison: tiered vs mimalloc vs system on the workloads of
examples/bench/workloads.rs, each workload of each allocator in a fresh process.

Run from the repository root:

    python3 examples/bench/compare.py [--rounds N] [workload ...]

Builds the three `bench_*` examples in release mode, then runs every (workload, allocator)
pair `--rounds` times (default 5), alternating the allocators (the order rotates each round,
so that a noisy moment of a shared machine does not always hit the same one). Prints, per
workload and allocator: the least time of the rounds, its ratio to mimalloc's least time,
the peak RSS (the highest of the rounds; the kernel's VmHWM of that process) and its ratio
to mimalloc's. Ratios come from the same run; absolute times from a shared machine are noisy.
"""

import argparse
import subprocess
import sys

ALLOCATORS = ["tiered", "mimalloc", "system"]
WORKLOADS = ["churn", "larson2", "prodcons64", "serde_json"]


def run_one(alloc, workload):
    out = subprocess.run(
        [f"target/release/examples/bench_{alloc}", workload], check=True, capture_output=True, text=True
    ).stdout.split()
    # <allocator> <workload> <seconds> s <peak RSS> MiB
    assert out[0] == alloc and out[1] == workload, out
    return float(out[2]), float(out[4])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("workloads", nargs="*", default=WORKLOADS)
    args = ap.parse_args()
    examples = sum((["--example", f"bench_{a}"] for a in ALLOCATORS), [])
    subprocess.run(["cargo", "build", "--release", "--quiet", *examples], check=True)
    times = {}
    rss = {}
    for r in range(args.rounds):
        order = ALLOCATORS[r % 3 :] + ALLOCATORS[: r % 3]
        for w in args.workloads:
            for a in order:
                t, m = run_one(a, w)
                times.setdefault((w, a), []).append(t)
                rss.setdefault((w, a), []).append(m)
                print(f"round {r + 1}: {a} {w} {t:.3f} s {m:.1f} MiB", file=sys.stderr)
    print(f"# least time of {args.rounds} alternating rounds; peak RSS: highest of the rounds")
    print(f"{'workload':<12} {'allocator':<10} {'time s':>8} {'x mimalloc':>10} {'peak RSS MiB':>13} {'x mimalloc':>10}")
    for w in args.workloads:
        tm = min(times[(w, "mimalloc")])
        mm = max(rss[(w, "mimalloc")])
        for a in ALLOCATORS:
            t, m = min(times[(w, a)]), max(rss[(w, a)])
            print(f"{w:<12} {a:<10} {t:>8.3f} {t / tm:>10.2f} {m:>13.1f} {m / mm:>10.2f}")


if __name__ == "__main__":
    main()
