//! Every figure the book's prose quotes from the committed harness run
//! (`book/src/results/results.json`) is checked against that file here, so that a new run,
//! or a slip of the pen, fails the build until the text says what the data says.
//!
//! # How a chapter marks a quoted figure
//!
//! An HTML comment (invisible in the rendered book) names the figure, and the number follows
//! it at once: `<!--r larson tiered wall-->0.84` says that 0.84 is the wall-time ratio to the
//! anchor (mimalloc) of `tiered` on `larson`. The quoted number is compared with the value
//! rounded to as many decimals as the quote has. The forms (`W` a workload, `A` an
//! allocator, `S` a set of allocators or workloads, see [`set`]):
//!
//! | marker | value |
//! |---|---|
//! | `W A wall`, `W A rss`, `W A cpu` | ratio to the anchor: median wall time, peak RSS, CPU time within a rep |
//! | `W A wall_ms`, `W A cpu_ms`, `W A wall_s`, `W A rss_mib` | the medians themselves |
//! | `W A metric:NAME` | a workload's own metric (`efficiency_pct`, `frag_pct`) |
//! | `geomean A wall`, `geomean A cpu` | geometric mean of `A`'s ratios over the workloads it completed (as the tables' last row) |
//! | `completed A`, `workloads` | how many workloads `A` completed; how many the run has |
//! | `count A wall<X` (or `>`) | workloads on which `A`'s wall ratio is below (above) `X` |
//! | `most_rss A` | workloads on which `A` has the largest peak RSS of all allocators |
//! | `min S_A FIELD S_W`, `max S_A FIELD S_W` | least / greatest `FIELD` over allocators `S_A` and workloads `S_W` |
//!
//! Figures quoted from the committed files of `book/src/measured/` are marked the same way,
//! as `<!--m FILE | LABEL | N-->`: the `N`th number after `LABEL` on its line of
//! `measured/FILE.txt`, optionally `| DIVISOR` for a change of unit (see [`measured`]).
//!
//! Two more rules keep the marks honest. In a paragraph with a mark, every decimal number
//! must be marked too, or be the threshold of a `count` mark in it: a figure added beside
//! the others without a mark fails here. And the alt texts of the result plots, which
//! cannot hold a comment, are checked against [`ALT_TEXT`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../src")
}

/// The committed results.
struct Run {
    json: serde_json::Value,
}

