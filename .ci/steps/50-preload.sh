#!/usr/bin/env bash
# The preload library under real programs (issue 6): builds
# target/release/libstratalloc_preload.so and runs comparisons/preload/tests/real_programs.sh,
# which runs python3, sqlite3, git, gcc and the C edge-case test under every strategy and
# compares them with runs without the library. (`cargo test -p stratalloc-preload` runs the
# same script.) Installs the tools it needs if they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v python3 >/dev/null || missing+=(python3)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v git >/dev/null || missing+=(git)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# mimalloc's own preload library: the comparison harness's anchor (optional here).
if [ ! -e /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmimalloc2.0 >/dev/null) ||
        echo "libmimalloc2.0 not installable; the harness runs without its anchor"
fi

cargo build --release -p stratalloc-preload
bash comparisons/preload/tests/real_programs.sh target/release/libstratalloc_preload.so
