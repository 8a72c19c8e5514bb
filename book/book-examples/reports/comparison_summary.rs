//! The summary plot of the chapter "Comparison": for each allocator of the committed harness
//! run (`book/src/results/results.json`), the geometric mean of its wall-time ratios to
//! mimalloc against the geometric mean of its peak-RSS ratios, one point per allocator, over
//! the workloads that every allocator completed (so that each point averages the same
//! workloads), `tiered` highlighted.
//!
//! Run: `cargo run -p book-examples --example comparison_summary` (writes
//! `book/src/img/comparison-summary.svg` and prints the chapter's `<img>` with its alt text;
//! `tests/frames.rs` checks both against the committed results).

use core::fmt::Write;

use serde_json::Value;

/// One allocator's point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The allocator's name in the results.
    pub name: String,
    /// Whether it is one of stratalloc's strategies (else an anchor: mimalloc, the system
    /// allocator, talc, linked_list_allocator).
    pub strategy: bool,
    /// Geometric mean of the wall-time ratios to mimalloc.
    pub wall: f64,
    /// Geometric mean of the peak-RSS ratios to mimalloc.
    pub rss: f64,
}

/// The summary of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// One point per allocator, in the results' order.
    pub points: Vec<Point>,
    /// The workloads every allocator completed (the means are over these).
    pub workloads: Vec<String>,
    /// The workloads left out (some allocator failed, timed out or did not run them).
    pub left_out: Vec<String>,
    /// The run's date, as the results record it.
    pub date: String,
    /// The allocator every ratio is taken against (mimalloc unless the run chose another).
    pub anchor: String,
}

