//! Fragmentation over one run, for each free-list policy, for the book's chapter
//! "Free-list allocation".
//!
//! Run: `cargo run --release -p book-examples --example fragmentation` (writes
//! `book/src/measured/fragmentation.txt` and `book/src/img/policy/fragmentation.svg`;
//! `tests/frames.rs` checks that both are what the code draws now).
//!
//! The four policies, each over its own `Fixed` region, run one deterministic sequence of
//! 30,000 requests and frees (a fixed-seed generator; the sequence does not depend on the
//! addresses the heaps return) in three phases: a growth of small objects, a balanced churn
//! of small and medium ones, and a phase with more frees than allocations in which larger
//! objects arrive. Every 250
//! operations the heap's walker measures the *footprint*: in each chunk, the bytes from its
//! start to the end of its highest used block, summed. Footprint over live bytes (the sizes
//! the program asked for and has not freed), minus one, is what the heap spends beyond the
//! program's data at that moment: headers and rounding, and the free blocks between used
//! ones, the part that differs between policies.

use core::alloc::Layout;
use core::fmt::Write;
use core::ptr::NonNull;

use stratalloc::strategies::freelist::{FreeList, Placement};
use stratalloc::{BestFit, FirstFit, Fixed, Heap, NextFit, SegregatedFit};

const REGION_BYTES: usize = 32 << 20;
/// Alignment of the region: the live-start map's tables and leaves are keyed by address (1 MiB
/// leaves, tables per 1 GiB), so where the region lies decides how much map memory is cut
/// from it between the chunks. Aligned to 1 GiB, the run is the same on every machine.
const REGION_ALIGN: usize = 1 << 30;
const OPS: usize = 30_000;
const SAMPLE_EVERY: usize = 250;
const PHASE_OPS: usize = 10_000;

/// xorshift64*: a fixed sequence, the same for every policy.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Phase of operation `op`: (percent of operations that allocate, smallest size, largest).
fn phase(op: usize) -> (u64, u64, u64) {
    match op / PHASE_OPS {
        0 => (75, 16, 256),
        1 => (50, 16, 1024),
        _ => (40, 256, 4096),
    }
}

/// One sample: operation count, live bytes (the sum of the sizes requested), footprint.
type Sample = (usize, usize, usize);

fn footprint<X: Placement>(heap: &FreeList<X>) -> usize {
    let mut chunks: Vec<(usize, usize)> = vec![]; // (chunk, highest used end)
    heap.walk(|b| {
        let end = if b.free { b.chunk } else { b.addr + b.bytes };
        match chunks.iter_mut().find(|(c, _)| *c == b.chunk) {
            Some((_, e)) => *e = (*e).max(end),
            None => chunks.push((b.chunk, end)),
        }
    });
    chunks.iter().map(|(c, e)| e - c).sum()
}

fn run<X: Placement>() -> Vec<Sample> {
    let layout = Layout::from_size_align(REGION_BYTES, REGION_ALIGN).expect("layout");
    // SAFETY: the layout has a non-zero size.
    let base = unsafe { std::alloc::alloc(layout) };
    assert!(!base.is_null(), "no memory for the region");
    // SAFETY: the region was just allocated, is used by this source only, and is freed below
    // after the heap has been dropped.
    let heap: Heap<FreeList<X>, Fixed> =
        Heap::from_parts(FreeList::new(), unsafe { Fixed::new(base, REGION_BYTES) });
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut live: Vec<(NonNull<u8>, Layout)> = vec![];
    let mut samples = vec![];
    let mut requested = 0;
    for op in 0..OPS {
        let (alloc_pct, lo, hi) = phase(op);
        if live.is_empty() || rng.below(100) < alloc_pct {
            let size = (lo + rng.below(hi - lo + 1)) as usize;
            let l = Layout::from_size_align(size, 8).expect("layout");
            live.push((heap.alloc_layout(l).expect("the region holds the run"), l));
            requested += size;
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let (p, l) = live.swap_remove(i);
            requested -= l.size();
            // SAFETY: `p` is a live block of `heap`, allocated with `l`, freed once.
            unsafe { heap.dealloc_layout(p, l) };
        }
        if (op + 1) % SAMPLE_EVERY == 0 {
            // SAFETY: the heap's own source; no other thread uses it.
            unsafe { heap.check() }.expect("the heap's invariants");
            samples.push((op + 1, requested, footprint(heap.strategy())));
        }
    }
    drop(heap);
    // SAFETY: allocated above with `layout`; the heap that used it is gone.
    unsafe { std::alloc::dealloc(base, layout) };
    samples
}

