//! What `Tiered` gives back to the OS after a large heap is freed, for the book's chapter
//! "Freeing and scavenging": a table (`book/src/measured/scavenge.txt`) and a plot of Ready
//! memory against the scavenger's goal over the same run (`book/src/img/scavenge.svg`).
//!
//! Run: `cargo run --release -p book-examples --example scavenge > book/src/measured/scavenge.txt`
//! (also writes the plot and prints the chapter's `<img>` and caption on stderr).
//!
//! Allocates 256 MiB in 1 MiB large objects and 256 MiB in 128 B small objects, frees it all
//! (large first), then does a little further work (100,000 small allocations and frees that
//! the thread's cache serves without a refill from the central lists, then four large ones),
//! then calls `trim`. After each phase the table gives what `Tracked` counts as Ready
//! (resident) and how many `unused` calls (MADV_DONTNEED) were made, so it shows the
//! scavenger's bounded steps on large frees, on the frees a cache counts, and `trim`.
//!
//! Within each phase the run is sampled [`SAMPLES_PER_PHASE`] times, evenly by the bytes the
//! phase allocates and frees (never by time): Ready memory, the pages in use, and the
//! scavenger's goal, the most Ready memory its bounded steps leave ([`Sample::goal`], from
//! `Tiered::scavenger_view`). Deterministic: every figure is a count (`Tracked`'s, the page
//! heap's), none is a measurement of the machine.

use core::fmt::Write;

use core::alloc::{GlobalAlloc, Layout};
use stratalloc::{Heap, Mmap, Op, Tiered, Tracked};

type H = Heap<Tiered, Tracked<Mmap>>;

const MIB: usize = 1 << 20;
/// The large objects' size, and the number of them.
const LARGE: usize = MIB;
const LARGES: usize = 256;
/// The small objects' size, and the number of them (256 MiB).
const SMALL: usize = 128;
const SMALLS: usize = 256 * MIB / SMALL;
/// The further small work: `ROUNDS` rounds of `BATCH` allocations, then their frees.
const ROUNDS: usize = 1000;
const BATCH: usize = 100;
/// The further large work: allocations, then their frees.
const MORE_LARGES: usize = 4;

/// Samples taken in each phase (fewer in a phase of fewer operations: one at most per
/// operation).
pub const SAMPLES_PER_PHASE: usize = 64;

/// The phases, as the table's rows name them (the state after each), and as the plot's
/// bands name them (two short lines).
pub const PHASES: [(&str, &str); 6] = [
    ("after allocating 256 MiB large + 256 MiB small", "allocate"),
    ("after freeing the large objects", "free large"),
    ("after freeing the small objects", "free small"),
    ("after 100,000 more small alloc/free pairs", "small work"),
    ("after 4 more large alloc/free pairs", "large work"),
    ("after trim()", "trim()"),
];

/// The bytes each phase allocates plus frees (`trim` does neither; it counts as one byte so
/// that it has a width).
pub const PHASE_WORK: [usize; 6] = [
    LARGES * LARGE + SMALLS * SMALL,
    LARGES * LARGE,
    SMALLS * SMALL,
    2 * ROUNDS * BATCH * SMALL,
    2 * MORE_LARGES * LARGE,
    1,
];

/// The heap at one moment of the run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Index into [`PHASES`].
    pub phase: usize,
    /// Bytes of the phase's work done, of [`PHASE_WORK`]`[phase]`.
    pub done: usize,
    /// What `Tracked` counts as Ready: every page the heap holds resident (spans, retained
    /// free pages, metadata).
    pub ready: usize,
    /// Pages of live spans.
    pub inuse: usize,
    /// Free Ready pages (what the scavenger may give back).
    pub retained: usize,
    /// Retained bytes the scavenger's target allows.
    pub target: usize,
}

