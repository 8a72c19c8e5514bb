//! Writes the step-through frames of the chapter "Span" to `book/src/img/span/`: one real
//! `Tiered` span driven through a script of allocations and frees (the code is
//! `book/book-examples/reports/span_frames.rs`; `tests/frames.rs` checks that the committed
//! frames are what it draws now).
//!
//! Run: `cargo run -p book-examples --example span_frames`
//!
//! It also prints the `<img>` element of every frame, with its alt text, for the chapter.

fn main() {
    let dir = format!("{}/../src/img/span", env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(&dir).expect("create the frame directory");
    for frame in book_examples::reports::span_frames::frames() {
        let path = format!("{dir}/{}", frame.name);
        std::fs::write(&path, &frame.svg).unwrap_or_else(|e| panic!("{path}: {e}"));
        eprintln!("wrote {path}");
        println!("{}", frame.img());
    }
}
