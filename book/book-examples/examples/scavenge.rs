//! What `Tiered` gives back to the OS after a large heap is freed, phase by phase (large
//! frees, small frees, fast-path small work, large work, `trim`), for the book's chapter
//! "Freeing and scavenging".
//!
//! Run: `cargo run --release -p book-examples --example scavenge > book/src/measured/scavenge.txt`
//! (the code is `book/book-examples/reports/scavenge.rs`; `tests/measured.rs` checks that the
//! committed file is what it prints now).

fn main() {
    print!("{}", book_examples::reports::scavenge::report());
}
