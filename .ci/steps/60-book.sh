#!/usr/bin/env bash
# The book (book/): builds it with a pinned mdBook and fails on any warning or error in the
# build output (a missing include file, a broken SUMMARY entry, a bad book.toml), then runs
# `cargo test -p book-examples`: the chapters' Rust examples as doc tests, the worked
# examples (book/book-examples/*.rs), and the check of every relative link, image, heading
# anchor and include anchor of book/src (mdBook says nothing about a missing include anchor).
#
# Run from anywhere: bash .ci/steps/60-book.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

source .ci/mdbook.sh

echo "== mdbook build book"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
mdbook build book >"$log" 2>&1 || status=$?
cat "$log"
if [ "$status" -ne 0 ]; then
    echo "FAILED: mdbook build exited with $status" >&2
    exit 1
fi
# mdBook reports a missing include as ERROR and still exits 0; any WARN/ERROR line fails.
if grep -E '^\s*(\S+\s+)?(WARN|ERROR)\b' "$log" >/dev/null; then
    echo "FAILED: mdbook build printed warnings or errors (above)" >&2
    exit 1
fi
for page in index.html print.html page-sources.html; do
    [ -s "book/book/$page" ] || { echo "FAILED: book/book/$page was not written" >&2; exit 1; }
done

echo "== cargo test -p book-examples (chapter examples, worked examples, links and includes)"
cargo test -p book-examples
