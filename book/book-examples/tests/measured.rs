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

/// The scavenge scenario, run once for the tests below (the slowest of these reports).
fn scavenge_run() -> &'static reports::scavenge::Run {
    static RUN: std::sync::OnceLock<reports::scavenge::Run> = std::sync::OnceLock::new();
    RUN.get_or_init(reports::scavenge::run)
}

#[test]
fn scavenge_is_current() {
    same("scavenge", scavenge_run().report.clone());
}

/// The plot of Ready memory against the scavenger's goal (`img/scavenge.svg`) is what the
/// same run draws today, and freeing.md shows it with the alt text and caption the code
/// writes, so that every figure in them is the run's.
#[test]
fn scavenge_plot_is_current_and_shown() {
    use reports::scavenge::{caption, img, plot};
    let samples = &scavenge_run().samples;
    let src = format!("{}/../src", env!("CARGO_MANIFEST_DIR"));
    let path = format!("{src}/img/scavenge.svg");
    let then = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        then == plot(samples),
        "{path} is stale; regenerate it with \
         `cargo run --release -p book-examples --example scavenge > book/src/measured/scavenge.txt`"
    );
    let flat = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let chapter = flat(&std::fs::read_to_string(format!("{src}/freeing.md")).expect("freeing.md"));
    for (what, line) in
        [("<img>", img(samples)), ("<figcaption>", format!("<figcaption>{}</figcaption>", caption(samples)))]
    {
        assert!(
            chapter.contains(&flat(&line)),
            "freeing.md does not show the scavenge plot's {what} as drawn (the example prints \
             it on stderr); it is:\n{line}"
        );
    }
}

/// The plot's samples are the table's run: the last sample of each phase has the Ready
/// memory of the table's row for that phase.
#[test]
fn scavenge_plot_ends_each_phase_at_the_table() {
    use reports::scavenge::{PHASES, figures};
    let run = scavenge_run();
    let f = figures(&run.samples);
    for (p, (row, _)) in PHASES.iter().enumerate() {
        let line =
            run.report.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("no row {row:?}"));
        let ready: usize =
            line[row.len()..].split_whitespace().next().and_then(|n| n.parse().ok()).expect("Ready MiB");
        assert_eq!(f.after[p], ready, "phase {row:?}");
    }
    assert!(
        run.samples.windows(2).all(|w| (w[0].phase, w[0].done) <= (w[1].phase, w[1].done)),
        "samples in order"
    );
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
