//! Writes the plot of the chapter "Why size classes", `book/src/img/size-class-waste.svg`,
//! and prints the chapter's `<img>` element with its alt text (the code is
//! `book/book-examples/reports/size_class_waste.rs`; `tests/frames.rs` checks both).
//!
//! Run: `cargo run --release -p book-examples --example size_class_waste`

fn main() {
    let path = format!("{}/../src/img/size-class-waste.svg", env!("CARGO_MANIFEST_DIR"));
    std::fs::write(&path, book_examples::reports::size_class_waste::plot())
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    eprintln!("wrote {path}");
    println!("{}", book_examples::reports::size_class_waste::img());
}
