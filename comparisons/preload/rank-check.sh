#!/usr/bin/env bash
# Does a replay rank allocators as the program does? (issue 20, last target)
#
# For each program: (a) run it REPS times under each allocator that can be preloaded (the
# five stratalloc strategies through libstratalloc_preload.so, Debian's mimalloc when it is
# installed, glibc without a preload), the allocators rotated each rep, and take the median
# wall time and the median user+sys CPU time (the program and every process it starts);
# (b) record it once (STRATALLOC_TRACE, the library's default strategy) and replay its
# trace (`comparisons replay TRACE --reps REPS --touch TOUCH`) two ways in one rotation:
#   replay      the runner bins' own allocators (`--allocators <the same ones>`: glibc is
#               `system`, mimalloc the Rust crate's static build, the strategies the
#               runners' global allocators);
#   replay-abi  the builds the program ran: the `system` runner (malloc through the C ABI)
#               with no preload (glibc), under Debian's libmimalloc.so.2, and under the
#               preload library with STRATALLOC_STRATEGY set (`--preload preload:NAME=...`);
#               glibc is the same run in both;
#   replay-abi-serial  with -S (or -O serial), also the program's builds replaying every
#               call on one thread in the recorded global order (`--order serial`, a
#               rotation of its own): the threads take turns as Python's do under its GIL,
#               but cross-thread frees become local ones;
#   replay-abi-recorded  with -O recorded, also the program's builds replaying with the
#               recorded threads, every call waiting for its turn in the recorded global
#               order (`--order recorded`, a rotation of its own): the program's order on
#               the program's threads, cross-thread frees kept, at the cost of a hand-off
#               between threads at every change of thread;
# (c) print the rankings side by side, by median and by per-rep ratio (each time over the
# median of its rep, which takes out the machine's drift between reps), Spearman's rank
# correlation of each replay's order against each of the program's, the pairs of
# allocators where one was faster in every rep in both and whether those agree, and the
# robust comparison: the pairs clearly apart in both (the difference of their median
# per-rep ratios larger than either's interquartile range of per-rep ratios; a pair apart
# on one side only is a tie, not a disagreement), and whether those agree. Use REPS >= 5
# (the quartiles need them). A last table sums it up for every program.
#
#   comparisons/preload/rank-check.sh [-n REPS] [-k TRACES] [-t TOUCH] [-S] [-O ORDER]... [-o DIR | -R DIR] [PROGRAM...]
#
#   -n REPS     runs of the program per allocator, and replays per allocator (default 5)
#   -k TRACES   a program that starts others writes one trace per process: replay at most
#               the TRACES largest (default 8), and add their replay times per rep (the
#               report says what share of the trace bytes that covers)
#   -t TOUCH    the replay's --touch: whole (default: every block written when allocated and
#               read before it is freed, as the program does) or ends (the stamps only)
#   -S          also replay-abi-serial (see above); the same as -O serial
#   -O ORDER    also replay-abi-ORDER, ORDER recorded or serial (see above); repeatable
#   -o DIR      keep the raw data there (runs.tsv, the traces' replay.json); default: a
#               temporary directory, removed at exit
#   -R DIR      measure nothing: print the report again from the data -o DIR kept (same
#               -n and PROGRAMs as that run)
#   PROGRAM     python  python3 book/src/recording/script.py with PYTHONMALLOC=malloc
#                       (four threads building and round-tripping JSON, the book's example)
#               sqlite  sqlite3 on a fresh database file < tests/programs/query.sql
#               gcc     gcc -O2 compiling and linking tests/programs/hello.c
#               cxx     g++ -O1 -std=c++17 -pthread -c tests/programs/containers.cpp
#               git     tests/programs/git_workload.sh (about 400 git processes)
#               default: python sqlite gcc git
#
# Each program is run directly, without `sh -c` (sqlite's input is a redirection), so that
# the first trace is the program's own. Needs python3 (also for the timing and the
# statistics: it is never preloaded itself), sqlite3, gcc, g++, git, and the release
# builds: cargo build --release -p stratalloc-preload -p comparisons
# ($CARGO_TARGET_DIR/release, or target/release of the repository).
# Exit status: 0 when every run and replay completed (whatever the rankings), 1 when one
# failed, 2 for bad usage or missing builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=programs.sh
. "$here/programs.sh"
mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2

