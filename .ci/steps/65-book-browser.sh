#!/usr/bin/env bash
# The book in a real browser: builds it (book/book), opens every chapter in headless Chromium
# at desktop (1440 px) and phone (375 px) width, saves a screenshot of each, and fails on an
# image that does not load, a page wider than the window or an element of its body past the
# window's edge (outside a box that scrolls), a code block wider than the text column at
# desktop width, SVG text under 8 px on the phone's screen, or a step-through figure whose
# "next" button does not change the frame (the checks are .ci/book_browser.py, which drives Chromium over its DevTools pipe
# with Python's standard library only).
#
# Installs Debian's `chromium` with apt-get when it is missing (CI runs as root).
# Screenshots go to $BOOK_SCREENSHOTS (default target/book-screenshots).
#
# Run from anywhere: bash .ci/steps/65-book-browser.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

source .ci/mdbook.sh

browser=""
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        browser=$(command -v "$name")
        break
    fi
done
if [ -z "$browser" ]; then
    echo "== installing chromium (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    browser=$(command -v chromium)
fi
echo "== browser: $("$browser" --version 2>/dev/null || echo "$browser")"

echo "== mdbook build book"
mdbook build book >/dev/null

out="${BOOK_SCREENSHOTS:-target/book-screenshots}"
pages=()
for f in book/book/*.html; do
    case "$(basename "$f")" in
        404.html | print.html | toc.html) ;;
        *) pages+=("$(basename "$f")") ;;
    esac
done
echo "== headless Chromium: ${#pages[@]} pages at desktop and phone width, screenshots in $out"
python3 .ci/book_browser.py "$browser" book/book "$out" "${pages[@]}"
