//! Writes the time-against-memory summary of the chapter "Comparison" to
//! `book/src/img/comparison-summary.svg`, from the committed `book/src/results/results.json`
//! (the code is `book/book-examples/reports/comparison_summary.rs`; `tests/frames.rs` checks
//! that the committed plot and the chapter's alt text are what it draws now).
//!
//! Run: `cargo run -p book-examples --example comparison_summary`
//!
//! It prints the `<img>` element, with its alt text, for the chapter.

use book_examples::reports::comparison_summary as cs;

fn main() {
    let s = cs::summary(&cs::results_json());
    let path = format!("{}/../src/img/comparison-summary.svg", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(&path, cs::plot(&s)).unwrap_or_else(|e| panic!("{path}: {e}"));
    eprintln!("wrote {path}");
    eprintln!("left out (not completed by every allocator): {}", s.left_out.join(", "));
    println!("{}", cs::img(&s));
}
