//! Fragmentation over one run for each free-list policy, for the book's chapter
//! "Free-list allocation": writes `book/src/measured/fragmentation.txt` and
//! `book/src/img/policy/fragmentation.svg` (the code is
//! `book/book-examples/reports/fragmentation.rs`; `tests/frames.rs` checks both files).
//!
//! Run: `cargo run --release -p book-examples --example fragmentation`

fn main() {
    let (report, plot) = book_examples::reports::fragmentation::report_and_plot();
    let src = format!("{}/../src", env!("CARGO_MANIFEST_DIR"));
    for (path, text) in [
        (format!("{src}/measured/fragmentation.txt"), &report),
        (format!("{src}/img/policy/fragmentation.svg"), &plot),
    ] {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
        eprintln!("wrote {path}");
    }
    print!("{report}");
}