fn runs() -> [(&'static str, &'static str, Vec<Sample>); 4] {
    [
        ("FirstFit", "#1f77b4", run::<<FirstFit as Place>::X>()),
        ("NextFit", "#d62728", run::<<NextFit as Place>::X>()),
        ("BestFit", "#2ca02c", run::<<BestFit as Place>::X>()),
        ("SegregatedFit", "#9467bd", run::<<SegregatedFit as Place>::X>()),
    ]
}

trait Place {
    type X: Placement;
}

impl<X: Placement> Place for FreeList<X> {
    type X = X;
}

fn loss(s: &Sample) -> f64 {
    s.2 as f64 / s.1 as f64 - 1.0
}

/// The report (`measured/fragmentation.txt`) and the plot (`img/policy/fragmentation.svg`).
pub fn report_and_plot() -> (String, String) {
    let runs = runs();
    let mut out = String::new();
    let _ =
        writeln!(out, "# Fragmentation over one run: footprint / live bytes - 1, in percent (live bytes:");
    let _ = writeln!(out, "# the sizes requested and not freed, the same for every policy at every step)");
    let _ = writeln!(out, "# (footprint: per chunk, start to the end of the highest used block)");
    let _ = writeln!(out, "# command: cargo run --release -p book-examples --example fragmentation");
    let _ = writeln!(out, "# {OPS} operations, fixed seed: ops 0-9,999 grow (75 % allocations, 16-256 B),");
    let _ = writeln!(
        out,
        "# 10,000-19,999 churn (50 %, 16-1,024 B), 20,000-29,999 larger objects (40 %, 256-4,096 B)"
    );
    let _ = writeln!(out);
    let _ = write!(out, "{:>8} {:>10}", "ops", "live KiB");
    for (name, _, _) in &runs {
        let _ = write!(out, " {name:>14}");
    }
    let _ = writeln!(out);
    for i in (9..runs[0].2.len()).step_by(10) {
        let s = runs[0].2[i];
        let _ = write!(out, "{:>8} {:>10}", s.0, s.1 / 1024);
        for (_, _, samples) in &runs {
            assert_eq!(samples[i].1, s.1, "every policy holds the same live bytes at the same step");
            let _ = write!(out, " {:>13.1}%", 100.0 * loss(&samples[i]));
        }
        let _ = writeln!(out);
    }
    let _ = write!(out, "{:>19}", "peak");
    for (_, _, samples) in &runs {
        let peak = samples.iter().map(loss).fold(0.0, f64::max);
        let _ = write!(out, " {:>13.1}%", 100.0 * peak);
    }
    let _ = writeln!(out);
    (out, plot(&runs))
}

fn plot(runs: &[(&str, &str, Vec<Sample>)]) -> String {
    let (w, h) = (860.0, 360.0);
    let (left, right, top, bottom) = (64.0, 150.0, 40.0, 48.0);
    let ymax = runs.iter().flat_map(|r| r.2.iter().map(loss)).fold(0.0, f64::max);
    let ymax = (ymax * 10.0).ceil() / 10.0; // a multiple of 10 %
    let x = |op: usize| left + (w - left - right) * op as f64 / OPS as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / ymax);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" \
         role=\"img\" aria-label=\"Fragmentation over one run for each free-list policy\" \
         font-family=\"DejaVu Sans, Verdana, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    );
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="24" font-size="15" font-weight="bold" fill="#222">Footprint over live bytes, minus one: what each heap spends beyond the live data</text>"##
    );
    let steps = (ymax * 10.0).round() as usize;
    for k in 0..=steps {
        let v = k as f64 / 10.0;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#444" text-anchor="end">{} %</text>"##,
            w - right,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0,
            k * 10
        );
    }
    for (i, label) in ["grow", "churn", "larger"].iter().enumerate() {
        let (x0, x1) = (x(i * PHASE_OPS), x((i + 1) * PHASE_OPS));
        if i > 0 {
            let _ = writeln!(
                s,
                r##"<line x1="{x0:.1}" x2="{x0:.1}" y1="{top}" y2="{:.1}" stroke="#999" stroke-dasharray="4 3"/>"##,
                h - bottom
            );
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#444" text-anchor="middle">{label}: ops {}–{}</text>"##,
            (x0 + x1) / 2.0,
            h - bottom + 18.0,
            i * PHASE_OPS,
            (i + 1) * PHASE_OPS
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#444" text-anchor="middle">operations (a sample every {SAMPLE_EVERY})</text>"##,
        (left + w - right) / 2.0,
        h - 8.0
    );
    for (i, (name, color, samples)) in runs.iter().enumerate() {
        let points: Vec<String> =
            samples.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(loss(p)))).collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            points.join(" ")
        );
        let ly = top + 20.0 + 22.0 * i as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}" font-size="13" fill="#222">{name}</text>"##,
            w - right + 12.0,
            w - right + 36.0,
            w - right + 42.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}