impl Run {
    fn load() -> Run {
        let path = book_src().join("results/results.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Run { json: serde_json::from_str(&text).expect("results.json is JSON") }
    }

    fn results(&self) -> &[serde_json::Value] {
        self.json["results"].as_array().expect("results.json has a results array")
    }

    fn workloads(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for r in self.results() {
            let w = r["workload"].as_str().expect("workload").to_string();
            if !seen.contains(&w) {
                seen.push(w);
            }
        }
        seen
    }

    fn allocators(&self) -> Vec<(String, String)> {
        self.json["allocators"]
            .as_array()
            .expect("allocators")
            .iter()
            .map(|a| (a["name"].as_str().unwrap().to_string(), a["kind"].as_str().unwrap().to_string()))
            .collect()
    }

    fn cell(&self, w: &str, a: &str) -> Option<&serde_json::Value> {
        self.results().iter().find(|r| r["workload"] == w && r["allocator"] == a)
    }

    /// `field` of an ok cell; None for a failed, timed-out or absent one.
    fn value(&self, w: &str, a: &str, field: &str) -> Option<f64> {
        let c = self.cell(w, a)?;
        if c["verdict"] != "ok" {
            return None;
        }
        let f = |k: &str| c[k].as_f64();
        match field {
            "wall" => f("wall_ratio_to_anchor"),
            "rss" => f("rss_ratio_to_anchor"),
            "cpu" => f("cpu_round_ratio_to_anchor"),
            "wall_ms" => f("median_wall_s").map(|s| s * 1000.0),
            "wall_s" => f("median_wall_s"),
            "cpu_ms" => f("median_cpu_s").map(|s| s * 1000.0),
            "rss_mib" => f("median_maxrss_mib"),
            _ => match field.strip_prefix("metric:") {
                Some(m) => c["metrics"][m].as_f64(),
                None => panic!("unknown field {field:?}"),
            },
        }
    }

    /// `A`'s ratios (`wall` or `cpu`) over the workloads it completed.
    fn ratios(&self, a: &str, field: &str) -> Vec<f64> {
        self.workloads().iter().filter_map(|w| self.value(w, a, field)).filter(|r| *r > 0.0).collect()
    }

    /// A set of names: `*` (all), `strategies` / `anchors` (by kind), `c` / `rust` (the
    /// preloaded C workloads, the others), or a comma-separated list.
    fn set(&self, spec: &str, of_allocators: bool) -> Vec<String> {
        let all: Vec<String> = if of_allocators {
            self.allocators().into_iter().map(|(n, _)| n).collect()
        } else {
            self.workloads()
        };
        match spec {
            "*" => all,
            "strategies" | "anchors" => {
                let kind = if spec == "strategies" { "strategy" } else { "anchor" };
                self.allocators().into_iter().filter(|(_, k)| k == kind).map(|(n, _)| n).collect()
            }
            "c" | "rust" => all
                .into_iter()
                .filter(|w| {
                    let preloaded =
                        self.results().iter().any(|r| r["workload"] == w.as_str() && r["preloaded"] == true);
                    preloaded == (spec == "c")
                })
                .collect(),
            list => {
                let names: Vec<String> = list.split(',').map(str::to_string).collect();
                for n in &names {
                    assert!(all.contains(n), "{n:?} is not in the run");
                }
                names
            }
        }
    }

    /// The value a marker names.
    fn eval(&self, spec: &str) -> Result<f64, String> {
        let words: Vec<&str> = spec.split_whitespace().collect();
        let none = || format!("no value for {spec:?} (failed, timed out or not run)");
        match words.as_slice() {
            ["workloads"] => Ok(self.workloads().len() as f64),
            ["geomean", a, field @ ("wall" | "cpu")] => {
                let rs = self.ratios(a, field);
                if rs.is_empty() {
                    return Err(none());
                }
                Ok((rs.iter().map(|r| r.ln()).sum::<f64>() / rs.len() as f64).exp())
            }
            ["completed", a] => Ok(self.ratios(a, "wall").len() as f64),
            ["count", a, cond] => {
                let (field, op, x) = split_condition(cond)?;
                let n = self
                    .workloads()
                    .iter()
                    .filter_map(|w| self.value(w, a, field))
                    .filter(|v| if op == '<' { *v < x } else { *v > x })
                    .count();
                Ok(n as f64)
            }
            ["most_rss", a] => {
                let names: Vec<String> = self.allocators().into_iter().map(|(n, _)| n).collect();
                let n = self
                    .workloads()
                    .iter()
                    .filter(|w| {
                        let mine = self.value(w, a, "rss_mib");
                        let most =
                            names.iter().filter_map(|b| self.value(w, b, "rss_mib")).fold(f64::MIN, f64::max);
                        mine == Some(most)
                    })
                    .count();
                Ok(n as f64)
            }
            [m @ ("min" | "max"), allocs, field, works] => {
                let vals: Vec<f64> = self
                    .set(works, false)
                    .iter()
                    .flat_map(|w| self.set(allocs, true).into_iter().map(move |a| (w.clone(), a)))
                    .filter_map(|(w, a)| self.value(&w, &a, field))
                    .collect();
                let pick = if *m == "min" { f64::min } else { f64::max };
                vals.into_iter().reduce(pick).ok_or_else(none)
            }
            [w, a, field] => self.value(w, a, field).ok_or_else(none),
            _ => Err(format!("cannot read the marker {spec:?}")),
        }
    }
}

/// `wall<1.5` -> ("wall", '<', 1.5).
fn split_condition(cond: &str) -> Result<(&str, char, f64), String> {
    let at = cond.find(['<', '>']).ok_or_else(|| format!("{cond:?}: no < or >"))?;
    let x = cond[at + 1..].parse().map_err(|_| format!("{cond:?}: bad threshold"))?;
    Ok((&cond[..at], cond.as_bytes()[at] as char, x))
}

/// The number at the start of `text` ("6.67", "24", "98.5"), as written.
fn leading_number(text: &str) -> Option<&str> {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let n = text[..end].trim_end_matches('.');
    (!n.is_empty() && n.as_bytes()[0].is_ascii_digit()).then_some(n)
}

/// `value` written with as many decimals as `quoted` has.
fn format_like(value: f64, quoted: &str) -> String {
    let decimals = quoted.split_once('.').map_or(0, |(_, d)| d.len());
    format!("{value:.decimals$}")
}

/// One marked figure in a chapter.
#[derive(Debug)]
struct Mark {
    file: String,
    line: usize,
    /// `r` (results.json) or `m` (a file of `measured/`).
    kind: char,
    spec: String,
    quoted: String,
}

const OPEN: &str = "<!--r ";
const OPEN_MEASURED: &str = "<!--m ";

/// The first marker of `text`: its offset, its kind and the length of its opening.
fn next_marker(text: &str) -> Option<(usize, char)> {
    let r = text.find(OPEN).map(|at| (at, 'r'));
    let m = text.find(OPEN_MEASURED).map(|at| (at, 'm'));
    match (r, m) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The number at the start of `text` with thousands separators ("2,436", "1,198").
fn leading_count(text: &str) -> Option<&str> {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',')).unwrap_or(text.len());
    let n = text[..end].trim_end_matches(['.', ',']);
    (!n.is_empty() && n.as_bytes()[0].is_ascii_digit()).then_some(n)
}

