//! The size classes that `Tiered` generates, with Go's comment table, and what rounding to
//! them wastes for a few request-size distributions; for the book's chapter "Why size
//!
//! Run: `cargo run --release -p book-examples --example size_classes > book/src/measured/size_classes.txt`
//! (the code is `book/book-examples/reports/size_classes.rs`; `tests/measured.rs` checks that the
//! committed file is what it prints now).

fn main() {
    print!("{}", book_examples::reports::size_classes::report());
}
