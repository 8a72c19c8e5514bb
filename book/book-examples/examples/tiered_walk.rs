//! One allocation of each kind through `Heap<Tiered, Tracked<Mmap>>`: what each step asks of
//! the page source, for the book's chapter "One allocation walked through every tier".
//!
//! Run: `cargo run --release -p book-examples --example tiered_walk > book/src/measured/tiered_walk.txt`
//! (the code is `book/book-examples/reports/tiered_walk.rs`; `tests/measured.rs` checks that the
//! committed file is what it prints now).

fn main() {
    print!("{}", book_examples::reports::tiered_walk::report());
}