impl Sample {
    /// The scavenger's goal for Ready memory: the most that its bounded steps leave, Ready
    /// memory with the retained pages brought to the target (above `ready` when retained
    /// memory is under the target: then a step gives nothing back).
    pub fn goal(&self) -> usize {
        self.ready - self.retained + self.target
    }
}

/// The table and the samples of one run.
pub struct Run {
    /// The table, as the example prints it and `measured/` commits it.
    pub report: String,
    /// The samples, in the order taken.
    pub samples: Vec<Sample>,
}

/// Takes the samples of the run as it goes.
struct Recorder<'h> {
    h: &'h H,
    phase: usize,
    done: usize,
    /// Samples taken in this phase so far.
    taken: usize,
    samples: Vec<Sample>,
}

impl Recorder<'_> {
    fn sample(&mut self) {
        let view = self.h.strategy().scavenger_view().expect("the heap has allocated");
        self.samples.push(Sample {
            phase: self.phase,
            done: self.done,
            ready: self.h.source().counts().ready,
            inuse: view.inuse_bytes,
            retained: view.retained_bytes,
            target: view.target_bytes,
        });
    }

    /// One operation of `bytes` done in this phase: a sample when the work passes the next
    /// of the phase's [`SAMPLES_PER_PHASE`] even marks.
    fn op(&mut self, bytes: usize) {
        self.done += bytes;
        let work = PHASE_WORK[self.phase];
        if self.done * SAMPLES_PER_PHASE >= (self.taken + 1) * work {
            self.taken = self.done * SAMPLES_PER_PHASE / work;
            self.sample();
        }
    }

    /// The next phase starts where the last one ended (its sample at `done` 0).
    fn next_phase(&mut self) {
        assert_eq!(self.done, PHASE_WORK[self.phase], "phase {} did its work", self.phase);
        self.phase += 1;
        self.done = 0;
        self.taken = 0;
        self.sample();
    }
}

fn row(out: &mut String, h: &H, phase: &str) {
    let c = h.source().counts();
    let _ = writeln!(
        out,
        "{phase:<44} {:>10} {:>10} {:>14}",
        c.ready >> 20,
        c.calls_of(Op::Unused),
        c.bytes[Op::Unused.index()] >> 20
    );
}

/// Runs the scenario: the table and the samples.
pub fn run() -> Run {
    let mut out = String::new();
    let large = Layout::from_size_align(LARGE, 8).unwrap();
    let small = Layout::from_size_align(SMALL, 8).unwrap();
    let h: H = Heap::with_source(Tracked::new(Mmap));
    let mut r = Recorder { h: &h, phase: 0, done: 0, taken: 0, samples: Vec::new() };
    let _ =
        writeln!(out, "# Tiered over Tracked<Mmap>: Ready (resident) memory through a 512 MiB heap's life");
    let _ = writeln!(out, "# command: cargo run --release -p book-examples --example scavenge");
    out.push('\n');
    let _ = writeln!(out, "{:<44} {:>10} {:>10} {:>14}", "phase", "Ready MiB", "unused", "unused MiB");
    let mut bigs = Vec::with_capacity(LARGES);
    for _ in 0..LARGES {
        bigs.push(h.alloc_layout(large).expect("large"));
        r.op(LARGE);
    }
    let mut smalls = Vec::with_capacity(SMALLS);
    for _ in 0..SMALLS {
        smalls.push(h.alloc_layout(small).expect("small"));
        r.op(SMALL);
    }
    row(&mut out, &h, PHASES[0].0);
    r.next_phase();
    for p in bigs {
        // SAFETY: live block of `h` allocated with `large`, freed once.
        unsafe { h.dealloc(p.as_ptr(), large) };
        r.op(LARGE);
    }
    row(&mut out, &h, PHASES[1].0);
    r.next_phase();
    for p in smalls {
        // SAFETY: live block of `h` allocated with `small`, freed once.
        unsafe { h.dealloc(p.as_ptr(), small) };
        r.op(SMALL);
    }
    row(&mut out, &h, PHASES[2].0);
    r.next_phase();
    let mut ps = Vec::with_capacity(BATCH);
    for _ in 0..ROUNDS {
        for _ in 0..BATCH {
            ps.push(h.alloc_layout(small).expect("small"));
            r.op(SMALL);
        }
        for p in ps.drain(..) {
            // SAFETY: live block of `h` allocated with `small`, freed once.
            unsafe { h.dealloc(p.as_ptr(), small) };
            r.op(SMALL);
        }
    }
    row(&mut out, &h, PHASES[3].0);
    r.next_phase();
    let mut large_ps = Vec::with_capacity(MORE_LARGES);
    for _ in 0..MORE_LARGES {
        large_ps.push(h.alloc_layout(large).expect("large"));
        r.op(LARGE);
    }
    for p in large_ps {
        // SAFETY: live block of `h` allocated with `large`, freed once.
        unsafe { h.dealloc(p.as_ptr(), large) };
        r.op(LARGE);
    }
    row(&mut out, &h, PHASES[4].0);
    r.next_phase();
    let trimmed = h.trim();
    r.op(1);
    row(&mut out, &h, PHASES[5].0);
    out.push('\n');
    let _ =
        writeln!(out, "trim() gave back {} MiB; live objects now {}", trimmed >> 20, h.stats().live_objects);
    Run { report: out, samples: r.samples }
}