/// The value a `<!--m FILE | LABEL | N [| DIVISOR]-->` marker names: number `N` (counted
/// from one) after `LABEL` on the first line of `book/src/measured/FILE.txt` that holds
/// `LABEL`, divided by `DIVISOR` (for a change of unit, ns to µs, or `-1` for a negative
/// figure the prose quotes after its sign: `-<!--m ... | -1-->1.4`). A FILE with a slash is a
/// path from `book/src`, as `../../benches/README.md`. A number may end in the unit `x` or
/// `s` ("0.69x", "1.0191s") or stand in brackets with a percent sign ("(-1.4%)"); other
/// tokens ("MiB", "-") are not numbers.
fn measured(spec: &str) -> Result<f64, String> {
    let parts: Vec<&str> = spec.split('|').map(str::trim).collect();
    let (file, label, n, divisor) = match parts.as_slice() {
        [f, l, n] => (*f, *l, *n, "1"),
        [f, l, n, d] => (*f, *l, *n, *d),
        _ => return Err(format!("cannot read the marker {spec:?}")),
    };
    // A FILE with a slash is a path from book/src (`../../benches/README.md`).
    let path = if file.contains('/') {
        book_src().join(file)
    } else {
        book_src().join("measured").join(format!("{file}.txt"))
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text
        .lines()
        .find(|l| l.contains(label))
        .ok_or_else(|| format!("{file}.txt has no line with {label:?}"))?;
    let after = &line[line.find(label).unwrap() + label.len()..];
    let n: usize = n.parse().map_err(|_| format!("{spec:?}: bad column"))?;
    // A token may carry a unit right after its digits, as the replay report's "0.69x" and
    // "0.6457s" do.
    let token = after
        .split_whitespace()
        .filter_map(|t| {
            // A table cell's "(-1.4%)": the brackets and the percent sign are not the number.
            let t = t.replace(',', "");
            let t = t.trim_matches(['(', ')', '%']);
            t.strip_suffix(['x', 's']).unwrap_or(t).parse::<f64>().ok()
        })
        .nth(n.checked_sub(1).ok_or("columns count from 1")?)
        .ok_or_else(|| format!("{file}.txt: {label:?} has no number {n}"))?;
    let d: f64 = divisor.parse().map_err(|_| format!("{spec:?}: bad divisor"))?;
    Ok(token / d)
}

/// The paragraphs of `text`, each with its first line: blocks between blank lines, and each
/// item of a list on its own.
fn paragraphs(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let item = t.starts_with("- ")
            || t.starts_with("* ")
            || t.split_once(". ").is_some_and(|(n, _)| n.parse::<u32>().is_ok());
        if t.is_empty() {
            open = false;
            continue;
        }
        if !open || item {
            out.push((i + 1, String::new()));
            open = true;
        }
        let last = out.last_mut().expect("a paragraph is open");
        last.1.push_str(line);
        last.1.push('\n');
    }
    out
}

/// Every `<!--r SPEC-->NUMBER` of `text`, and the paragraphs (with their first line) that
/// hold at least one.
fn marks(file: &str, text: &str) -> (Vec<Mark>, Vec<(usize, String)>) {
    let mut out = Vec::new();
    let mut marked = Vec::new();
    for (start, block) in paragraphs(text) {
        let mut found = false;
        let mut rest = block.as_str();
        while let Some((at, kind)) = next_marker(rest) {
            let after = &rest[at + OPEN.len()..];
            let close = after.find("-->").unwrap_or_else(|| panic!("{file}:{start}: unclosed marker"));
            let spec = after[..close].trim().to_string();
            let tail = &after[close + 3..];
            let line = start + block[..block.len() - rest.len() + at].matches('\n').count();
            let number = if kind == 'r' { leading_number(tail) } else { leading_count(tail) };
            let quoted = number
                .unwrap_or_else(|| panic!("{file}:{line}: no number right after <!--{kind} {spec}-->"))
                .to_string();
            out.push(Mark { file: file.to_string(), line, kind, spec, quoted });
            found = true;
            rest = tail;
        }
        if found {
            marked.push((start, block));
        }
    }
    (out, marked)
}

