#!/usr/bin/env bash
# Real programs under every strategy of the preload library give the same output as without it.
#
#   comparisons/preload/tests/real_programs.sh LIB [STRATEGY...]
#
# LIB is libstratalloc_preload.so. STRATEGY defaults to all five names, plus the compositions
# tcache(arenas(X)) of the four free lists under edge_cases, bad_frees, memory_return, python and cxx; a name
# the library does not have built in fails (the library itself says so on stderr and falls
# back).
# For each strategy it runs, with LD_PRELOAD=LIB STRATALLOC_STRATEGY=<name>:
#   edge_cases   tests/edge_cases.c (compiled here), every C-API edge case from many threads
#   bad_frees    tests/bad_frees.c (compiled here): double, interior, stack, static, mmap and
#                +1 GiB frees and bad reallocs, each in a child, in every STRATALLOC_BAD_FREE
#                mode (report, abort, ignore); the heap stays sound after each; usable sizes
#                exact, realloc keeps contents
#   fork_stress  tests/fork_stress.c (compiled here): 1,000 forks while three threads keep
#                creating and joining short-lived allocating threads; every child must exit
#                within 10 s (a hung child is killed and fails the run)
#   memory_return tests/memory_return.c (compiled here): 512 MiB of small blocks freed, then
#                1,000,000 small allocations: at most 64 MiB resident (also with 256 MiB
#                freed by another thread); 768 MiB of large blocks
#                freed, then a little work: under 64 MiB resident; blocks aligned up to 1 GiB
#                freed: the address space comes back (issue 16, items 4 and 5; no malloc_trim)
#   python       tests/programs/threaded.py, a threaded allocation-heavy workload
#   sqlite       sqlite3 running tests/programs/query.sql on a database file
#   git          tests/programs/git_workload.sh: init, 41 commits, merge, gc, fsck, log, ...
#   gcc          gcc compiling tests/programs/hello.c (object file compared byte for byte),
#                linking it, and the program's output
#   cxx          tests/programs/containers.cpp (compiled here with g++): four threads of
#                standard containers, over-aligned new, big arrays and exceptions
#   perl         perl running tests/programs/hashes.pl: growing hashes, spliced arrays
# and compares stdout and the exit status with a run without the library. Each run also sets
# STRATALLOC_STATS=1 and must print a statistics line naming the strategy (proof that the
# library, not glibc, served it). Plus: the default strategy, and one clear stderr line for an
# unknown name. Ends with "N passed, N failed"; exit status 1 if anything failed.
#
# Needs: gcc, g++, python3, sqlite3, git, perl (tests/install-tools.sh installs the missing
# ones; .ci/steps/50-preload.sh runs it).
set -uo pipefail