/// The table, as the example prints it and `measured/` commits it.
pub fn report() -> String {
    run().report
}

/// Width and height of the plot (small, so that its 12 px text stays readable on a phone).
const W: f64 = 500.0;
const H: f64 = 340.0;
/// The plot area's margins: left (the MiB axis), right, top (the title), bottom (the phases).
const LEFT: f64 = 44.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 58.0;
/// The top of the MiB axis.
const Y_MAX_MIB: usize = 600;
/// `trim()`'s band is this share of another phase's band (it is one call).
const TRIM_BAND: f64 = 0.5;

const READY_COLOUR: &str = "#1f5fa8";
const GOAL_COLOUR: &str = "#d9730d";
const INUSE_COLOUR: &str = "#8a8a8a";

/// The figures the alt text and the caption quote, from the samples.
pub struct Figures {
    /// Ready memory at its highest, MiB.
    pub peak: usize,
    /// Ready memory at the end of each phase, MiB.
    pub after: [usize; 6],
    /// The goal at the end of each phase, MiB.
    pub goal_after: [usize; 6],
    /// The largest fall of Ready memory between two samples of the small work, MiB (the
    /// most one step gave back there: the samples are closer than the steps).
    pub small_work_step: usize,
}

/// The figures of a run's samples.
pub fn figures(samples: &[Sample]) -> Figures {
    let mib = |b: usize| b / MIB;
    let last = |p: usize| samples.iter().rev().find(|s| s.phase == p).expect("every phase is sampled");
    let small_work: Vec<&Sample> = samples.iter().filter(|s| s.phase == 3).collect();
    let small_work_step =
        small_work.windows(2).map(|w| w[0].ready.saturating_sub(w[1].ready)).max().unwrap_or(0);
    Figures {
        peak: mib(samples.iter().map(|s| s.ready).max().unwrap_or(0)),
        after: core::array::from_fn(|p| mib(last(p).ready)),
        goal_after: core::array::from_fn(|p| mib(last(p).goal())),
        small_work_step: mib(small_work_step),
    }
}

/// The plot's alt text: the run's course in words, with the figures the samples give.
pub fn alt(samples: &[Sample]) -> String {
    let f = figures(samples);
    format!(
        "A line plot of the run in six bands, one per phase: allocate, free large, free small, \
         small work, large work, trim(). Ready memory, as Tracked counts it, rises to {} MiB \
         while 512 MiB is allocated, with the scavenger's goal above it (past the top of the \
         chart while the heap grows). At the end of each later phase, Ready memory and the goal \
         stand at: free large {} and {} MiB; free small {} and {} MiB; small work {} and {} MiB, \
         Ready memory falling at most {} MiB per step; large work {} and {} MiB; trim() {} and \
         {} MiB. A grey line shows the pages in use, down to 0 after the frees.",
        f.peak,
        f.after[1],
        f.goal_after[1],
        f.after[2],
        f.goal_after[2],
        f.after[3],
        f.goal_after[3],
        f.small_work_step,
        f.after[4],
        f.goal_after[4],
        f.after[5],
        f.goal_after[5],
    )
}

