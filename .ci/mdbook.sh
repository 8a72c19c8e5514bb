# Sourced by the book steps (.ci/steps/60-book.sh, 65-book-browser.sh): puts cargo's bin
# directory on PATH and installs the pinned mdBook when it is missing. mdBook 0.5.4 builds
# with Rust 1.88+ (checked on 1.95); without the `serve`/`watch` features it installs in
# about 2.5 minutes on 2 cores.
MDBOOK_VERSION=0.5.4
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if [ "$(mdbook --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]; then
    echo "== installing mdbook $MDBOOK_VERSION"
    cargo install --locked mdbook --version "$MDBOOK_VERSION" --no-default-features --features search
fi
