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
    // fragmentation.svg is drawn by reports/fragmentation.rs and checked below.
    let stale = stale_frames(&dir, &now, &["fragmentation.svg"]);
    assert!(
        stale.is_empty(),
        "book/src/img/policy is stale; regenerate it with \
         `cargo run -p book-examples --example policy_frames`:\n{}",
        stale.join("\n")
    );
}

/// Each frame's alt text in the chapter is the frame's own text, so that every number a
/// reader without the picture gets is the one the strategies drew.
#[test]
fn the_chapter_shows_every_frame_with_its_text() {
    let path = format!("{}/../src/free-lists.md", env!("CARGO_MANIFEST_DIR"));
    let chapter = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let missing: Vec<String> = policy_frames::frames()
        .iter()
        .map(|f| f.img())
        .filter(|img| !chapter.contains(img.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "free-lists.md does not show these frames as drawn (paste the lines that \
         `cargo run -p book-examples --example policy_frames` prints):\n{}",
        missing.join("\n")
    );
}

/// `measured/fragmentation.txt` and `img/policy/fragmentation.svg` must be what
/// `reports/fragmentation.rs` produces today. (Checked here rather than in `tests/measured.rs`:
/// its regions, 1 GiB-aligned mappings, would change where the kernel places the mappings of
/// the `Tiered` reports that test runs at the same time, and so their figures.)
#[test]
fn fragmentation_is_current() {
    let (report, plot) = book_examples::reports::fragmentation::report_and_plot();
    let src = format!("{}/../src", env!("CARGO_MANIFEST_DIR"));
    for (path, now) in [
        (format!("{src}/measured/fragmentation.txt"), report),
        (format!("{src}/img/policy/fragmentation.svg"), plot),
    ] {
        let then = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            then == now,
            "{path} is stale; regenerate it with `cargo run --release -p book-examples --example fragmentation` \
             and check the chapter's figures against it.\n--- committed\n{then}\n--- now\n{now}"
        );
    }
}

/// Every percentage the chapter's section on fragmentation quotes (prose and alt text) is in
/// the committed table.
#[test]
fn the_chapter_quotes_the_fragmentation_table() {
    let src = format!("{}/../src", env!("CARGO_MANIFEST_DIR"));
    let chapter = std::fs::read_to_string(format!("{src}/free-lists.md")).expect("free-lists.md");
    let table =
        std::fs::read_to_string(format!("{src}/measured/fragmentation.txt")).expect("fragmentation.txt");
    let start = chapter.find("### Fragmentation over one run").expect("the section");
    let end = start + chapter[start..].find("### Whole programs").expect("the next section");
    let section = &chapter[start..end];
    let mut quoted = vec![];
    for (i, _) in section.match_indices(" %") {
        let digits: String =
            section[..i].chars().rev().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let number: String = digits.chars().rev().collect();
        if number.contains('.') {
            quoted.push(number);
        }
    }
    assert!(quoted.len() >= 5, "expected the section's figures, found {quoted:?}");
    let missing: Vec<&String> = quoted.iter().filter(|n| !table.contains(&format!(" {n}%"))).collect();
    assert!(
        missing.is_empty(),
        "free-lists.md quotes figures that measured/fragmentation.txt lacks: {missing:?}"
    );
}

/// The size-class waste plot of "Why size classes" is what the code draws, and the chapter
/// shows it with the alt text the code computes.
#[test]
fn size_class_waste_is_current() {
    use book_examples::reports::size_class_waste;
    let src = format!("{}/../src", env!("CARGO_MANIFEST_DIR"));
    let path = format!("{src}/img/size-class-waste.svg");
    let then = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        then == size_class_waste::plot(),
        "{path} is stale; regenerate it with `cargo run --release -p book-examples --example size_class_waste`"
    );
    let chapter = std::fs::read_to_string(format!("{src}/size-classes.md")).expect("size-classes.md");
    assert!(
        chapter.contains(&size_class_waste::img()),
        "size-classes.md does not show the plot as drawn; the line is:\n{}",
        size_class_waste::img()
    );
}