usage() {
    sed -n '/^#   comparisons/,/^#               default/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
reps=5 max_traces=8 keep= report_only= touch=whole orders=()
while getopts n:k:t:SO:o:R:h opt; do
    case $opt in
    n) reps=$OPTARG ;;
    k) max_traces=$OPTARG ;;
    t) touch=$OPTARG ;;
    S) orders+=(serial) ;;
    O) [[ $OPTARG =~ ^(recorded|serial)$ ]] || usage && orders+=("$OPTARG") ;;
    o) keep=$OPTARG ;;
    R) keep=$OPTARG report_only=1 ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $reps =~ ^[1-9][0-9]*$ && $max_traces =~ ^[1-9][0-9]*$ && $touch =~ ^(whole|ends)$ ]] || usage
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(python sqlite gcc git)
for p in "${names[@]}"; do
    case $p in python | sqlite | gcc | cxx | git) ;; *) echo "rank-check.sh: unknown program '$p'" >&2 && usage ;; esac
done
need_builds rank-check.sh
for tool in python3 sqlite3 gcc g++ git; do
    command -v "$tool" >/dev/null || { echo "rank-check.sh: $tool not found" >&2 && exit 2; }
done

allocators=(first-fit next-fit best-fit segregated-fit tiered)
[ -e "$mimalloc" ] && allocators+=(mimalloc)
allocators+=(glibc)
replay_names=$(printf '%s\n' "${allocators[@]}" | sed 's/^glibc$/system/' | paste -sd,)
# The same allocators as the program runs them: preload:NAME rows (glibc is `system`).
preloads=()
for a in "${allocators[@]}"; do
    case $a in
    glibc) ;;
    mimalloc) preloads+=(--preload "preload:mimalloc=$mimalloc") ;;
    *) preloads+=(--preload "preload:$a=$lib,STRATALLOC_STRATEGY=$a") ;;
    esac
done

if [ -n "$keep" ]; then
    mkdir -p "$keep"
    work=$(cd "$keep" && pwd)
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
python=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
runs=$work/runs.tsv
failed=0
if [ -z "$report_only" ]; then
cp "$programs/hello.c" "$work/hello.c"
: >"$runs"

# One timed run: python3 starts the program (with the preload and variables in its
# environment only), waits for it with wait4 and prints "wall user sys status"; the CPU
# times include every process the program started and waited for.
cat >"$work/timed.py" <<'EOF'
import os, subprocess, sys, time
args = sys.argv[1:]
env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("STRATALLOC_")}
stdin = subprocess.DEVNULL
while args[0] != "--":
    opt, val = args[0], args[1]
    args = args[2:]
    if opt == "--set":
        k, v = val.split("=", 1)
        env[k] = v
    elif opt == "--stdin":
        stdin = open(val, "rb")
err = open(os.environ["RANK_ERR"], "wb")
t0 = time.perf_counter()
p = subprocess.Popen(args[1:], stdin=stdin, stdout=subprocess.DEVNULL, stderr=err, env=env)
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
p.returncode = os.waitstatus_to_exitcode(status)
print(f"{wall:.6f} {ru.ru_utime:.6f} {ru.ru_stime:.6f} {p.returncode}")
EOF

# The program NAME's command, set up in DIR: its arguments after "--", with its options.
cmd_of() { # cmd_of NAME DIR
    case $1 in
    python) echo --set PYTHONMALLOC=malloc -- "$python" "$repo/book/src/recording/script.py" ;;
    sqlite) echo --stdin "$programs/query.sql" -- sqlite3 "$2/t.db" ;;
    gcc) echo -- gcc -O2 -o "$2/hello" "$work/hello.c" ;;
    cxx) echo -- g++ -O1 -std=c++17 -pthread -c -o "$2/containers.o" "$programs/containers.cpp" ;;
    git) echo -- bash "$programs/git_workload.sh" "$2" ;;
    esac
}

run_one() { # run_one NAME ALLOCATOR [TRACE] -> "wall user sys status"
    local dir pre=()
    dir=$(mktemp -d "$work/run.XXXXXX")
    case $2 in
    glibc) ;;
    mimalloc) pre=(--set "LD_PRELOAD=$mimalloc") ;;
    *) pre=(--set "LD_PRELOAD=$lib" --set "STRATALLOC_STRATEGY=$2") ;;
    esac
    [ -z "${3:-}" ] || pre=(--set "LD_PRELOAD=$lib" --set "STRATALLOC_TRACE=$3")
    # shellcheck disable=SC2046 # cmd_of's words are paths without spaces
    (cd "$dir" && RANK_ERR=$work/err python3 "$work/timed.py" "${pre[@]}" $(cmd_of "$1" "$dir"))
    rm -rf "$dir"
}

