#!/usr/bin/env bash
# Installs what the preload tests run, when missing: gcc, g++, python3, sqlite3, git, perl
# (Debian packages; needs root). With --mimalloc, also Debian's libmimalloc2.0, the comparison
# harness's anchor (optional: a failure to install it is reported, not fatal).
set -euo pipefail
missing=()
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v python3 >/dev/null || missing+=(python3)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v git >/dev/null || missing+=(git)
command -v g++ >/dev/null || missing+=(g++)
command -v perl >/dev/null || missing+=(perl)
updated=0
apt_install() {
    [ "$(id -u)" = 0 ] || { echo "install-tools.sh: need root to apt-get install $*" >&2; return 1; }
    [ $updated = 1 ] || { apt-get update -qq && updated=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-tools.sh: installing ${missing[*]}"
    apt_install "${missing[@]}"
fi
if [ "${1:-}" = --mimalloc ] && [ ! -e /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 ]; then
    apt_install libmimalloc2.0 || echo "install-tools.sh: libmimalloc2.0 not installed; the harness runs without its anchor"
fi