lib=$(realpath "${1:?usage: real_programs.sh LIB [STRATEGY...]}")
shift
strategies=("$@")
compose=0
if [ ${#strategies[@]} -eq 0 ]; then
    strategies=(first-fit next-fit best-fit segregated-fit tiered)
    compose=1
fi
# Under the compositions tcache(arenas(X)) of the four free lists (default run only): the
# C tests of the C API and bad frees, memory given back (a thread cache must not pin the
# free list's chunks: issue 19), and the threaded programs.
composition_programs=(edge_cases bad_frees memory_return python cxx)
here=$(cd "$(dirname "$0")" && pwd)
programs=$here/programs
work=$(mktemp -d "${TMPDIR:-/tmp}/stratalloc-preload.XXXXXX")
trap 'rm -rf "$work"' EXIT
limit=${PRELOAD_TEST_TIMEOUT:-300} # seconds per program run: a deadlock fails, not hangs

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }

for tool in gcc g++ python3 sqlite3 git perl; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool"; exit 2; }
done
# The real interpreter, not a version-manager shim script.
python=$(python3 -c 'import sys; print(sys.executable)')

# --- the programs: each writes its stdout to $out; $1 is a fresh scratch directory --------
prog_edge_cases() { EXPECT_STRATEGY=${expect_strategy:-} "$work/edge_cases"; }
prog_bad_frees() { EXPECT_STRATEGY=${expect_strategy:-} "$work/bad_frees"; }
prog_fork_stress() { "$work/fork_stress" 1000; }
prog_memory_return() { "$work/memory_return"; }
prog_python() { "$python" "$programs/threaded.py"; }
prog_sqlite() { sqlite3 "$1/test.db" <"$programs/query.sql"; }
prog_git() { bash "$programs/git_workload.sh" "$1"; }
prog_gcc() {
    cp "$programs/hello.c" "$1/hello.c" && cd "$1" &&
        gcc -O2 -c hello.c -o hello.o && gcc hello.o -o hello && sha256sum hello.o && ./hello
}
prog_cxx() { "$work/containers"; }
prog_perl() { perl "$programs/hashes.pl"; }
program_names=(edge_cases bad_frees fork_stress memory_return python sqlite git gcc cxx perl)

# run NAME PRELOAD STRATEGY -> stdout in $work/out, stderr in $work/err, status in $status
run() {
    local name=$1 preload=$2 strategy=$3 scratch
    scratch=$(mktemp -d "$work/run.XXXXXX")
    (
        cd "$scratch" || exit 99
        if [ -n "$preload" ]; then
            export LD_PRELOAD=$preload STRATALLOC_STATS=1 STRATALLOC_STRATEGY=$strategy
        fi
        export expect_strategy=$strategy
        # Functions cannot be run by `timeout`; run a subshell under it instead.
        export -f "prog_$name"
        export work programs python
        timeout "$limit" bash -c "prog_$name \"\$0\"" "$scratch"
    ) >"$work/out" 2>"$work/err"
    status=$?
    rm -rf "$scratch"
}

# --- set-up -------------------------------------------------------------------------------
cflags=(-O1 -fno-builtin -Wall -Wno-alloc-size-larger-than -Wno-use-after-free -pthread)
if ! gcc "${cflags[@]}" -o "$work/edge_cases" "$here/edge_cases.c" 2>"$work/cc.err"; then
    cat "$work/cc.err"
    fail "compile edge_cases.c"
fi
if ! gcc "${cflags[@]}" -Wno-free-nonheap-object -o "$work/bad_frees" "$here/bad_frees.c" -ldl 2>"$work/cc.err"; then
    cat "$work/cc.err"
    fail "compile bad_frees.c"
fi
if ! gcc "${cflags[@]}" -o "$work/fork_stress" "$here/fork_stress.c" 2>"$work/cc.err"; then
    cat "$work/cc.err"
    fail "compile fork_stress.c"
fi
if ! gcc "${cflags[@]}" -o "$work/memory_return" "$here/memory_return.c" -ldl 2>"$work/cc.err"; then
    cat "$work/cc.err"
    fail "compile memory_return.c"
fi
if ! g++ -O1 -std=c++17 -pthread -Wall -o "$work/containers" "$programs/containers.cpp" 2>"$work/cc.err"; then
    cat "$work/cc.err"
    fail "compile containers.cpp"
fi

# Reference outputs, without the library.
declare -A ref_out ref_status
for name in "${program_names[@]}"; do
    run "$name" "" ""
    ref_out[$name]=$(cat "$work/out")
    ref_status[$name]=$status
    [ "$status" -eq 0 ] || { tail -5 "$work/err"; fail "reference run of $name exits $status"; }
done

# Which strategies the library has built in: its statistics line names the one it uses.
built_in() {
    LD_PRELOAD=$lib STRATALLOC_STATS=1 STRATALLOC_STRATEGY=$1 "$python" -c pass >/dev/null 2>"$work/probe"
    grep -q "strategy=$1 " "$work/probe"
}

# --- start-up choice ----------------------------------------------------------------------
default=tiered
LD_PRELOAD=$lib STRATALLOC_STATS=1 env -u STRATALLOC_STRATEGY "$python" -c 'print(1)' >/dev/null 2>"$work/err"
if grep -q "strategy=$default " "$work/err"; then pass "default strategy is $default"; else
    cat "$work/err"
    fail "default strategy is $default"
fi
LD_PRELOAD=$lib STRATALLOC_STRATEGY=no-such-fit "$python" -c 'print(1)' >"$work/out" 2>"$work/err"
if [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q 'unknown STRATALLOC_STRATEGY="no-such-fit".*using' "$work/err" &&
    [ "$(cat "$work/out")" = 1 ]; then
    pass "unknown name: one stderr line, default used ($(cat "$work/err"))"
else
    cat "$work/err"
    fail "unknown name: one stderr line, default used"
fi

# --- every strategy x every program -------------------------------------------------------
# check STRATEGY PROGRAM...: each program under the strategy, judged as described above.
check() {
    local strategy=$1 name start took what
    shift
    if ! built_in "$strategy"; then
        fail "$strategy: not built into the library ($(head -1 "$work/probe"))"
        return
    fi
    for name in "$@"; do
        start=$(date +%s)
        run "$name" "$lib" "$strategy"
        took=$(($(date +%s) - start))
        what="$strategy $name (${took}s)"
        if [ "$name" = edge_cases ] || [ "$name" = bad_frees ] || [ "$name" = memory_return ]; then
            # Its own verdict: the checks it counted (the reference run checked the test).
            if [ "$status" -eq 0 ] && grep -q "(stratalloc): [0-9]* passed, 0 failed" "$work/out"; then
                pass "$what: $(cat "$work/out")"
            else
                cat "$work/out"
                tail -20 "$work/err"
                fail "$what: exit status $status"
            fi
        elif [ "$name" = fork_stress ]; then
            # Its own verdict: no hung and no failed child.
            if [ "$status" -eq 0 ] && grep -q "forks, 0 hung, 0 failed" "$work/out" &&
                grep -q "^stratalloc\[[0-9]*\]: strategy=$strategy " "$work/err"; then
                pass "$what: $(cat "$work/out")"
            else
                cat "$work/out"
                tail -20 "$work/err"
                fail "$what: exit status $status"
            fi
        elif [ "$status" -ne "${ref_status[$name]}" ]; then
            tail -20 "$work/err"
            fail "$what: exit status $status, without the library ${ref_status[$name]}"
        elif [ "$(cat "$work/out")" != "${ref_out[$name]}" ]; then
            diff <(printf '%s\n' "${ref_out[$name]}") "$work/out" | head -20
            fail "$what: output differs from the run without the library"
        elif ! grep -q "^stratalloc\[[0-9]*\]: strategy=$strategy " "$work/err"; then
            tail -5 "$work/err"
            fail "$what: no statistics line from the library (was it loaded?)"
        else
            pass "$what"
        fi
    done
}

for strategy in "${strategies[@]}"; do
    check "$strategy" "${program_names[@]}"
done
if [ "$compose" = 1 ]; then
    for inner in first-fit next-fit best-fit segregated-fit; do
        check "tcache(arenas($inner))" "${composition_programs[@]}"
    done
fi

echo "preload: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