for p in "${names[@]}"; do
    echo "== $p: $reps runs under each of ${allocators[*]}, rotated each rep" >&2
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    n=${#allocators[@]}
    for ((r = 0; r < reps; r++)); do
        for ((k = 0; k < n; k++)); do
            a=${allocators[$(((k + r) % n))]}
            read -r wall user sys status < <(run_one "$p" "$a")
            if [ "$status" != 0 ]; then
                echo "FAILED: $p under $a, exit status $status: $(tail -c 300 "$work/err")" >&2
                failed=1
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$a" "$r" "$wall" "$user" "$sys" "$status" >>"$runs"
        done
    done

    echo "== $p: recording once, then replaying" >&2
    tdir=$work/trace-$p
    rm -rf "$tdir" && mkdir -p "$tdir"
    read -r wall _ _ status < <(run_one "$p" tiered "$tdir/t.trace")
    [ "$status" = 0 ] || { echo "FAILED: recording $p, exit status $status" >&2 && failed=1 && continue; }
    total=$(cat "$tdir"/t.trace* | wc -c)
    files=$(find "$tdir" -maxdepth 1 -name 't.trace*' -type f | wc -l)
    i=0
    # The largest traces first (for git and gcc: the processes that did most).
    while read -r f && [ "$i" -lt "$max_traces" ]; do
        out=$tdir/replay-$i
        extra=()
        if ! "$driver" replay "$f" --profile >/dev/null 2>"$work/err"; then
            if grep -q -- '--partial' "$work/err"; then
                extra=(--partial) # left with _exit: its last chunks are missing
            else
                continue # a header only (a process that allocated nothing)
            fi
        fi
        if "$driver" replay "$f" --no-build --reps "$reps" --touch "$touch" --allocators "$replay_names" \
            "${preloads[@]}" --out "$out" "${extra[@]}" >"$out.txt" 2>"$work/err"; then
            printf '%s\t%s\t%s\n' "$(wc -c <"$f")" "${extra[*]:-complete}" "$out/replay.json" >>"$tdir/replayed.tsv"
            i=$((i + 1))
            for order in "${orders[@]}"; do
                if "$driver" replay "$f" --no-build --reps "$reps" --touch "$touch" --allocators system \
                    "${preloads[@]}" --order "$order" --out "$out-$order" "${extra[@]}" >"$out-$order.txt" 2>"$work/err"; then
                    printf '%s\t%s\t%s\n' 0 "$order" "$out-$order/replay.json" >>"$tdir/replayed.tsv"
                else
                    echo "FAILED: $order replay of $f: $(tail -c 300 "$work/err")" >&2
                    failed=1
                fi
            done
        else
            echo "FAILED: replay of $f: $(tail -c 300 "$work/err")" >&2
            failed=1
        fi
    done < <(ls -S "$tdir"/t.trace*)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$total" "$files" "$(cmd_of "$p" DIR)" "$load_before" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "$touch" >"$tdir/summary.tsv"
done
fi


RANK_REPO=$repo python3 - "$work" "$reps" "${names[@]}" <<'EOF'
import json, os, statistics, sys

work, reps, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = {}
for line in open(os.path.join(work, "runs.tsv")):
    p, a, r, wall, user, sys_, status = line.rstrip("\n").split("\t")
    d = runs.setdefault(p, {}).setdefault(a, {"wall": [], "cpu": [], "bad": 0})
    d["wall"].append(float(wall))
    d["cpu"].append(float(user) + float(sys_))
    d["bad"] += status != "0"

def ranks(vals):  # average ranks (1 = fastest), ties share their mean rank
    order = sorted(range(len(vals)), key=lambda i: vals[i])
    out = [0.0] * len(vals)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and vals[order[j + 1]] == vals[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out

def spearman(x, y):
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.mean(rx), statistics.mean(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return num / den if den else float("nan")

def spread(v):  # (max - min) / median, percent
    return 100 * (max(v) - min(v)) / statistics.median(v)

def apart(u, v):  # -1: u faster in every rep, 1: v faster in every rep, 0: neither
    if all(a < b for a, b in zip(u, v)):
        return -1
    if all(b < a for a, b in zip(u, v)):
        return 1
    return 0

def ratios(d):  # each rep's time over the median of that rep's times
    n = len(next(iter(d.values())))
    mids = [statistics.median(v[r] for v in d.values()) for r in range(n)]
    return {a: [v[r] / mids[r] for r in range(n)] for a, v in d.items()}

def iqr(v):  # interquartile range (statistics.quantiles, exclusive method)
    if len(v) < 2:
        return 0.0
    q = statistics.quantiles(v, n=4)
    return q[2] - q[0]

def clearly(ru, rv):  # -1/1: the medians of the per-rep ratios differ by more than either IQR
    mu, mv = statistics.median(ru), statistics.median(rv)
    if abs(mu - mv) <= max(iqr(ru), iqr(rv)):
        return 0
    return -1 if mu < mv else 1

summary = []
for p in names:
    tdir = os.path.join(work, "trace-" + p)
    if p not in runs or not os.path.exists(os.path.join(tdir, "replayed.tsv")):
        print(f"\n### {p}: no complete data (see the errors above)")
        continue
    fields = open(os.path.join(tdir, "summary.tsv")).read().rstrip("\n").split("\t")
    total, files, cmd = fields[:3]
    load = f"load average {fields[3]} before, {fields[4]} after" if len(fields) >= 6 else ""
    touch = fields[5] if len(fields) >= 6 else "ends"
    variants = {"replay": {}, "replay-abi": {}, "replay-abi-serial": {}, "replay-abi-recorded": {}}
    orders = ("serial", "recorded")
    covered, notes, replayed = 0, [], 0
    for line in open(os.path.join(tdir, "replayed.tsv")):
        size, how, path = line.rstrip("\n").split("\t")
        if how not in orders:
            covered += int(size)
            replayed += 1
        if how not in ("complete",) + orders:
            notes.append(how)
        for row in json.load(open(path))["allocators"]:
            name = row["name"]
            if how in orders:
                targets = [("replay-abi-" + how, "glibc" if name == "system" else name[len("preload:"):])]
            elif name == "system":  # glibc: the same run for both
                targets = [("replay", "glibc"), ("replay-abi", "glibc")]
            elif name.startswith("preload:"):
                targets = [("replay-abi", name[len("preload:"):])]
            else:
                targets = [("replay", name)]
            for var, a in targets:
                cur = variants[var].setdefault(a, [0.0] * reps)
                if row["failure"] or len(row["replay_s"]) != reps:
                    variants[var][a] = None
                elif cur is not None:
                    variants[var][a] = [x + y for x, y in zip(cur, row["replay_s"])]
    variants = {k: v for k, v in variants.items() if len(v) > 1}
    allocs = [a for a in runs[p] if not runs[p][a]["bad"] and all(v.get(a) for v in variants.values())]
    dropped = sorted(set(runs[p]) - set(allocs))
    nrep = len(runs[p][allocs[0]]["wall"])
    words = cmd.split(" ")
    shown, i = [], 0
    while words[i] != "--":
        shown.append(words[i + 1] if words[i] == "--set" else "")
        i += 2
    shown = " ".join(w for w in shown if w) + (" " if any(shown) else "") + " ".join(words[i + 1:])
    if "--stdin" in words:
        shown += " < " + words[words.index("--stdin") + 1]
    shown = shown.replace(work + "/", "").replace(os.environ["RANK_REPO"] + "/", "")
    print(f"\n### {p}\n")
    print(f"`{shown}` (DIR a fresh directory each run); {nrep} runs per allocator. "
          f"Replay (--touch {touch}): {replayed} of its {files} trace file(s), "
          f"{100 * covered / int(total):.0f}% of {int(total)} trace bytes"
          + (f" ({len(notes)} replayed with --partial)" if notes else "")
          + f", {reps} replays per allocator" + (", times added per rep" if int(files) > 1 else "")
          + (f"; {load}" if load else "") + ".\n")
    if dropped:
        print(f"left out (a run or replay failed): {', '.join(dropped)}\n")
    cols = {
        "program wall": {a: runs[p][a]["wall"] for a in allocs},
        "program CPU": {a: runs[p][a]["cpu"] for a in allocs},
    }
    for var, d in variants.items():
        cols[var] = {a: d[a] for a in allocs}
    reps_of = {c: ratios(d) for c, d in cols.items()}
    med = {c: {a: statistics.median(v) for a, v in d.items()} for c, d in cols.items()}
    rel = {c: {a: statistics.median(v) for a, v in d.items()} for c, d in reps_of.items()}
    rk = {c: dict(zip(allocs, ranks([med[c][a] for a in allocs]))) for c in cols}
    rkr = {c: dict(zip(allocs, ranks([rel[c][a] for a in allocs]))) for c in cols}
    print("| allocator | " + " | ".join(f"{c} s (spread)" for c in cols)
          + " | rank by median: " + ", ".join(cols) + " | rank by per-rep ratio: " + ", ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols) + "---|---|")
    first = "replay-abi" if "replay-abi" in cols else "replay"
    for a in sorted(allocs, key=lambda a: (rel[first][a], med[first][a])):
        cells = [f"{med[c][a]:.3f} ({spread(cols[c][a]):.0f}%)" for c in cols]
        cells.append(", ".join(f"{rk[c][a]:g}" for c in cols))
        cells.append(", ".join(f"{rkr[c][a]:g}" for c in cols))
        print(f"| {a} | " + " | ".join(cells) + " |")
    print("\n(spread: (max - min) / median of the reps; per-rep ratio: a run's time over the median of the "
          "allocators' times in the same rep, median over the reps, which takes out the machine's drift "
          "between reps)\n")
    for c in cols:
        print(f"- {c} order, by per-rep ratio: " + " < ".join(sorted(allocs, key=lambda a: rel[c][a])))
    wall = statistics.median(med["program wall"].values())
    noise = statistics.median(spread(cols["program wall"][a]) for a in allocs)
    noise_cpu = statistics.median(spread(cols["program CPU"][a]) for a in allocs)
    for var in variants:
        effect = max(med[var].values()) - min(med[var].values())
        print(f"- scale ({var}): its fastest and slowest allocators differ by {effect:.3f} s, "
              f"{100 * effect / wall:.1f}% of the program's median wall time; the program's reps spread by "
              f"{noise:.0f}% (wall) and {noise_cpu:.0f}% (CPU), median over the allocators")
    pairs = len(allocs) * (len(allocs) - 1) // 2
    for var in variants:
        for c in ("program wall", "program CPU"):
            sp = spearman([med[c][a] for a in allocs], [med[var][a] for a in allocs])
            spr = spearman([rel[c][a] for a in allocs], [rel[var][a] for a in allocs])
            same = sorted(allocs, key=lambda a: med[c][a]) == sorted(allocs, key=lambda a: med[var][a])
            samer = sorted(allocs, key=lambda a: rel[c][a]) == sorted(allocs, key=lambda a: rel[var][a])
            every = {"agree": [], "disagree": []}
            robust = {"agree": [], "disagree": []}
            sep = {"every": [0, 0], "robust": [0, 0]}
            for i, u in enumerate(allocs):
                for v in allocs[i + 1:]:
                    s1, s2 = apart(cols[c][u], cols[c][v]), apart(cols[var][u], cols[var][v])
                    r1, r2 = clearly(reps_of[c][u], reps_of[c][v]), clearly(reps_of[var][u], reps_of[var][v])
                    sep["every"][0] += s1 != 0
                    sep["every"][1] += s2 != 0
                    sep["robust"][0] += r1 != 0
                    sep["robust"][1] += r2 != 0
                    if s1 and s2:
                        every["agree" if s1 == s2 else "disagree"].append(f"{u} {'<' if s1 < 0 else '>'} {v}")
                    if r1 and r2:
                        robust["agree" if r1 == r2 else "disagree"].append(f"{u} {'<' if r1 < 0 else '>'} {v}")

            def said(kind, d):
                n = len(d["agree"]) + len(d["disagree"])
                return (f"{sep[kind][0]} in the program, {sep[kind][1]} in the replay, {n} in both, of which "
                        f"{len(d['agree'])} agree"
                        + (f", {len(d['disagree'])} disagree (program: {'; '.join(d['disagree'])})"
                           if d["disagree"] else ""))
            print(f"- {var} against {c}: Spearman {sp:+.2f} by median (same order: {'yes' if same else 'no'}), "
                  f"{spr:+.2f} by per-rep ratio (same order: {'yes' if samer else 'no'}); of the {pairs} pairs, "
                  f"faster in every rep: {said('every', every)}; clearly apart (robust): {said('robust', robust)}")
            if c == "program CPU":
                summary.append((p, var, spr, samer, sep["robust"][0], sep["robust"][1],
                                len(robust["agree"]), len(robust["disagree"]), noise_cpu,
                                100 * (max(med[var].values()) - min(med[var].values())) / wall))

if summary:
    print("\n### Summary (replay against the program's CPU time, by per-rep ratio)\n")
    print("| program | replay | same order | Spearman | pairs clearly apart: program, replay | "
          "of those apart in both: agree / disagree | program CPU spread of reps | replay: slowest minus "
          "fastest, share of program wall |")
    print("|---|---|---|---:|---|---|---:|---:|")
    for p, var, spr, samer, a1, a2, ag, dis, noise, eff in summary:
        print(f"| {p} | {var} | {'yes' if samer else 'no'} | {spr:+.2f} | {a1}, {a2} | {ag} / {dis} | "
              f"{noise:.0f}% | {eff:.1f}% |")
EOF
exit $failed