/// The step-through of the chapter "Span" (`book/src/img/span/`) must be what one real
/// `Tiered` span does today: a change of the span's scan, alloc cache, free or rewind fails
/// here until the frames are regenerated with
/// `cargo run -p book-examples --example span_frames` and the chapter is checked against
/// them. The chapter must show every frame with the alt text the code computes.
#[test]
fn span_frames_are_current_and_shown() {
    use book_examples::reports::span_frames;
    let src = format!("{}/../src", env!("CARGO_MANIFEST_DIR"));
    let dir = format!("{src}/img/span");
    let now = span_frames::frames();
    let stale = stale_frames(&dir, &now, &[]);
    assert!(
        stale.is_empty(),
        "book/src/img/span is stale; regenerate it with \
         `cargo run -p book-examples --example span_frames`:\n{}",
        stale.join("\n")
    );
    let chapter = std::fs::read_to_string(format!("{src}/span.md")).expect("span.md");
    let missing: Vec<String> =
        now.iter().map(|f| f.img()).filter(|img| !chapter.contains(img.as_str())).collect();
    assert!(
        missing.is_empty(),
        "span.md does not show these frames as drawn (paste the lines that \
         `cargo run -p book-examples --example span_frames` prints):\n{}",
        missing.join("\n")
    );
}

/// The time-against-memory summary of "Comparison" is what the code draws from the committed
/// `results/results.json`, and the chapter shows it with the alt text (every allocator's two
/// means) the code computes: a new harness run fails here until the plot is regenerated with
/// `cargo run -p book-examples --example comparison_summary`.
#[test]
fn comparison_summary_is_current() {
    use book_examples::reports::comparison_summary as cs;
    let src = format!("{}/../src", env!("CARGO_MANIFEST_DIR"));
    let s = cs::summary(&cs::results_json());
    let path = format!("{src}/img/comparison-summary.svg");
    let then = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        then == cs::plot(&s),
        "{path} is stale; regenerate it with `cargo run -p book-examples --example comparison_summary`"
    );
    let chapter = std::fs::read_to_string(format!("{src}/comparison.md")).expect("comparison.md");
    assert!(
        chapter.contains(&cs::img(&s)),
        "comparison.md does not show the summary as drawn; the line is:\n{}",
        cs::img(&s)
    );
    let caption = format!("over the {} workloads\nthat every allocator completed", s.workloads.len());
    assert!(chapter.contains(&caption), "the summary's caption must say: {caption:?}");
}

/// The summary's means are those of the committed results' own tables where the two agree
/// on the workloads: over the workloads every allocator completed, the anchor's means are 1
/// and every other point is the geometric mean of the ratios its rows of `results.json`
/// hold (in the harness's current format, `..._to_anchor`, and in the committed run's older
/// one, `..._to_mimalloc`).
#[test]
fn comparison_summary_means_are_the_results() {
    use book_examples::reports::comparison_summary as cs;
    let s = cs::summary(&cs::results_json());
    let anchor = s.points.iter().find(|p| p.name == s.anchor).expect("the anchor");
    assert!((anchor.wall - 1.0).abs() < 1e-9 && (anchor.rss - 1.0).abs() < 1e-9);
    assert!(s.points.iter().any(|p| p.name == "tiered" && p.strategy));
    assert!(!s.workloads.is_empty() && s.workloads.iter().all(|w| !s.left_out.contains(w)));
    // A hand-made run of two workloads: the means are exact.
    let json = r#"{"allocators":[{"name":"a","kind":"strategy"},{"name":"mimalloc","kind":"anchor"}],
        "workloads":[{"name":"w1"},{"name":"w2"},{"name":"w3"}],"machine":{"date_utc":"d"},
        "results":[
          {"workload":"w1","allocator":"a","verdict":"ok","wall_ratio_to_mimalloc":2.0,"rss_ratio_to_mimalloc":0.5},
          {"workload":"w2","allocator":"a","verdict":"ok","wall_ratio_to_mimalloc":8.0,"rss_ratio_to_mimalloc":2.0},
          {"workload":"w3","allocator":"a","verdict":"timeout","wall_ratio_to_mimalloc":null,"rss_ratio_to_mimalloc":null},
          {"workload":"w1","allocator":"mimalloc","verdict":"ok","wall_ratio_to_mimalloc":1.0,"rss_ratio_to_mimalloc":1.0},
          {"workload":"w2","allocator":"mimalloc","verdict":"ok","wall_ratio_to_mimalloc":1.0,"rss_ratio_to_mimalloc":1.0},
          {"workload":"w3","allocator":"mimalloc","verdict":"ok","wall_ratio_to_mimalloc":1.0,"rss_ratio_to_mimalloc":1.0}]}"#;
    let new = json
        .replace("\"workloads\":", "\"anchor\":\"mimalloc\",\"workloads\":")
        .replace("_to_mimalloc", "_to_anchor");
    for json in [json.to_string(), new] {
        let t = cs::summary(&json);
        assert_eq!(t.workloads, ["w1", "w2"]);
        assert_eq!(t.left_out, ["w3"]);
        assert_eq!(t.anchor, "mimalloc");
        let a = &t.points[0];
        assert!((a.wall - 4.0).abs() < 1e-9 && (a.rss - 1.0).abs() < 1e-9, "{a:?}");
    }
}

