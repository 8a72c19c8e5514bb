//! The step-through pictures of the chapter "Span": one real `Tiered` span of class 9
//! (73 objects of 112 B in one 8 KiB page), made and driven through the span's own methods
//! (`stratalloc::strategies::tiered::span_lab`, a hidden door onto the real `Span` record),
//! through one script of allocations and frees. Every frame draws the state read back from
//! the record before its step: the alloc bitmap (each bit coloured by the span's live and
//! remote bits and its alloc cache), the 64-bit alloc cache, `freeindex`, `allocCount`, and
//! for an allocation by the fast path the count of trailing zeros that picks the object.
//!
//! Run: `cargo run -p book-examples --example span_frames` (writes `book/src/img/span/`;
//! `tests/frames.rs` regenerates the frames and fails if the committed ones differ).
//!
//! Nothing here decides which object comes next: the frames show what the span's
//! `next_free_fast` and `refill_current` returned. The generator asserts that the fast
//! path's object is `freeindex + ctz(allocCache)` as read before the call, so a picture
//! cannot show a choice the code does not make.

use core::fmt::Write;

use stratalloc::strategies::tiered::span_lab::{SpanLab, SpanState};

pub use super::policy_frames::Frame;
use super::policy_frames::{FONT, esc, text};

/// The size class the pictures use: 112 B objects, 73 to a page (the class of `span.svg`).
pub const CLASS: usize = 9;