/// The decimal numbers of `text` outside markers, code spans and links' targets, each with
/// whether a marker stands right before it.
fn decimals(text: &str) -> Vec<(String, bool)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_code = false;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            in_code = !in_code;
            i += 1;
            continue;
        }
        if bytes[i..].starts_with(b"<!--") {
            i += text[i..].find("-->").map_or(text.len() - i, |e| e + 3);
            continue;
        }
        if !in_code
            && bytes[i].is_ascii_digit()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.'))
        {
            let n = leading_number(&text[i..]).unwrap_or("");
            if n.contains('.') {
                // Marked: the text right before it closes a comment that opened as a marker.
                let before = &text[..i];
                let last = before.rfind("<!--");
                let marked = before.ends_with("-->")
                    && last.is_some_and(|o| {
                        next_marker(&before[o..]) == Some((0, 'r'))
                            || next_marker(&before[o..]) == Some((0, 'm'))
                    });
                out.push((n.to_string(), marked));
            }
            i += n.len().max(1);
            continue;
        }
        i += 1;
    }
    out
}

/// The chapters that quote the run (or a file of `measured/`).
const CHAPTERS: [&str; 10] = [
    "comparison.md",
    "caching.md",
    "choosing.md",
    "free-lists.md",
    "comparison-history.md",
    "freeing.md",
    "page-sources.md",
    "vm-layout.md",
    "recording.md",
    "layers.md",
];

/// The numbers in the alt texts of the run's plots, which cannot carry a marker: the
/// chapter, a piece of alt text holding the number (the number is the first one in it),
/// and the marker it would have.
const ALT_TEXT: &[(&str, &str, &str)] = &[
    ("comparison.md", "centred on mimalloc's time (1.0)", "larson mimalloc wall"),
    ("comparison.md", "reaches 31.99 times on btree-hash", "btree-hash linked-list wall"),
    ("comparison.md", "27.25 times on random-actions", "random-actions linked-list wall"),
    ("comparison.md", "first, next and best fit are 3.28", "larson next-fit wall"),
    ("comparison.md", "4.31 times slower than mimalloc on larson", "larson first-fit wall"),
    ("comparison.md", "reach 3.93 on malloc-large", "malloc-large tiered wall"),
    ("comparison.md", "lies left of 1.0", "larson mimalloc rss"),
];

fn check_marks(run: &Run, marks: &[Mark]) -> Vec<String> {
    let mut wrong = Vec::new();
    for m in marks {
        let (value, source) = if m.kind == 'r' {
            (run.eval(&m.spec), "results.json")
        } else {
            (measured(&m.spec), "the measured file")
        };
        match value {
            Ok(v) => {
                let quoted = m.quoted.replace(',', "");
                let want = format_like(v, &quoted);
                if want != quoted {
                    wrong.push(format!(
                        "{}:{}: <!--{} {}--> says {}, {source} says {want}",
                        m.file, m.line, m.kind, m.spec, m.quoted
                    ));
                }
            }
            Err(e) => wrong.push(format!("{}:{}: {e}", m.file, m.line)),
        }
    }
    wrong
}