/// The committed results.
pub fn results_json() -> String {
    let path = format!("{}/../src/results/results.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The summary of the results in `json` (the harness's `results.json`).
pub fn summary(json: &str) -> Summary {
    let v: Value = serde_json::from_str(json).expect("results.json is JSON");
    let names: Vec<(String, bool)> = v["allocators"]
        .as_array()
        .expect("allocators")
        .iter()
        .map(|a| (a["name"].as_str().expect("name").to_string(), a["kind"].as_str() == Some("strategy")))
        .collect();
    let workloads: Vec<String> = v["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .map(|w| w["name"].as_str().expect("name").to_string())
        .collect();
    let results = v["results"].as_array().expect("results");
    // The harness writes `wall_ratio_to_anchor` and names the anchor; runs before it could
    // choose one wrote `wall_ratio_to_mimalloc`.
    let anchor = v["anchor"].as_str().unwrap_or("mimalloc").to_string();
    let ratio = |w: &str, a: &str, key: &str| -> Option<f64> {
        let r = results.iter().find(|r| r["workload"] == w && r["allocator"] == a)?;
        if r["verdict"] != "ok" {
            return None;
        }
        let old = key.replace("anchor", "mimalloc");
        r.get(key).or_else(|| r.get(&old))?.as_f64().filter(|x| *x > 0.0)
    };
    let complete = |w: &String| {
        names.iter().all(|(a, _)| {
            ratio(w, a, "wall_ratio_to_anchor").is_some() && ratio(w, a, "rss_ratio_to_anchor").is_some()
        })
    };
    let (done, left_out): (Vec<String>, Vec<String>) = workloads.into_iter().partition(complete);
    assert!(!done.is_empty(), "no workload that every allocator completed");
    let geomean = |a: &str, key: &str| {
        let sum: f64 = done.iter().map(|w| ratio(w, a, key).expect("complete").ln()).sum();
        (sum / done.len() as f64).exp()
    };
    let points = names
        .iter()
        .map(|(a, strategy)| Point {
            name: a.clone(),
            strategy: *strategy,
            wall: geomean(a, "wall_ratio_to_anchor"),
            rss: geomean(a, "rss_ratio_to_anchor"),
        })
        .collect();
    let date = v["machine"]["date_utc"].as_str().unwrap_or("").to_string();
    Summary { points, workloads: done, left_out, date, anchor }
}

/// The plot's alt text: every point's two means.
pub fn alt(s: &Summary) -> String {
    let mut points: Vec<&Point> = s.points.iter().collect();
    points.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let each: Vec<String> =
        points.iter().map(|p| format!("{} {:.2} and {:.2}", p.name, p.wall, p.rss)).collect();
    format!(
        "A scatter plot, one point per allocator: the geometric mean of its wall-time ratios to \
         {} across, of its peak-RSS ratios up, both on logarithmic axes, over the {} \
         workloads every allocator completed. Time and memory, from the fastest: {}.",
        s.anchor,
        s.workloads.len(),
        each.join("; ")
    )
}

/// Width and height of the plot (small, so that its text stays readable on a phone).
const W: f64 = 500.0;
const H: f64 = 410.0;

/// The chapter's `<img>` element for the plot.
pub fn img(s: &Summary) -> String {
    format!(r#"<img src="img/comparison-summary.svg" alt="{}" width="{W}">"#, alt(s))
}

/// Tick values within `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let steps = [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0];
    (-2..=2).flat_map(|k| steps.map(|m| m * 10f64.powi(k))).filter(|t| (lo..=hi).contains(t)).collect()
}

fn tick_text(t: f64) -> String {
    let s = format!("{t:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A label's box, for the placement's overlap test.
#[derive(Copy, Clone)]
struct Boxed {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Boxed {
    fn overlaps(&self, o: &Boxed) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

/// Distance from point `p` to the segment `a`-`b`.
fn near_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 { 0.0 } else { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0) };
    ((a.0 + t * dx - p.0).powi(2) + (a.1 + t * dy - p.1).powi(2)).sqrt()
}

/// The SVG.
pub fn plot(s: &Summary) -> String {
    let (left, right, top, bottom) = (56.0, 16.0, 70.0, 50.0);
    let (pw, ph) = (W - left - right, H - top - bottom);
    let lo_x = s.points.iter().map(|p| p.wall).fold(1.0f64, f64::min) / 1.15;
    let hi_x = s.points.iter().map(|p| p.wall).fold(1.0f64, f64::max) * 1.25;
    let lo_y = s.points.iter().map(|p| p.rss).fold(1.0f64, f64::min) / 1.25;
    let hi_y = s.points.iter().map(|p| p.rss).fold(1.0f64, f64::max) * 1.12;
    let x = |v: f64| left + pw * (v.ln() - lo_x.ln()) / (hi_x.ln() - lo_x.ln());
    let y = |v: f64| top + ph * (1.0 - (v.ln() - lo_y.ln()) / (hi_y.ln() - lo_y.ln()));
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
         role=\"img\" aria-label=\"Time against memory, one point per allocator\" \
         font-family=\"DejaVu Sans, Verdana, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    );
    let _ = writeln!(
        out,
        r##"<text x="12" y="22" font-size="15" font-weight="bold" fill="#222">Time against memory, ratios to {}</text>"##,
        s.anchor
    );
    let _ = writeln!(
        out,
        r##"<text x="12" y="40" font-size="12" fill="#444">geometric means over the {} workloads all completed; lower left is better</text>"##,
        s.workloads.len()
    );
    for t in ticks(lo_x, hi_x) {
        let _ = writeln!(
            out,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{1:.1}" stroke="#e4e4e4"/><text x="{0:.1}" y="{2:.1}" font-size="12" fill="#444" text-anchor="middle">{3}</text>"##,
            x(t),
            top + ph,
            top + ph + 16.0,
            tick_text(t)
        );
    }
    for t in ticks(lo_y, hi_y) {
        let _ = writeln!(
            out,
            r##"<line x1="{left}" x2="{0:.1}" y1="{1:.1}" y2="{1:.1}" stroke="#e4e4e4"/><text x="{2:.1}" y="{3:.1}" font-size="12" fill="#444" text-anchor="end">{4}</text>"##,
            left + pw,
            y(t),
            left - 6.0,
            y(t) + 4.0,
            tick_text(t)
        );
    }
    // mimalloc's lines.
    let _ = writeln!(
        out,
        r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{1:.1}" stroke="#888" stroke-dasharray="4 3"/><line x1="{left}" x2="{2:.1}" y1="{3:.1}" y2="{3:.1}" stroke="#888" stroke-dasharray="4 3"/>"##,
        x(1.0),
        top + ph,
        left + pw,
        y(1.0)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#444" text-anchor="middle">wall time / {}'s (log)</text>"##,
        left + pw / 2.0,
        H - 12.0,
        s.anchor
    );
    let _ = writeln!(
        out,
        r##"<text transform="translate(16 {:.1}) rotate(-90)" font-size="12" fill="#444" text-anchor="middle">peak RSS / {}'s (log)</text>"##,
        top + ph / 2.0,
        s.anchor
    );
    // Points first (labels must not cover them), tiered last so it is on top.
    let mut order: Vec<&Point> = s.points.iter().collect();
    order.sort_by_key(|p| p.name == "tiered");
    let mut taken: Vec<Boxed> = vec![];
    for p in &order {
        let (cx, cy) = (x(p.wall), y(p.rss));
        taken.push(Boxed { x0: cx - 6.0, y0: cy - 6.0, x1: cx + 6.0, y1: cy + 6.0 });
        let _ = if p.name == "tiered" {
            writeln!(out, r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="6.5" fill="#c62828" stroke="#fff"/>"##)
        } else if p.strategy {
            writeln!(out, r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="4.5" fill="#4a78b8"/>"##)
        } else {
            writeln!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="#fff" stroke="#555" stroke-width="1.5"/>"##,
                cx - 4.5,
                cy - 4.5
            )
        };
    }
    // Labels: the first free place among a few around the point, then farther out with a
    // leader line.
    let bounds = Boxed { x0: left + 2.0, y0: top + 2.0, x1: left + pw - 2.0, y1: top + ph - 2.0 };
    // Tiered's label first, then from left to right.
    let mut by_x: Vec<&Point> = order.clone();
    by_x.sort_by(|a, b| (a.name != "tiered").cmp(&(b.name != "tiered")).then(a.wall.total_cmp(&b.wall)));
    for p in by_x {
        let (cx, cy) = (x(p.wall), y(p.rss));
        let tiered = p.name == "tiered";
        let size = if tiered { 14.0 } else { 13.0 };
        let tw = p.name.len() as f64 * size * 0.6;
        let th = size;
        let mut spots = vec![];
        for d in (0..10).map(|k| f64::from(k) * 16.0) {
            spots.extend([
                (cx + 9.0, cy - 5.0 - d, "start"),
                (cx + 9.0, cy + 5.0 + th + d, "start"),
                (cx - 9.0, cy - 5.0 - d, "end"),
                (cx - 9.0, cy + 5.0 + th + d, "end"),
            ]);
        }
        // The first spot inside the plot, clear of other points' leaders and of labels and
        // points already placed; failing that, the first inside one clear of labels; failing
        // that, the first inside one (a crowded plot still gets every label).
        let fits = |(tx, ty, anchor): (f64, f64, &'static str), strict: u8| {
            let x0 = if anchor == "end" { tx - tw } else { tx };
            let b = Boxed { x0: x0 - 2.0, y0: ty - th, x1: x0 + tw + 2.0, y1: ty + 3.0 };
            let inside = b.x0 >= bounds.x0 && b.x1 <= bounds.x1 && b.y0 >= bounds.y0 && b.y1 <= bounds.y1;
            // A leader must not pass by another point.
            let ly = if ty < cy { ty + 2.0 } else { ty - th };
            // (A point almost on this one, as first and next fit's, cannot be avoided.)
            let clear = strict < 2
                || s.points
                    .iter()
                    .map(|q| (x(q.wall), y(q.rss)))
                    .all(|q| (q.0 - cx).hypot(q.1 - cy) < 10.0 || near_segment(q, (cx, cy), (tx, ly)) > 8.0);
            let free = strict < 1 || !taken.iter().any(|t| t.overlaps(&b));
            (inside && clear && free).then_some((tx, ty, anchor, b))
        };
        let place =
            [2, 1, 0].into_iter().find_map(|strict| spots.iter().find_map(|&spot| fits(spot, strict)));
        let (tx, ty, anchor, b) = place.unwrap_or_else(|| {
            let b = Boxed { x0: cx + 7.0, y0: cy - 5.0 - th, x1: cx + 11.0 + tw, y1: cy - 2.0 };
            (cx + 9.0, cy - 5.0, "start", b)
        });
        taken.push(b);
        let (color, weight) = if tiered { ("#c62828", " font-weight=\"bold\"") } else { ("#222", "") };
        if (tx, ty) != (cx + 9.0, cy - 5.0) {
            // Any label but one just right of and above its point gets a leader from the
            // point to the label's near corner.
            let ly = if ty < cy { ty + 2.0 } else { ty - th };
            let _ = writeln!(
                out,
                r##"<line x1="{cx:.1}" y1="{cy:.1}" x2="{tx:.1}" y2="{ly:.1}" stroke="#999" stroke-width="0.8"/>"##
            );
        }
        let _ = writeln!(
            out,
            r##"<text x="{tx:.1}" y="{ty:.1}" font-size="{size}"{weight} fill="{color}" text-anchor="{anchor}">{}</text>"##,
            p.name
        );
    }
    // Legend.
    let ly = 60.0;
    let _ = writeln!(
        out,
        r##"<circle cx="{:.1}" cy="{:.1}" r="4.5" fill="#4a78b8"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#444">stratalloc strategy</text><rect x="{:.1}" y="{:.1}" width="9" height="9" fill="#fff" stroke="#555" stroke-width="1.5"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#444">other allocator</text>"##,
        16.5,
        ly - 4.0,
        25.0,
        ly,
        172.0,
        ly - 8.5,
        185.0,
        ly
    );
    out.push_str("</svg>\n");
    out
}
