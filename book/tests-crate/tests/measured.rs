//! The deterministic figures the book quotes (`book/src/measured/*.txt` made by
//! `book_examples::reports`) must be what the code prints today: a change of the strategies
//! that changes them fails here until the file is regenerated with the command in its first
//! lines, and the chapter's text checked against it. (The timing files, `source_costs.txt`
//! and `freelist_walk.txt`, vary from run to run and are not checked.)

use book_examples::reports;

fn committed(name: &str) -> String {
    let path = format!("{}/../src/measured/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn same(name: &str, now: String) {
    let then = committed(name);
    assert!(
        then == now,
        "book/src/measured/{name}.txt is stale; regenerate it with \
         `cargo run --release -p book-examples --example {name} > book/src/measured/{name}.txt` \
         and check the chapter that quotes it.\n--- committed\n{then}\n--- now\n{now}"
    );
}

#[test]
fn size_classes_are_current() {
    same("size_classes", reports::size_classes::report());
}

#[test]
fn tiered_walk_is_current() {
    same("tiered_walk", reports::tiered_walk::report());
}

#[test]
fn scavenge_is_current() {
    same("scavenge", reports::scavenge::report());
}
