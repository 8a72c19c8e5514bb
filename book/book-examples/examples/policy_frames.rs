//! Writes the step-through frames of the chapter "Free-list allocation" to
//! `book/src/img/policy/`: the real `FirstFit`, `NextFit`, `BestFit` and `SegregatedFit` run
//! one script of requests and frees (the code is `book/book-examples/reports/policy_frames.rs`;
//! `tests/frames.rs` checks that the committed frames are what it draws now).
//!
//! Run: `cargo run -p book-examples --example policy_frames`

fn main() {
    let dir = format!("{}/../src/img/policy", env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(&dir).expect("create the frame directory");
    for (name, svg) in book_examples::reports::policy_frames::frames() {
        let path = format!("{dir}/{name}");
        std::fs::write(&path, svg).unwrap_or_else(|e| panic!("{path}: {e}"));
        println!("wrote {path}");
    }
}