#[test]
fn quoted_results_match_results_json() {
    let run = Run::load();
    let mut all = Vec::new();
    let mut wrong = Vec::new();
    for chapter in CHAPTERS {
        let text = std::fs::read_to_string(book_src().join(chapter)).expect(chapter);
        // A line that opens with a comment starts an HTML block in CommonMark, which ends the
        // paragraph there and leaves the rest of the line unrendered markdown.
        for (i, line) in text.lines().enumerate() {
            if next_marker(line.trim_start()).is_some_and(|(at, _)| at == 0) {
                wrong.push(format!(
                    "{chapter}:{}: a marker opens the line and would split its paragraph",
                    i + 1
                ));
            }
        }
        let (found, paragraphs) = marks(chapter, &text);
        // Every decimal number in a paragraph with marks is marked, or is the threshold of
        // one of its `count` marks.
        for (line, p) in &paragraphs {
            let thresholds: Vec<String> = found
                .iter()
                .filter(|m| m.spec.starts_with("count ") && p.contains(&format!("{OPEN}{}-->", m.spec)))
                .filter_map(|m| {
                    split_condition(m.spec.rsplit(' ').next()?).ok().map(|(_, _, x)| x.to_string())
                })
                .collect();
            for (n, marked) in decimals(p) {
                if !marked && !thresholds.contains(&n) {
                    wrong.push(format!(
                        "{chapter}: the paragraph at line {line} quotes {n} without a <!--r ...--> marker"
                    ));
                }
            }
        }
        all.extend(found);
    }
    wrong.extend(check_marks(&run, &all));
    for (chapter, piece, spec) in ALT_TEXT {
        let text = std::fs::read_to_string(book_src().join(chapter)).expect(chapter);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if !flat.contains(piece) {
            wrong.push(format!("{chapter}: the alt text no longer says {piece:?}"));
            continue;
        }
        let at = piece.find(|c: char| c.is_ascii_digit()).expect("a number in the piece");
        let quoted = leading_number(&piece[at..]).unwrap().to_string();
        let mark = Mark { file: chapter.to_string(), line: 0, kind: 'r', spec: spec.to_string(), quoted };
        wrong.extend(check_marks(&run, &[mark]));
    }
    assert!(!all.is_empty(), "no <!--r ...--> marker in {CHAPTERS:?}");
    assert!(wrong.is_empty(), "prose and results.json disagree:\n{}", wrong.join("\n"));
}

/// Every decimal number in the alt text of an image from `results/` is one of [`ALT_TEXT`].
#[test]
fn numbers_in_result_alt_texts_are_listed() {
    let mut unlisted = Vec::new();
    for chapter in CHAPTERS {
        let text = std::fs::read_to_string(book_src().join(chapter)).expect(chapter);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut rest = flat.as_str();
        while let Some(at) = rest.find("![") {
            let after = &rest[at + 2..];
            let Some(end) = after.find("](") else { break };
            let (alt, target) = (&after[..end], &after[end + 2..]);
            if target.starts_with("results/") {
                let listed: Vec<String> = ALT_TEXT
                    .iter()
                    .filter(|(c, piece, _)| *c == chapter && alt.contains(piece))
                    .filter_map(|(_, piece, _)| {
                        let at = piece.find(|c: char| c.is_ascii_digit())?;
                        leading_number(&piece[at..]).map(str::to_string)
                    })
                    .collect();
                for (n, _) in decimals(alt) {
                    if !listed.contains(&n) {
                        unlisted.push(format!("{chapter}: alt text quotes {n}, not in ALT_TEXT"));
                    }
                }
            }
            rest = &after[end..];
        }
    }
    assert!(unlisted.is_empty(), "{}", unlisted.join("\n"));
}

#[test]
fn the_marker_reader_reads_what_it_should() {
    let text = "a <!--r larson tiered wall-->0.84 and <!--r geomean tiered-->1.00.\n\nno marks 1.5 here\n\n\
                mark <!--r count tiered wall<1.5-->22 within 1.5 and 3.25 unmarked";
    let (found, paragraphs) = marks("t.md", text);
    let specs: Vec<(&str, &str)> = found.iter().map(|m| (m.spec.as_str(), m.quoted.as_str())).collect();
    assert_eq!(
        specs,
        [("larson tiered wall", "0.84"), ("geomean tiered", "1.00"), ("count tiered wall<1.5", "22")]
    );
    assert_eq!(found[2].line, 5);
    assert_eq!(paragraphs.len(), 2);
    let items = self::paragraphs("- one 1.5\n  two\n- <!--r w a wall-->2.5\n\n1. x\n2. y");
    assert_eq!(
        items,
        [
            (1, "- one 1.5\n  two\n".to_string()),
            (3, "- <!--r w a wall-->2.5\n".to_string()),
            (5, "1. x\n".to_string()),
            (6, "2. y\n".to_string())
        ]
    );
    let d: BTreeMap<String, bool> = decimals(&paragraphs[1].1).into_iter().collect();
    assert_eq!(d, BTreeMap::from([("1.5".to_string(), false), ("3.25".to_string(), false)]));
    let d: BTreeMap<String, bool> = decimals(&paragraphs[0].1).into_iter().collect();
    assert_eq!(d, BTreeMap::from([("0.84".to_string(), true), ("1.00".to_string(), true)]));
    assert_eq!(format_like(6.666668, "6.67"), "6.67");
    assert_eq!(format_like(21.6, "22"), "22");
    assert_eq!(split_condition("wall<1.5"), Ok(("wall", '<', 1.5)));
}