/// One step of the script.
#[derive(Copy, Clone, Debug)]
pub enum Step {
    /// This many allocations, each by the fast path if the alloc cache holds an object,
    /// else by the refill of the current span.
    Alloc(usize),
    /// The owner frees these objects straight into the span.
    Free(&'static [usize]),
    /// Another thread frees these objects (the remote stack).
    FreeRemote(&'static [usize]),
}

/// The script, on a fresh span.
pub const SCRIPT: [Step; 15] = [
    Step::Alloc(1),
    Step::Alloc(1),
    Step::Alloc(6),
    Step::Free(&[3]),
    Step::FreeRemote(&[5]),
    Step::Alloc(1),
    Step::Alloc(55),
    Step::Alloc(1),
    Step::Alloc(8),
    Step::Free(&[10, 11, 20, 24, 30, 31, 32, 40, 47, 50, 55, 60, 66, 70]),
    Step::FreeRemote(&[41, 42]),
    Step::Alloc(1),
    Step::Alloc(1),
    Step::Alloc(1),
    Step::Alloc(1),
];

fn list(objs: &[usize]) -> String {
    objs.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

/// Consecutive runs as "a-b", for a caption.
fn ranges(objs: &[usize]) -> String {
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < objs.len() {
        let mut j = i;
        while j + 1 < objs.len() && objs[j + 1] == objs[j] + 1 {
            j += 1;
        }
        out.push(match j - i {
            0 => objs[i].to_string(),
            1 => format!("{}, {}", objs[i], objs[j]),
            _ => format!("{} to {}", objs[i], objs[j]),
        });
        i = j + 1;
    }
    out.join(", ")
}

/// "1 object", "3 objects".
fn objects(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

fn free_objects(s: &SpanState) -> usize {
    s.nelems - s.alloc_count
}

/// One allocation: the object, and a sentence on how the span found it.
fn alloc_one(lab: &SpanLab<'_>) -> (usize, String) {
    let before = lab.state();
    if before.alloc_cache != 0 {
        let t = before.alloc_cache.trailing_zeros() as usize;
        let got = lab.alloc_fast().expect("a non-empty alloc cache hands out an object");
        assert_eq!(got, before.freeindex + t, "next_free_fast: not freeindex + ctz(allocCache)");
        let how = format!(
            "fast path: ctz(allocCache) = {t}, object freeindex + {t} = {got}; the cache shifts by {}",
            t + 1
        );
        return (got, how);
    }
    let got = lab.refill().expect("the script never exhausts the span");
    let after = lab.state();
    // Which word the cache was loaded from: the word of the object handed out (the cache
    // covers one word).
    let word = got / 64;
    let claimed = after.alloc_cache.count_ones() as usize + 1;
    let how = if before.freeindex >= before.nelems {
        format!(
            "cache empty, scan at the end: collect {}; {} of {} free ≥ refill_min {}: \
             rewind to object 0, load word {word} (claims {claimed} free objects), hand out {got}",
            objects(before.remote_len, "remote free"),
            free_objects(&after) + claimed,
            after.nelems,
            after.refill_min
        )
    } else {
        format!(
            "cache empty: next_free loads word {word} (claims its {claimed} free objects), hands out {got}"
        )
    };
    (got, how)
}

/// One step as run: the state before it, the objects it handed out or freed, the `ctz` of a
/// single fast-path allocation, and the caption.
pub type Ran = (SpanState, Vec<usize>, Option<u32>, String);

/// Runs the script on a fresh span: every step as run ([`Ran`]), then the state after the
/// last step.
pub fn run() -> (Vec<Ran>, SpanState) {
    let mut pages = vec![0u64; 8192 / 8];
    let lab = SpanLab::new(&mut pages, CLASS).expect("a span of class 9");
    let mut steps = vec![];
    for step in SCRIPT {
        let before = lab.state();
        let (marked, ctz, caption) = match step {
            Step::Alloc(1) => {
                let ctz = (before.alloc_cache != 0).then(|| before.alloc_cache.trailing_zeros());
                let (got, how) = alloc_one(&lab);
                (vec![got], ctz, format!("→ {how}"))
            }
            Step::Alloc(n) => {
                let mut got = vec![];
                let mut slow = 0;
                for _ in 0..n {
                    slow += usize::from(lab.state().alloc_cache == 0);
                    got.push(alloc_one(&lab).0);
                }
                let path = if slow == 0 {
                    "all by the fast path".to_string()
                } else {
                    format!("{slow} by a refill")
                };
                (got.clone(), None, format!("→ objects {} ({path})", ranges(&got)))
            }
            Step::Free(objs) => {
                for &i in objs {
                    assert!(lab.free_local(i), "free of a live object {i}");
                }
                let after = lab.state();
                let below = objs.iter().all(|&i| i < before.freeindex);
                (
                    objs.to_vec(),
                    None,
                    format!(
                        "→ alloc bits cleared, allocCount {}{}",
                        after.alloc_count,
                        if below {
                            "; below freeindex, so not handed out before the scan restarts"
                        } else {
                            ""
                        }
                    ),
                )
            }
            Step::FreeRemote(objs) => {
                for &i in objs {
                    assert!(lab.free_remote(i), "remote free of a live object {i}");
                }
                let after = lab.state();
                (
                    objs.to_vec(),
                    None,
                    format!(
                        "→ remote stack: {}; alloc bits stay set until the owner collects them",
                        objects(after.remote_len, "object")
                    ),
                )
            }
        };
        steps.push((before, marked, ctz, caption));
    }
    (steps, lab.state())
}

fn step_text(step: &Step) -> String {
    match step {
        Step::Alloc(1) => "malloc(112)".to_string(),
        Step::Alloc(n) => format!("{n} × malloc(112)"),
        Step::Free(objs) => format!("the owner frees {}", list(objs)),
        Step::FreeRemote(objs) => format!("another thread frees {}", list(objs)),
    }
}

// ---------------------------------------------------------------------------------------
// Drawing

const WIDTH: f64 = 860.0;
const LEFT: f64 = 16.0;
/// x of object 0's cell and of the cache's bit 0.
const X0: f64 = 84.0;
const CELL: f64 = 12.0;
const CELL_H: f64 = 20.0;
const FREE: &str = "#ffffff";
const LIVE: &str = "#4a78b8";
const CLAIMED: &str = "#f6c66b";
const REMOTE: &str = "#9c5bb5";
const PAD: &str = "#c8c8c8";
const PICK: &str = "#c62828";
const ZERO: &str = "#e08a00";

/// What an object's alloc bit means, from the record's other bitmaps.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Kind {
    Free,
    Live,
    Claimed,
    Remote,
    Padding,
}

fn kind(s: &SpanState, i: usize) -> Kind {
    if i >= s.nelems {
        return Kind::Padding;
    }
    let fi = s.freeindex;
    if i >= fi && i - fi < 64 && s.alloc_cache >> (i - fi) & 1 == 1 {
        return Kind::Claimed;
    }
    match (SpanState::bit(&s.alloc_bits, i), SpanState::bit(&s.live, i), SpanState::bit(&s.remote, i)) {
        (false, false, false) => Kind::Free,
        (true, _, true) => Kind::Remote,
        (true, true, false) => Kind::Live,
        (a, l, r) => panic!("object {i}: alloc {a}, live {l}, remote {r}: a state the span never has"),
    }
}

fn cell(out: &mut String, x: f64, y: f64, fill: &str, bit: bool) {
    let _ = writeln!(
        out,
        r##"<rect x="{x:.1}" y="{y:.1}" width="{CELL}" height="{CELL_H}" fill="{fill}" stroke="#555" stroke-width="0.6"/>"##
    );
    let color = if fill == LIVE || fill == REMOTE { "#fff" } else { "#222" };
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" {FONT} font-size="10" fill="{color}" text-anchor="middle">{}</text>"#,
        x + CELL / 2.0,
        y + 14.0,
        u8::from(bit)
    );
}

fn frame_rect(out: &mut String, x: f64, y: f64, w: f64, color: &str, width: f64) {
    let _ = writeln!(
        out,
        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{color}" stroke-width="{width}"/>"#,
        x - 1.0,
        y - 1.0,
        w + 2.0,
        CELL_H + 2.0
    );
}

fn small(out: &mut String, x: f64, y: f64, anchor: &str, s: &str) {
    let _ = writeln!(
        out,
        r##"<text x="{x:.1}" y="{y:.1}" {FONT} font-size="10" fill="#444" text-anchor="{anchor}">{}</text>"##,
        esc(s)
    );
}

/// The bitmap and the cache of state `s`; `marked` framed in red; for a fast-path
/// allocation, `ctz`'s zeros bracketed. Returns the height used.
fn draw_state(out: &mut String, y: f64, s: &SpanState, marked: &[usize], ctz: Option<u32>) -> f64 {
    let words = s.nelems.div_ceil(64);
    let top = y;
    let mut y = y;
    text(out, LEFT, y + 14.0, 12, true, "allocBits: one bit per object, 1 = not free");
    y += 16.0;
    for w in 0..words {
        let row_y = y + 16.0;
        small(out, X0 - 6.0, row_y + 14.0, "end", &format!("word {w}"));
        for b in 0..64 {
            let i = w * 64 + b;
            if b % 8 == 0 {
                small(out, X0 + b as f64 * CELL + 1.0, row_y - 3.0, "start", &i.to_string());
            }
            let fill = match kind(s, i) {
                Kind::Free => FREE,
                Kind::Live => LIVE,
                Kind::Claimed => CLAIMED,
                Kind::Remote => REMOTE,
                Kind::Padding => PAD,
            };
            cell(out, X0 + b as f64 * CELL, row_y, fill, SpanState::bit(&s.alloc_bits, i));
        }
        for &i in marked.iter().filter(|&&i| i / 64 == w) {
            frame_rect(out, X0 + (i % 64) as f64 * CELL, row_y, CELL, PICK, 2.5);
        }
        if s.freeindex / 64 == w || (w + 1 == words && s.freeindex >= words * 64) {
            let x = X0 + (s.freeindex.min(words * 64 - 1) % 64) as f64 * CELL + CELL / 2.0;
            let ty = row_y + CELL_H + 1.0;
            let _ = writeln!(out, r##"<path d="M{x:.1},{ty:.1} l-5,8 h10 z" fill="#222"/>"##);
            small(out, x + 7.0, ty + 9.0, "start", &format!("freeindex = {}", s.freeindex));
        }
        y += 50.0;
    }
    // The cache: bit 0 on the left.
    text(
        out,
        LEFT,
        y + 14.0,
        12,
        true,
        "allocCache: 64 bits, bit k = object freeindex + k, 1 = free (claimed)",
    );
    y += 16.0;
    let row_y = y + 16.0;
    small(out, X0 - 6.0, row_y + 14.0, "end", "bit");
    for k in 0..64 {
        if k % 8 == 0 {
            small(out, X0 + k as f64 * CELL + 1.0, row_y - 3.0, "start", &k.to_string());
        }
        let set = s.alloc_cache >> k & 1 == 1;
        cell(out, X0 + k as f64 * CELL, row_y, if set { CLAIMED } else { FREE }, set);
    }
    let note = if s.alloc_cache == 0 {
        "empty: the next allocation refills the cache".to_string()
    } else {
        format!("bit 0 = object {}", s.freeindex)
    };
    small(out, X0, row_y + CELL_H + 12.0, "start", &note);
    if let Some(t) = ctz {
        let t = t as f64;
        if t > 0.0 {
            let _ = writeln!(
                out,
                r#"<rect x="{X0:.1}" y="{:.1}" width="{:.1}" height="{CELL_H}" fill="{ZERO}" fill-opacity="0.35"/>"#,
                row_y,
                t * CELL
            );
        }
        frame_rect(out, X0 + t * CELL, row_y, CELL, PICK, 2.5);
        small(
            out,
            X0 + 100.0,
            row_y + CELL_H + 12.0,
            "start",
            &format!("ctz = {}: the first set bit is bit {0}, object {}", t as u32, s.freeindex + t as usize),
        );
    }
    row_y + CELL_H + 16.0 - top
}

fn legend(out: &mut String, y: f64) {
    let items = [
        (FREE, "0: free"),
        (LIVE, "1: handed out"),
        (CLAIMED, "1: claimed by allocCache"),
        (REMOTE, "1: freed remotely, on the remote stack"),
        (PAD, "1: padding past object 72"),
    ];
    let mut x = LEFT;
    for (fill, label) in items {
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{fill}" stroke="#555" stroke-width="0.6"/>"##,
            y - 10.0
        );
        small(out, x + 16.0, y, "start", label);
        x += 22.0 + 5.6 * label.len() as f64;
    }
}

/// Splits `s` into lines of at most `max` characters at spaces.
fn wrap(s: &str, max: usize) -> Vec<String> {
    let mut lines: Vec<String> = vec![];
    for word in s.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= max => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

fn svg(height: f64, title: &str, body: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n{body}</svg>\n",
        esc(title)
    )
}

fn summary(s: &SpanState) -> String {
    let cache = if s.alloc_cache == 0 {
        "allocCache empty".to_string()
    } else {
        let objs: Vec<usize> =
            (0..64).filter(|k| s.alloc_cache >> k & 1 == 1).map(|k| s.freeindex + k).collect();
        format!("allocCache holds objects {}", ranges(&objs))
    };
    format!(
        "freeindex {}, allocCount {} of {}, {cache}, remote stack {}",
        s.freeindex, s.alloc_count, s.nelems, s.remote_len
    )
}

/// A frame: `s` is the state before the step (`when` says so in the alt text).
fn draw(
    heading: &str,
    caption: &str,
    when: &str,
    s: &SpanState,
    marked: &[usize],
    ctz: Option<u32>,
) -> (String, String) {
    let mut body = String::new();
    text(&mut body, LEFT, 22.0, 15, true, heading);
    let mut y = 42.0;
    for line in wrap(caption, 112).iter().chain(wrap(&summary(s), 112).iter()) {
        text(&mut body, LEFT, y, 12, false, line);
        y += 17.0;
    }
    let h = draw_state(&mut body, y - 9.0, s, marked, ctz);
    let y = y - 9.0 + h + 20.0;
    legend(&mut body, y);
    let alt = format!("{heading}. {caption}. {when}: {}.", summary(s));
    (alt, svg(y + 12.0, heading, &body))
}

/// Every frame of the span's step-through.
pub fn frames() -> Vec<Frame> {
    let (steps, last) = run();
    let n = steps.len() + 1;
    let mut frames = vec![];
    for (k, ((before, marked, ctz, caption), step)) in steps.iter().zip(SCRIPT.iter()).enumerate() {
        let heading = format!("Step {} of {n}: {}", k + 1, step_text(step));
        let (alt, svg) = draw(&heading, caption, "Before the step", before, marked, *ctz);
        frames.push(Frame { dir: "span", name: format!("step-{:02}.svg", k + 1), alt, svg });
    }
    let heading = format!("Step {n} of {n}: after the script");
    let free: Vec<usize> = (0..last.nelems).filter(|&i| !SpanState::bit(&last.alloc_bits, i)).collect();
    let caption = format!(
        "free, waiting for the scan to reach them: {}; claimed by the cache: {}",
        list(&free),
        objects(last.alloc_cache.count_ones() as usize, "object")
    );
    let (alt, svg) = draw(&heading, &caption, "The span", &last, &[], None);
    frames.push(Frame { dir: "span", name: format!("step-{n:02}.svg"), alt, svg });
    frames
}
