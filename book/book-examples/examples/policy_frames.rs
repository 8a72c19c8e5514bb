//! Writes the step-through frames of the chapter "Free-list allocation" to
//! `book/src/img/policy/`: the real `FirstFit`, `NextFit`, `BestFit` and `SegregatedFit` run
//! one script of requests and frees (the code is `book/book-examples/reports/policy_frames.rs`;
//! `tests/frames.rs` checks that the committed frames are what it draws now).
//!
//! Run: `cargo run -p book-examples --example policy_frames`
//!
//! It also prints the `<img>` element of every frame, with its alt text, for the chapter.

fn main() {
    let dir = format!("{}/../src/img/policy", env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(&dir).expect("create the frame directory");
    for frame in book_examples::reports::policy_frames::frames() {
        let path = format!("{dir}/{}", frame.name);
        std::fs::write(&path, &frame.svg).unwrap_or_else(|e| panic!("{path}: {e}"));
        eprintln!("wrote {path}");
        println!("{}", frame.img());
    }
}
