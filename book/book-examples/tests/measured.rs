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

/// The "measured YYYY-MM-DD HH:MM UTC" stamp of the harness tables in `results/tables.md`.
fn results_stamp() -> String {
    let tables = format!("{}/../src/results/tables.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&tables).unwrap_or_else(|e| panic!("{tables}: {e}"));
    stamps(&text).into_iter().next().unwrap_or_else(|| panic!("{tables} has no \"measured ... UTC\" stamp"))
}

/// Every `measured <date> <time> UTC` in `text` (the date and time, without the words).
fn stamps(text: &str) -> Vec<String> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.match_indices("measured ")
        .filter_map(|(at, word)| {
            let rest = &flat[at + word.len()..];
            let stamp = rest.get(..20)?; // "2026-11-25 23:40 UTC"
            let ok = stamp.ends_with(" UTC") && stamp.as_bytes()[..4].iter().all(u8::is_ascii_digit);
            ok.then(|| stamp[..16].to_string())
        })
        .collect()
}

/// The chapters quote figures of the harness run committed in `results/` and name it by its
/// stamp. A new run (new tables) fails here until every chapter that quotes the old run has
/// been re-read against the new tables and its stamp updated.
#[test]
fn chapters_quote_the_committed_harness_run() {
    let now = results_stamp();
    let src = format!("{}/../src", env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(&path).unwrap();
            for quoted in stamps(&text) {
                if quoted != now {
                    stale.push(format!("{} quotes the run of {quoted}", path.display()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "results/tables.md was measured {now}, but:\n{}\nRe-read those passages against the new tables \
         and update their figures and stamps.",
        stale.join("\n")
    );
}

#[test]
fn stamps_are_found_across_line_breaks() {
    let text = "the run (measured\n2026-11-25 23:20 UTC), and measured 2026-11-26 01:05 UTC.";
    assert_eq!(stamps(text), ["2026-11-25 23:20", "2026-11-26 01:05"]);
    assert!(stamps("measured by hand").is_empty());
}