/// The plot's caption (HTML, one line).
pub fn caption(samples: &[Sample]) -> String {
    let f = figures(samples);
    format!(
        "Ready memory (blue, what <code>Tracked</code> counts) against the scavenger's goal \
         (orange, dashed: the most Ready memory its bounded steps leave, that is Ready memory \
         with the retained free pages brought down to the target) through the run of \
         <a href=\"#measured\">Measured</a>, sampled {SAMPLES_PER_PHASE} times per phase by bytes \
         allocated and freed; the bands are not to scale. Where blue stands above orange, the \
         scavenger has work left: after the small frees Ready memory stays at {} MiB until the \
         small work's steps bring it down to {} MiB. Drawn by <code>cargo run --release -p book-examples \
         --example scavenge</code>; <code>tests/measured.rs</code> fails if the plot, its alt \
         text or this caption's figures differ from what the code draws now.",
        f.after[2], f.after[3],
    )
}

/// The chapter's `<img>` element for the plot.
pub fn img(samples: &[Sample]) -> String {
    format!(r#"<img src="img/scavenge.svg" alt="{}" width="{W}">"#, alt(samples))
}

/// The horizontal place of `done` bytes into `phase`: the phases share the width in equal
/// bands (`trim()` a narrower one), each spread evenly by its work.
fn x_of(phase: usize, done: usize) -> f64 {
    let band = (W - LEFT - RIGHT) / (PHASES.len() as f64 - 1.0 + TRIM_BAND);
    // `trim()`'s one call is drawn as a step at the middle of its band.
    let width = if phase == PHASES.len() - 1 { band * TRIM_BAND / 2.0 } else { band };
    LEFT + band * phase as f64 + width * done as f64 / PHASE_WORK[phase] as f64
}

fn y_of(bytes: usize) -> f64 {
    TOP + (H - TOP - BOTTOM) * (1.0 - bytes as f64 / (Y_MAX_MIB * MIB) as f64)
}

/// "24.4 MiB", "512 MiB".
fn mib_text(bytes: usize) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// The SVG.
pub fn plot(samples: &[Sample]) -> String {
    let f = figures(samples);
    let (bottom, right) = (H - BOTTOM, W - RIGHT);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" \
         role=\"img\" aria-label=\"Ready memory against the scavenger's goal\" \
         font-family=\"DejaVu Sans, Verdana, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    );
    let _ = writeln!(
        s,
        r##"<text x="8" y="21" font-size="14" font-weight="bold" fill="#222">Ready memory against the scavenger's goal, MiB</text>"##
    );
    // The phases' bands, shaded in turn, with their names and work under the axis.
    for (p, (_, name)) in PHASES.iter().enumerate() {
        let band = (W - LEFT - RIGHT) / (PHASES.len() as f64 - 1.0 + TRIM_BAND);
        let x0 = x_of(p, 0);
        let x1 = if p == PHASES.len() - 1 { right } else { x0 + band };
        if p % 2 == 1 {
            let _ = writeln!(
                s,
                r##"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#f3f3f3"/>"##,
                x1 - x0,
                bottom - TOP
            );
        }
        let mid = (x0 + x1) / 2.0;
        let work = if p == PHASES.len() - 1 { String::new() } else { mib_text(PHASE_WORK[p]) };
        let _ = writeln!(
            s,
            r##"<text x="{mid:.1}" y="{:.1}" font-size="12" fill="#222" text-anchor="middle">{name}</text><text x="{mid:.1}" y="{:.1}" font-size="12" fill="#666" text-anchor="middle">{work}</text>"##,
            bottom + 16.0,
            bottom + 31.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#444" text-anchor="middle">one band per phase, spread by MiB allocated + freed</text>"##,
        (LEFT + right) / 2.0,
        H - 6.0
    );
    for mib in (0..=Y_MAX_MIB).step_by(100) {
        let y = y_of(mib * MIB);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="12" fill="#444" text-anchor="end">{mib}</text>"##,
            LEFT - 5.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom}" stroke="#444"/><line x1="{LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#444"/>"##
    );
    // One line per series; each runs on to the right edge at its last value. The goal's dashes
    // go over Ready's line, so that both show where they meet.
    // (colour, stroke width, dash attribute, the sample's value)
    type Series = (&'static str, &'static str, &'static str, fn(&Sample) -> usize);
    let series: [Series; 3] = [
        (INUSE_COLOUR, "1.5", "", |s| s.inuse),
        (READY_COLOUR, "2.5", "", |s| s.ready),
        (GOAL_COLOUR, "2", r#" stroke-dasharray="6 3""#, |s| s.goal()),
    ];
    // The goal may stand far above Ready memory while the heap grows: the series are clipped
    // to the plot area.
    let _ = writeln!(
        s,
        r##"<clipPath id="scavenge-plot-area"><rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}"/></clipPath>"##,
        right - LEFT,
        bottom - TOP
    );
    for (colour, width, dash, value) in series {
        let trim = PHASES.len() - 1;
        let mut points = vec![];
        for s in samples {
            points.push(format!("{:.1},{:.1}", x_of(s.phase, s.done), y_of(value(s))));
            if s.phase == trim && s.done == 0 {
                // The state before the call runs on to the step.
                points.push(format!("{:.1},{:.1}", x_of(trim, PHASE_WORK[trim]), y_of(value(s))));
            }
        }
        if let Some(last) = samples.last() {
            points.push(format!("{right:.1},{:.1}", y_of(value(last))));
        }
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} stroke-linejoin="round" clip-path="url(#scavenge-plot-area)"/>"##,
            points.join(" ")
        );
    }
    // The peak, on a dotted line from the axis (the top left is empty: the heap grows there,
    // and the label ends before the goal's line climbs past it).
    let peak_y = y_of(f.peak * MIB);
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{peak_y:.1}" y2="{peak_y:.1}" stroke="{READY_COLOUR}" stroke-dasharray="1 3"/><text x="{:.1}" y="{:.1}" font-size="12" fill="{READY_COLOUR}">{} MiB</text>"##,
        x_of(1, 0),
        LEFT + 6.0,
        peak_y - 6.0,
        f.peak
    );
    // Where the small work leaves it, above the flat end of the line.
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="{READY_COLOUR}" text-anchor="middle">{} MiB</text>"##,
        (x_of(4, 0) + x_of(4, PHASE_WORK[4])) / 2.0,
        y_of(f.after[3] * MIB) - 8.0,
        f.after[3]
    );
    // The legend, top right: the data there stays under 300 MiB once the large objects go.
    let (lx, ly) = (right - 236.0, TOP + 16.0);
    for (i, (colour, width, dash, label)) in [
        (READY_COLOUR, "2.5", "", "Ready (Tracked's count)"),
        (GOAL_COLOUR, "2", r#" stroke-dasharray="6 3""#, "goal: most Ready a step leaves"),
        (INUSE_COLOUR, "1.5", "", "pages in use (spans)"),
    ]
    .into_iter()
    .enumerate()
    {
        let y = ly + 17.0 * i as f64;
        let _ = writeln!(
            s,
            r##"<line x1="{lx:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="{width}"{dash}/><text x="{:.1}" y="{:.1}" font-size="12" fill="#222">{label}</text>"##,
            lx + 22.0,
            lx + 28.0,
            y + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}