/// Every number of span.md's notes on its step-through ("What the script shows") is what the
/// span did: each phrase below is built from the run, and the chapter must contain it.
#[test]
fn the_span_chapter_quotes_the_run() {
    use book_examples::reports::span_frames::{self, SCRIPT, Step};
    use stratalloc::strategies::tiered::span_lab::SpanState;
    let (steps, _) = span_frames::run();
    let before = |step: usize| &steps[step - 1].0;
    let n = before(1).nelems;
    // Step 1 claims word 0 whole; step 8 loads word 1.
    let first_claim = before(2).alloc_count - before(1).alloc_count;
    let word1 = before(9).alloc_count - before(8).alloc_count;
    // Steps 4 and 6: the owner's free of object 3, then the object handed out instead.
    assert!(matches!(SCRIPT[3], Step::Free(&[3])), "step 4 frees object 3");
    assert!(steps[5].1 != [3], "step 6 does not hand object 3 out again");
    // Step 12: the remote frees collected, the free objects at the decision, refill_min.
    let at = before(12);
    let remote: Vec<String> =
        (0..n).filter(|&i| SpanState::bit(&at.remote, i)).map(|i| i.to_string()).collect();
    let free = n - (at.alloc_count - at.remote_len);
    assert_eq!(free, at.refill_min, "the chapter says the rewind comes at exactly refill_min");
    let ctz = |step: usize| steps[step - 1].2.expect("a fast-path allocation");
    let phrases = [
        format!("its {first_claim} objects at once (step 1: `allocCount` jumps to {first_claim})"),
        format!("word 1 holds objects 64 to {} and {} bits past the last object", n - 1, 128 - n),
        format!("the scan loads only {word1} objects from it (step 8)"),
        "Object 3, freed by the owner in step 4, has its bit cleared at once but is not handed out \
         again in step 6"
            .to_string(),
        format!(
            "the owner collects the remote stack (objects {}), finds {free} of {n} objects free",
            remote.join(", ")
        ),
        format!("`ctz` skips: {} in step 13, {} in step 14", ctz(13), ctz(14)),
    ];
    let path = format!("{}/../src/span.md", env!("CARGO_MANIFEST_DIR"));
    let chapter = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let chapter = chapter.split_whitespace().collect::<Vec<_>>().join(" ");
    let missing: Vec<&String> = phrases.iter().filter(|p| !chapter.contains(p.as_str())).collect();
    assert!(missing.is_empty(), "span.md no longer says what the span did; expected:\n{missing:#?}");
}

