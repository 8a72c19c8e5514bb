//! The plot of the chapter "Why size classes": for every request size from 16 B to 32 KiB,
//! the share of its slot that rounding up to `Tiered`'s size class leaves unused.
//!
//! Run: `cargo run --release -p book-examples --example size_class_waste` (writes
//! `book/src/img/size-class-waste.svg` and prints the chapter's `<img>` with its alt text;
//! `tests/frames.rs` checks both).

use core::fmt::Write;

use stratalloc::strategies::tiered::sizeclass::{CLASS_BYTES, MAX_SMALL_BYTES, class_of};

/// Smallest request size plotted (Go bumps smaller ones into its tiny allocator; `Tiered`
/// gives each a whole 8 or 16 B object).
const MIN_BYTES: usize = 16;

/// Percent of the slot a request of `size` bytes leaves unused.
pub fn waste(size: usize) -> f64 {
    let slot = CLASS_BYTES[class_of(size)] as f64;
    100.0 * (slot - size as f64) / slot
}

/// The worst request size and its waste; the share of sizes that waste at most 12.5 %.
fn summary() -> ((usize, f64), f64) {
    let worst = (MIN_BYTES..=MAX_SMALL_BYTES)
        .map(|s| (s, waste(s)))
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let n = (MAX_SMALL_BYTES - MIN_BYTES + 1) as f64;
    let low = (MIN_BYTES..=MAX_SMALL_BYTES).filter(|&s| waste(s) <= 12.5).count() as f64;
    (worst, 100.0 * low / n)
}

/// The plot's alt text.
pub fn alt() -> String {
    let ((size, worst), low) = summary();
    format!(
        "A sawtooth over request sizes from 16 B to 32 KiB on a logarithmic axis: the waste \
         drops to zero at each class size and jumps after it. The worst request is {size} B, \
         which wastes {worst:.1} % of its slot; {low:.1} % of the sizes waste at most 12.5 %."
    )
}

/// The chapter's `<img>` element for the plot.
pub fn img() -> String {
    format!(r#"<img src="img/size-class-waste.svg" alt="{}" width="860">"#, alt())
}

/// The SVG.
pub fn plot() -> String {
    let (w, h) = (860.0, 320.0);
    let (left, right, top, bottom) = (56.0, 20.0, 40.0, 52.0);
    let ymax = 35.0;
    let lmin = (MIN_BYTES as f64).log2();
    let lmax = (MAX_SMALL_BYTES as f64).log2();
    let x = |s: f64| left + (w - left - right) * (s.log2() - lmin) / (lmax - lmin);
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / ymax);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" \
         role=\"img\" aria-label=\"Rounding waste per request size\" \
         font-family=\"DejaVu Sans, Verdana, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    );
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="24" font-size="15" font-weight="bold" fill="#222">Share of the slot left unused by a request of each size (Tiered's size classes)</text>"##
    );
    for k in 0..=7 {
        let v = 5.0 * k as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#444" text-anchor="end">{} %</text>"##,
            w - right,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0,
            5 * k
        );
    }
    for e in 4..=15 {
        let b = (1usize << e) as f64;
        let label = if e >= 10 { format!("{} KiB", 1 << (e - 10)) } else { format!("{} B", 1 << e) };
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{1:.1}" stroke="#eee"/><text x="{0:.1}" y="{2:.1}" font-size="12" fill="#444" text-anchor="middle">{label}</text>"##,
            x(b),
            h - bottom,
            h - bottom + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#444" text-anchor="middle">request size (logarithmic)</text>"##,
        (left + w - right) / 2.0,
        h - 10.0
    );
    // Within a class the waste falls smoothly; a few points per class draw the curve.
    let mut points = vec![];
    let mut lo = MIN_BYTES;
    while lo <= MAX_SMALL_BYTES {
        let slot = CLASS_BYTES[class_of(lo)] as usize;
        for k in 0..=4 {
            let size = lo + (slot - lo) * k / 4;
            points.push(format!("{:.1},{:.1}", x(size as f64), y(waste(size))));
        }
        lo = slot + 1;
    }
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>"##,
        points.join(" ")
    );
    let ((size, worst), _) = summary();
    let _ = writeln!(
        s,
        r##"<circle cx="{0:.1}" cy="{1:.1}" r="4" fill="#c62828"/><text x="{2:.1}" y="{3:.1}" font-size="12" fill="#c62828">{size} B: {worst:.1} %</text>"##,
        x(size as f64),
        y(worst),
        x(size as f64) + 8.0,
        y(worst) + 4.0
    );
    s.push_str("</svg>\n");
    s
}
