//! What `Tiered` gives back to the OS after a large heap is freed, phase by phase (large
//! frees, small frees, fast-path small work, large work, `trim`), for the book's chapter
//! "Freeing and scavenging": prints the table, writes the plot of Ready memory against the
//! scavenger's goal over the same run (`book/src/img/scavenge.svg`), and prints the
//! chapter's `<img>` and caption on stderr.
//!
//! Run: `cargo run --release -p book-examples --example scavenge > book/src/measured/scavenge.txt`
//! (the code is `book/book-examples/reports/scavenge.rs`; `tests/measured.rs` checks that the
//! committed table, plot, alt text and caption are what it produces now).

use book_examples::reports::scavenge;

fn main() {
    let run = scavenge::run();
    print!("{}", run.report);
    let path = format!("{}/../src/img/scavenge.svg", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(&path, scavenge::plot(&run.samples)).unwrap_or_else(|e| panic!("{path}: {e}"));
    eprintln!("wrote {path}\n");
    eprintln!(
        "{}\n<figcaption>{}</figcaption>",
        scavenge::img(&run.samples),
        scavenge::caption(&run.samples)
    );
}