/// The hand-drawn diagrams of the free path (`img/free-object-life.svg`, freeing.md) and of
/// the central lists (`img/mcentral-lists.svg`, mcentral.md) name real code: every name in
/// their text that looks like code (`Type::method`, or a name with an underscore) is a
/// function, field, constant or type of the crate's sources. A rename in the code fails here
/// until the diagram follows.
#[test]
fn the_free_path_diagrams_name_real_code() {
    let root = format!("{}/../..", env!("CARGO_MANIFEST_DIR"));
    let mut source = String::new();
    let mut dirs = vec![format!("{root}/src"), format!("{root}/strategies")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")).flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path.to_string_lossy().into_owned());
            } else if path.extension().is_some_and(|x| x == "rs") {
                source += &std::fs::read_to_string(&path).unwrap_or_default();
            }
        }
    }
    let defines = |name: &str| {
        ["fn ", "const ", "struct ", "enum ", "trait ", "static "]
            .iter()
            .any(|kw| source.contains(&format!("{kw}{name}")))
            || source.contains(&format!("pub {name}:"))
            || source.contains(&format!(" {name}: "))
    };
    for svg in ["free-object-life.svg", "mcentral-lists.svg"] {
        let path = format!("{root}/book/src/img/{svg}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // The text nodes only (not attribute values).
        let words: String =
            text.split('>').filter_map(|part| part.split('<').next()).collect::<Vec<_>>().join(" ");
        let mut names = vec![];
        for token in words.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            let token = token.trim_matches(':');
            // `fetch_or`: the standard library's atomic, which `Span::claim_remote` calls.
            let std_name = token == "fetch_or";
            if !std_name && (token.contains("::") || (token.contains('_') && !token.starts_with('_'))) {
                names.push(token.to_string());
            }
        }
        assert!(names.len() >= 20, "{svg}: expected the diagram's code names, found {names:?}");
        let unknown: Vec<&String> = names
            .iter()
            .filter(|n| match n.split_once("::") {
                Some((ty, item)) => !(defines(ty) && defines(item)),
                None => !defines(n),
            })
            .collect();
        assert!(unknown.is_empty(), "{svg} names code the sources do not define: {unknown:?}");
    }
}

/// Every figure of the book has a caption, in one of the two forms `assets/figures.css`
/// styles: a `<figure>` with a `<figcaption>`, or a Markdown image followed on the next line
/// by an emphasised line (`*...*`).
#[test]
fn every_figure_has_a_caption() {
    let dir = format!("{}/../src", env!("CARGO_MANIFEST_DIR"));
    let mut missing = vec![];
    for e in std::fs::read_dir(&dir).expect("book/src").flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "md") {
            continue;
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let figures = text.matches("<figure").count();
        let captions = text.matches("<figcaption>").count();
        if figures != captions {
            missing.push(format!("{name}: {figures} <figure> but {captions} <figcaption>"));
        }
        let lines: Vec<&str> = text.lines().collect();
        let mut in_image = false;
        for (i, line) in lines.iter().enumerate() {
            in_image |= line.starts_with("![");
            // The image's Markdown ends at the line holding `](target)`.
            if in_image && line.contains("](") && line.trim_end().ends_with(')') {
                in_image = false;
                let next = lines.get(i + 1).map_or("", |l| l.trim());
                if !(next.starts_with('*') && next.ends_with('*')) {
                    missing.push(format!("{name}:{}: an image without a caption line under it", i + 1));
                }
            }
        }
    }
    assert!(missing.is_empty(), "figures without a caption:\n{}", missing.join("\n"));
}

/// What differs between the frames the code draws now and the files of `dir`: a frame whose
/// file differs or is missing, and a file no frame draws (but those named in `others`, drawn
/// by other reports).
fn stale_frames(
    dir: &str,
    now: &[book_examples::reports::policy_frames::Frame],
    others: &[&str],
) -> Vec<String> {
    let mut stale = vec![];
    for frame in now {
        match std::fs::read_to_string(format!("{dir}/{}", frame.name)) {
            Ok(then) if then == frame.svg => {}
            Ok(_) => stale.push(format!("{}: differs", frame.name)),
            Err(e) => stale.push(format!("{}: {e}", frame.name)),
        }
    }
    let mut extra: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    extra.retain(|f| !others.contains(&f.as_str()) && !now.iter().any(|frame| &frame.name == f));
    stale.extend(extra.into_iter().map(|f| format!("{f}: no longer drawn")));
    stale
}
