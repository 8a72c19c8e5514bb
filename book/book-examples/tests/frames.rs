//! The step-through frames of the chapter "Free-list allocation" (`book/src/img/policy/`)
//! must be what the real strategies draw today: a change of a strategy's placement, split or
//! coalescing fails here until the frames are regenerated with
//! `cargo run -p book-examples --example policy_frames` and the chapter's text is checked
//! against them. Drawing them also runs each strategy's checker after every step and asserts
//! that the rule each picture shows picks the block the strategy took.

use book_examples::reports::policy_frames;

#[test]
fn committed_frames_are_current() {
    let dir = format!("{}/../src/img/policy", env!("CARGO_MANIFEST_DIR"));
    let now = policy_frames::frames();
    let mut stale = vec![];
    for (name, svg) in &now {
        let path = format!("{dir}/{name}");
        match std::fs::read_to_string(&path) {
            Ok(then) if &then == svg => {}
            Ok(_) => stale.push(format!("{name}: differs")),
            Err(e) => stale.push(format!("{name}: {e}")),
        }
    }
    let mut extra: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    extra.retain(|f| !now.iter().any(|(n, _)| n == f));
    stale.extend(extra.into_iter().map(|f| format!("{f}: no longer drawn")));
    assert!(
        stale.is_empty(),
        "book/src/img/policy is stale; regenerate it with \
         `cargo run -p book-examples --example policy_frames`:\n{}",
        stale.join("\n")
    );
}
