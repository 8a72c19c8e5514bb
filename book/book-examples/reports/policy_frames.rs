//! The step-through pictures of the chapter "Free-list allocation": the real `FirstFit`,
//! `NextFit`, `BestFit` and `SegregatedFit`, each over its own `Fixed` region, run one
//! scripted sequence of requests and frees; after every operation the heap's checker runs
//! (`Heap::check`) and the heap's walker (`FreeList::walk`) reports every block. Each frame is
//! an SVG drawn from those walks: the heap as a bar of blocks, used and free, with the
//! search's path and the block the strategy took.
//!
//! Run: `cargo run -p book-examples --example policy_frames` (writes `book/src/img/policy/`;
//! `tests/frames.rs` regenerates the frames and fails if the committed ones differ).
//!
//! The search path is the policy's rule as the chapter states it, applied to the walk before
//! the request: first fit visits the free blocks from the lowest address; next fit from the
//! rover (the end of the last block handed out), wrapping around; best fit weighs every free
//! block and takes the smallest that fits, the lowest address on ties; segregated fit looks
//! for the first non-empty size class that holds the request and takes the head of its list.
//! The generator asserts that the rule picks the very block the real strategy carved from,
//! so a picture cannot show a choice the code does not make.

use core::alloc::Layout;
use core::fmt::Write;
use core::ptr::NonNull;
use std::collections::BTreeMap;

use stratalloc::strategies::freelist::{Classes, DefaultClasses, FreeList, MIN_BLOCK_BYTES, Placement};
use stratalloc::{BestFit, FirstFit, Fixed, Heap, NextFit, SegregatedFit, Strategy};

/// Offsets past this are the free top in every picture (the heaps use far less).
const TOP_FROM: usize = 64 << 10;

/// Bytes of each `Fixed` region: the live-start map's pools and one 256 KiB chunk.
const REGION_BYTES: usize = 4 << 20;
/// Alignment of each region: the live-start map is keyed by address, so a region aligned to
/// 1 GiB gives the same layout on every machine.
const REGION_ALIGN: usize = 1 << 30;

/// One operation of a script: allocate `size` bytes under a name, or free the named block.
#[derive(Copy, Clone, Debug)]
pub enum Op {
    /// Allocate `.1` bytes (alignment 8) and call the block `.0`.
    Alloc(char, usize),
    /// Free the block called `.0` (by address, as C's `free`).
    Free(char),
}

/// The block size a request of `size` bytes needs: a header word, rounded to 16 bytes, at
/// least the minimum block (the chapter's `need`).
pub fn need(size: usize) -> usize {
    ((size + 8).div_ceil(16) * 16).max(MIN_BLOCK_BYTES)
}

/// One block of a walk, at its offset from the chunk's first block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blk {
    /// Offset of the block's header from the first block's header.
    pub off: usize,
    /// Bytes of the block, header included.
    pub bytes: usize,
    /// Whether it is free.
    pub free: bool,
    /// The script's name of a used block.
    pub name: Option<char>,
    /// For a free block: the names of the blocks whose freeing made it ("E", or "B+C" after
    /// a merge), when it is exactly what those frees left.
    pub was: Option<String>,
}

impl Blk {
    fn end(&self) -> usize {
        self.off + self.bytes
    }
}

/// A heap of policy `X` over its own `Fixed` region, with the names of its live blocks.
struct Lab<X: Placement> {
    /// Dropped before the region it lives in (`Drop`).
    heap: core::mem::ManuallyDrop<Heap<FreeList<X>, Fixed>>,
    /// The region from the system allocator, and its layout.
    region: (*mut u8, Layout),
    /// Name of each live block, by payload address.
    names: BTreeMap<usize, char>,
    /// Payload address of each live block, by name.
    ptrs: BTreeMap<char, NonNull<u8>>,
    /// Next fit's rover as an offset (the end of the last block handed out).
    rover: usize,
    /// The holes that frees left, by offset: their size and the names they came from.
    holes: BTreeMap<usize, (usize, String)>,
}

impl<X: Placement> Lab<X> {
    fn new() -> Self {
        let layout = Layout::from_size_align(REGION_BYTES, REGION_ALIGN).expect("layout");
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        assert!(!base.is_null(), "no memory for the region");
        // SAFETY: `base..base + REGION_BYTES` was just allocated and is used by this source
        // only; it is freed in `Drop` after the heap, so it outlives the heap and every block.
        let source = unsafe { Fixed::new(base, REGION_BYTES) };
        Lab {
            heap: core::mem::ManuallyDrop::new(Heap::from_parts(FreeList::new(), source)),
            region: (base, layout),
            names: BTreeMap::new(),
            ptrs: BTreeMap::new(),
            rover: 0,
            holes: BTreeMap::new(),
        }
    }

    /// Every block of the heap's one chunk, as offsets from its first block, after the
    /// strategy's checker has passed.
    fn walk(&self) -> Vec<Blk> {
        // SAFETY: the source is the heap's own and no other thread uses it.
        unsafe { self.heap.check() }.unwrap_or_else(|e| panic!("{}: {e}", self.heap.strategy().name()));
        let mut raw = Vec::new();
        self.heap.strategy().walk(|b| raw.push(b));
        assert!(raw.iter().all(|b| b.chunk == raw[0].chunk), "the pictures assume one chunk");
        let first = raw[0].addr;
        raw.iter()
            .map(|b| Blk {
                off: b.addr - first,
                bytes: b.bytes,
                free: b.free,
                name: if b.free { None } else { self.names.get(&(b.addr + 8)).copied() },
                was: self
                    .holes
                    .get(&(b.addr - first))
                    .filter(|(bytes, _)| b.free && *bytes == b.bytes)
                    .map(|(_, was)| was.clone()),
            })
            .collect()
    }

    fn base(&self) -> usize {
        let mut first = None;
        self.heap.strategy().walk(|b| {
            first.get_or_insert(b.addr);
        });
        first.expect("a chunk")
    }

    /// Allocates; returns the offset of the new block's header.
    fn alloc(&mut self, name: char, size: usize) -> usize {
        let p = self.heap.alloc_layout(Layout::from_size_align(size, 8).expect("layout")).expect("alloc");
        self.names.insert(p.as_ptr() as usize, name);
        self.ptrs.insert(name, p);
        let at = p.as_ptr() as usize - 8 - self.base();
        // Next fit's rover: the end of the block just handed out.
        self.rover = self.walk().iter().find(|b| b.off == at).expect("the new block").end();
        at
    }

    fn free(&mut self, name: char) {
        let before = self.walk();
        let p = self.ptrs.remove(&name).expect("a live block of that name");
        self.names.remove(&(p.as_ptr() as usize));
        // SAFETY: `p` is a live block of this heap, freed once, never used again.
        unsafe { self.heap.free(p) }.expect("free");
        let i = before.iter().position(|b| b.name == Some(name)).expect("the block");
        let mut parts = vec![];
        if i > 0 && before[i - 1].free {
            parts.push(before[i - 1].was.clone());
        }
        parts.push(Some(name.to_string()));
        if before.get(i + 1).is_some_and(|b| b.free) {
            parts.push(before[i + 1].was.clone());
        }
        let after = self.walk();
        let merged =
            after.iter().find(|b| b.off <= before[i].off && before[i].off < b.end()).expect("a block");
        if let Some(parts) = parts.into_iter().collect::<Option<Vec<_>>>() {
            self.holes.insert(merged.off, (merged.bytes, parts.join("+")));
        }
    }
}

/// What one policy did in one step, for its row of a frame.
#[derive(Clone, Debug)]
pub struct Row {
    /// The heap before the step.
    pub before: Vec<Blk>,
    /// The heap after the step.
    pub after: Vec<Blk>,
    /// Offsets of the free blocks the search visits, in order (their badges).
    pub path: Vec<(usize, Badge)>,
    /// Offset (in `before`) of the free block the request took, or of the freed block.
    pub picked: Option<usize>,
    /// Next fit's rover before the step.
    pub rover: Option<usize>,
    /// The row's caption.
    pub caption: String,
}

/// A mark over a free block the search looks at.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Badge {
    /// Visited in this order (first and next fit).
    Visit(usize),
    /// Weighed and found too small.
    TooSmall,
    /// Weighed and found big enough.
    Fits,
}

/// The four policies, as the frames name them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// `FirstFit`.
    First,
    /// `NextFit`.
    Next,
    /// `BestFit`.
    Best,
    /// `SegregatedFit`.
    Segregated,
}

impl Policy {
    /// The row's title.
    pub fn title(self) -> &'static str {
        match self {
            Policy::First => "FirstFit",
            Policy::Next => "NextFit",
            Policy::Best => "BestFit",
            Policy::Segregated => "SegregatedFit",
        }
    }
}

fn kib(bytes: usize) -> String {
    if bytes >= 4096 { format!("{} KiB", bytes / 1024) } else { format!("{bytes} B") }
}

/// Runs `script` on policy `X`; the rows of every step (the first row is the state after
/// `setup`, with no search).
fn run<X: Placement>(policy: Policy, setup: &[Op], script: &[Op]) -> Vec<Row> {
    let mut lab = Lab::<X>::new();
    for op in setup {
        apply(&mut lab, *op);
    }
    let start = lab.walk();
    let mut rows = vec![Row {
        before: start.clone(),
        after: start,
        path: vec![],
        picked: None,
        rover: (policy == Policy::Next).then_some(lab.rover),
        caption: String::new(),
    }];
    for op in script {
        let before = lab.walk();
        let rover = (policy == Policy::Next).then_some(lab.rover);
        let (path, picked, caption) = match *op {
            Op::Alloc(name, size) => {
                let n = need(size);
                let (path, rule, why) = search(policy, &before, n, lab.rover);
                let at = apply(&mut lab, *op).expect("an allocation");
                let after = lab.walk();
                let took = before.iter().find(|b| b.off <= at && at < b.end()).expect("a block");
                assert!(took.free, "{}: carved from a used block", policy.title());
                match rule {
                    Some(rule) => assert_eq!(
                        took.off,
                        rule,
                        "{}: the rule the picture shows picks another block than the strategy",
                        policy.title()
                    ),
                    None => assert!(
                        path.iter().any(|&(off, _)| off == took.off),
                        "{}: the strategy took a block outside the class the picture shows",
                        policy.title()
                    ),
                }
                let new = after.iter().find(|b| b.off == at).expect("the new block");
                let hole = match &took.was {
                    _ if took.end() > TOP_FROM => "the free top".to_string(),
                    Some(was) => format!("{was}'s old {} B", took.bytes),
                    None => format!("a free {} B", took.bytes),
                };
                let rest = match took.bytes - new.bytes {
                    0 if took.bytes > n => {
                        format!(": all of it ({} B over, too few to split off)", took.bytes - n)
                    }
                    0 => String::new(),
                    r => format!(", split: {} stay free", kib(r)),
                };
                let caption = format!("{why} → {name} in {hole}{rest}");
                (path, Some(took.off), caption)
            }
            Op::Free(name) => {
                let i = before.iter().position(|b| b.name == Some(name)).expect("a live block");
                let (lo, hi) = (i > 0 && before[i - 1].free, before.get(i + 1).is_some_and(|b| b.free));
                let off = before[i].off;
                apply(&mut lab, *op);
                let after = lab.walk();
                let merged = after.iter().find(|b| b.off <= off && off < b.end()).expect("a block");
                let how = match (lo, hi) {
                    (false, false) => "neither neighbour free: stays one block".to_string(),
                    (true, false) => format!("merges with the free block below: {}", kib(merged.bytes)),
                    (false, true) => format!("merges with the free block above: {}", kib(merged.bytes)),
                    (true, true) => format!("merges with both neighbours: {}", kib(merged.bytes)),
                };
                (vec![], Some(off), format!("free {name} ({} B): {how}", before[i].bytes))
            }
        };
        let after = lab.walk();
        rows.push(Row { before, after, path, picked, rover, caption });
    }
    rows
}

impl<X: Placement> Drop for Lab<X> {
    fn drop(&mut self) {
        // SAFETY: the heap is dropped once, here, and not used after.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.heap) };
        // SAFETY: allocated in `new` with this layout; the heap that used it is gone.
        unsafe { std::alloc::dealloc(self.region.0, self.region.1) };
    }
}

fn apply<X: Placement>(lab: &mut Lab<X>, op: Op) -> Option<usize> {
    match op {
        Op::Alloc(name, size) => Some(lab.alloc(name, size)),
        Op::Free(name) => {
            lab.free(name);
            None
        }
    }
}

/// The policy's rule over the free blocks of `heap`: the visited blocks with their badges,
/// the block it picks, and a sentence.
fn search(
    policy: Policy,
    heap: &[Blk],
    need: usize,
    rover: usize,
) -> (Vec<(usize, Badge)>, Option<usize>, String) {
    let free: Vec<&Blk> = heap.iter().filter(|b| b.free).collect();
    let fits = |b: &&&Blk| b.bytes >= need;
    match policy {
        Policy::First | Policy::Next => {
            let order: Vec<&Blk> = if policy == Policy::First {
                free.clone()
            } else {
                free.iter()
                    .filter(|b| b.off >= rover)
                    .chain(free.iter().filter(|b| b.off < rover))
                    .copied()
                    .collect()
            };
            let mut path = vec![];
            for b in &order {
                path.push((b.off, Badge::Visit(path.len() + 1)));
                if fits(&b) {
                    let from =
                        if policy == Policy::First { "from the lowest address" } else { "from the rover" };
                    let why = format!(
                        "needs {need} B; walks the free blocks {from}: no. {} is the first that fits",
                        path.len()
                    );
                    return (path, Some(b.off), why);
                }
            }
            (path, None, format!("needs {need} B; nothing fits"))
        }
        Policy::Best => {
            let path =
                free.iter().map(|b| (b.off, if fits(&b) { Badge::Fits } else { Badge::TooSmall })).collect();
            let best = free.iter().filter(fits).min_by_key(|b| (b.bytes, b.off)).map(|b| b.off);
            let n = free.iter().filter(fits).count();
            (path, best, format!("needs {need} B; {n} of {} free blocks fit; the smallest", free.len()))
        }
        Policy::Segregated => {
            let f = DefaultClasses::class_ceil(need);
            let c = free
                .iter()
                .map(|b| DefaultClasses::class_of(b.bytes))
                .filter(|&c| c >= f)
                .min()
                .expect("the top");
            let members: Vec<&&Blk> =
                free.iter().filter(|b| DefaultClasses::class_of(b.bytes) == c).collect();
            let path = members.iter().map(|b| (b.off, Badge::Fits)).collect();
            let class = if c + 1 == DefaultClasses::COUNT {
                "the last class".to_string()
            } else {
                format!("class {} B", DefaultClasses::class_min(c))
            };
            let skipped = if c == f {
                String::new()
            } else {
                format!("class {} B is empty, ", DefaultClasses::class_min(f))
            };
            // The list's head is not visible in a walk: when the class holds several blocks,
            // the picture shows them all and the block the strategy took (asserted to be one
            // of them).
            let picked = if members.len() == 1 { Some(members[0].off) } else { None };
            (path, picked, format!("needs {need} B; {skipped}first non-empty: {class}, its list's head"))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Drawing

const WIDTH: f64 = 860.0;
const LEFT: f64 = 16.0;
const BAR_H: f64 = 34.0;
pub(crate) const FONT: &str = "font-family=\"DejaVu Sans, Verdana, sans-serif\"";
const USED: &str = "#4a78b8";
const FREE: &str = "#e8f3e1";
const PATH: &str = "#e08a00";
const PICK: &str = "#c62828";

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The offsets shown: `0..shown` to scale; a block reaching past `shown` is cut, with its
/// size written on it.
struct Scale {
    shown: usize,
}

impl Scale {
    fn x(&self, off: usize) -> f64 {
        LEFT + (off.min(self.shown) as f64) * (WIDTH - 2.0 * LEFT) / self.shown as f64
    }
}

/// Draws one bar at `y`: blocks, badges over the path, the picked block framed.
fn bar(
    out: &mut String,
    y: f64,
    heap: &[Blk],
    scale: &Scale,
    path: &[(usize, Badge)],
    picked: Option<usize>,
    rover: Option<usize>,
) {
    for b in heap {
        if b.off >= scale.shown {
            break;
        }
        let (x0, x1) = (scale.x(b.off), scale.x(b.end()));
        let cut = b.end() > scale.shown;
        let fill = if b.free { FREE } else { USED };
        let _ = writeln!(
            out,
            r##"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{BAR_H}" fill="{fill}" stroke="#333" stroke-width="1"{}/>"##,
            x1 - x0,
            if cut { r#" stroke-dasharray="4 3""# } else { "" }
        );
        let text = match (b.name, b.free) {
            (Some(n), _) => n.to_string(),
            (None, true) if cut => format!("free top: {} …", kib(b.bytes)),
            (None, true) => b.was.clone().unwrap_or_default(),
            (None, false) => "?".to_string(),
        };
        let color = if b.free { "#4b7a3a" } else { "#fff" };
        if x1 - x0 >= 7.5 * text.len() as f64 + 4.0 {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" {FONT} font-size="14" fill="{color}" text-anchor="middle">{}</text>"#,
                (x0 + x1) / 2.0,
                y + 15.0,
                esc(&text)
            );
        }
        if !cut && x1 - x0 >= 26.0 {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" {FONT} font-size="11" fill="{color}" text-anchor="middle">{}</text>"#,
                (x0 + x1) / 2.0,
                y + 29.0,
                b.bytes
            );
        }
    }
    for &(off, badge) in path {
        let b = heap.iter().find(|b| b.off == off).expect("a block of the path");
        let (x0, x1) = (scale.x(b.off), scale.x(b.end()));
        let cx = (x0 + x1.min(x0 + 60.0)) / 2.0;
        let (text, color) = match badge {
            Badge::Visit(i) => (i.to_string(), PATH),
            Badge::TooSmall => ("✗".to_string(), "#888"),
            Badge::Fits => ("✓".to_string(), PATH),
        };
        let _ = writeln!(out, r#"<circle cx="{cx:.1}" cy="{:.1}" r="8" fill="{color}"/>"#, y - 10.0);
        let _ = writeln!(
            out,
            r##"<text x="{cx:.1}" y="{:.1}" {FONT} font-size="11" font-weight="bold" fill="#fff" text-anchor="middle">{text}</text>"##,
            y - 6.0
        );
        if badge != Badge::TooSmall {
            outline(out, (x0, x1), y, 1.5, PATH, "2.5");
        }
    }
    if let Some(off) = picked {
        let b = heap.iter().find(|b| b.off == off).expect("the picked block");
        let (x0, x1) = (scale.x(b.off), scale.x(b.end()));
        outline(out, (x0, x1), y, 2.0, PICK, "4");
    }
    if let Some(r) = rover {
        let x = scale.x(r);
        let _ = writeln!(
            out,
            r#"<path d="M{x:.1},{:.1} l-6,9 h12 z" fill="{PATH}"/><text x="{:.1}" y="{:.1}" {FONT} font-size="11" fill="{PATH}">rover</text>"#,
            y + BAR_H + 1.0,
            x + 8.0,
            y + BAR_H + 10.0
        );
    }
}

/// An unfilled rectangle drawn `inset` inside the bar of the block spanning `x0..x1` at `y`.
fn outline(out: &mut String, (x0, x1): (f64, f64), y: f64, inset: f64, color: &str, width: &str) {
    let _ = writeln!(
        out,
        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{color}" stroke-width="{width}"/>"#,
        x0 + inset,
        y + inset,
        (x1 - x0 - 2.0 * inset).max(1.0),
        BAR_H - 2.0 * inset
    );
}

fn svg(height: f64, title: &str, body: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n{body}</svg>\n",
        esc(title)
    )
}

pub(crate) fn text(out: &mut String, x: f64, y: f64, size: u32, bold: bool, s: &str) {
    let _ = writeln!(
        out,
        r##"<text x="{x:.1}" y="{y:.1}" {FONT} font-size="{size}"{} fill="#222">{}</text>"##,
        if bold { r#" font-weight="bold""# } else { "" },
        esc(s)
    );
}

// ---------------------------------------------------------------------------------------
// The scripts

/// Allocations that every policy serves from the free top, so all four heaps start alike.
pub const SETUP: [Op; 8] = [
    Op::Alloc('A', 200),
    Op::Alloc('B', 40),
    Op::Alloc('C', 280),
    Op::Alloc('D', 40),
    Op::Alloc('E', 120),
    Op::Alloc('F', 40),
    Op::Alloc('G', 120),
    Op::Alloc('H', 40),
];

/// The step-through's script, after [`SETUP`].
pub const SCRIPT: [Op; 9] = [
    Op::Free('C'),
    Op::Free('A'),
    Op::Free('E'),
    Op::Free('G'),
    Op::Alloc('X', 100),
    Op::Alloc('Y', 250),
    Op::Alloc('Z', 40),
    Op::Free('B'),
    Op::Alloc('W', 180),
];

fn op_text(op: &Op) -> String {
    match op {
        Op::Alloc(n, s) => format!("{n} = malloc({s})"),
        Op::Free(n) => format!("free({n})"),
    }
}

/// One frame of a step-through (the policies' here, the span's in `span_frames`).
#[derive(Clone, Debug)]
pub struct Frame {
    /// The folder under `book/src/img/` that holds the step-through's frames.
    pub dir: &'static str,
    /// File name under `book/src/img/DIR/`.
    pub name: String,
    /// The frame's text for readers who cannot see it: its heading and every caption, the
    /// chapter's `alt` (checked by `tests/frames.rs`).
    pub alt: String,
    /// The SVG.
    pub svg: String,
}

impl Frame {
    /// The `<img>` element the chapter shows the frame with.
    pub fn img(&self) -> String {
        format!(
            r#"<img src="img/{}/{}" alt="{}" width="860">"#,
            self.dir,
            self.name,
            esc(&self.alt).replace('"', "&quot;")
        )
    }
}

/// The step-through of the four policies: every frame.
pub fn policy_frames() -> Vec<Frame> {
    let all = [
        (Policy::First, run::<<FirstFit as Strategyish>::X>(Policy::First, &SETUP, &SCRIPT)),
        (Policy::Next, run::<<NextFit as Strategyish>::X>(Policy::Next, &SETUP, &SCRIPT)),
        (Policy::Best, run::<<BestFit as Strategyish>::X>(Policy::Best, &SETUP, &SCRIPT)),
        (Policy::Segregated, run::<<SegregatedFit as Strategyish>::X>(Policy::Segregated, &SETUP, &SCRIPT)),
    ];
    // One scale for every frame: the highest used end, and a little of the free top.
    let top = all
        .iter()
        .flat_map(|(_, rows)| rows.iter().flat_map(|r| r.after.iter()))
        .filter(|b| !b.free)
        .map(Blk::end)
        .max()
        .expect("a used block");
    let scale = Scale { shown: top + 160 };
    let steps = SCRIPT.len() + 1;
    let mut frames = vec![];
    let row_h = 100.0;
    for step in 0..steps {
        let mut body = String::new();
        let heading = if step == 0 {
            "Start: A to H allocated in turn from the free top; the same in every heap".to_string()
        } else {
            format!("Step {step} of {}: {}", steps, op_text(&SCRIPT[step - 1]))
        };
        text(&mut body, LEFT, 22.0, 16, true, &heading);
        let mut alt = format!("{heading}.");
        if step == 0 {
            let blocks: Vec<String> = all[0].1[0]
                .after
                .iter()
                .map(|b| match b.name {
                    Some(n) => format!("{n} {} B", b.bytes),
                    None => format!("the free top ({})", kib(b.bytes)),
                })
                .collect();
            let _ = write!(alt, " From the lowest address: {}.", blocks.join(", "));
        }
        for (i, (policy, rows)) in all.iter().enumerate() {
            let row = &rows[step];
            if !row.caption.is_empty() {
                let _ = write!(alt, " {}: {}.", policy.title(), row.caption);
            }
            let y = 40.0 + i as f64 * row_h;
            text(&mut body, LEFT, y + 12.0, 13, true, policy.title());
            let (search, result) = row.caption.split_once(" → ").unwrap_or((&row.caption, ""));
            text(&mut body, LEFT + 116.0, y + 12.0, 12, false, search);
            if !result.is_empty() {
                text(&mut body, LEFT + 116.0, y + 28.0, 12, false, &format!("→ {result}"));
            }
            bar(&mut body, y + 48.0, &row.before, &scale, &row.path, row.picked, row.rover);
        }
        let h = 40.0 + all.len() as f64 * row_h + 8.0;
        frames.push(Frame {
            dir: "policy",
            name: format!("step-{step:02}.svg"),
            alt,
            svg: svg(h, &heading, &body),
        });
    }
    // The last frame: every heap after the script.
    let mut body = String::new();
    let heading = format!("Step {steps} of {steps}: after the script, the four heaps");
    let heading = heading.as_str();
    text(&mut body, LEFT, 22.0, 16, true, heading);
    let mut alt = format!("{heading}.");
    for (i, (policy, rows)) in all.iter().enumerate() {
        let row = rows.last().expect("rows");
        let y = 40.0 + i as f64 * row_h;
        let free: Vec<_> = row
            .after
            .iter()
            .filter(|b| b.free && b.end() <= scale.shown)
            .map(|b| b.bytes.to_string())
            .collect();
        text(&mut body, LEFT, y + 12.0, 13, true, policy.title());
        let caption = format!(
            "free blocks below the top: {}",
            if free.is_empty() { "none".into() } else { free.join(", ") + " B" }
        );
        let _ = write!(alt, " {}: {caption}.", policy.title());
        text(&mut body, LEFT + 116.0, y + 12.0, 12, false, &caption);
        bar(&mut body, y + 48.0, &row.after, &scale, &[], None, None);
    }
    let h = 40.0 + all.len() as f64 * row_h + 8.0;
    frames.push(Frame {
        dir: "policy",
        name: format!("step-{steps:02}.svg"),
        alt,
        svg: svg(h, heading, &body),
    });
    frames
}

/// Names the placement type of a free-list heap alias.
trait Strategyish {
    type X: Placement;
}

impl<X: Placement> Strategyish for FreeList<X> {
    type X = X;
}

/// The split and the four coalescing cases, each on a fresh `FirstFit` heap: every frame,
/// each with the heap before and after the operation.
pub fn mechanism_frames() -> Vec<Frame> {
    type X = <FirstFit as Strategyish>::X;
    let guard = Op::Alloc('G', 40);
    // (file, heading, setup, the operation)
    let cases: [(&str, &str, Vec<Op>, Op); 6] = [
        ("split.svg", "Split", vec![Op::Alloc('P', 200), guard, Op::Free('P')], Op::Alloc('M', 100)),
        ("no-split.svg", "No split", vec![Op::Alloc('P', 180), guard, Op::Free('P')], Op::Alloc('M', 130)),
        (
            "coalesce-none.svg",
            "Coalescing, case 1: free(M) with both neighbours used",
            vec![Op::Alloc('L', 100), Op::Alloc('M', 100), Op::Alloc('U', 100), guard],
            Op::Free('M'),
        ),
        (
            "coalesce-below.svg",
            "Coalescing, case 2: free(M) with the block below free",
            vec![Op::Alloc('L', 100), Op::Alloc('M', 100), Op::Alloc('U', 100), guard, Op::Free('L')],
            Op::Free('M'),
        ),
        (
            "coalesce-above.svg",
            "Coalescing, case 3: free(M) with the block above free",
            vec![Op::Alloc('L', 100), Op::Alloc('M', 100), Op::Alloc('U', 100), guard, Op::Free('U')],
            Op::Free('M'),
        ),
        (
            "coalesce-both.svg",
            "Coalescing, case 4: free(M) with both neighbours free",
            vec![
                Op::Alloc('L', 100),
                Op::Alloc('M', 100),
                Op::Alloc('U', 100),
                guard,
                Op::Free('L'),
                Op::Free('U'),
            ],
            Op::Free('M'),
        ),
    ];
    let mut frames = vec![];
    for (file, heading, setup, op) in cases {
        let rows = run::<X>(Policy::First, &setup, &[op]);
        let row = &rows[1];
        let heading = match op {
            Op::Alloc(_, size) => {
                let took = row.before.iter().find(|b| Some(b.off) == row.picked).expect("the block taken");
                format!("{heading}: {} needs {} B of a free {} B block", op_text(&op), need(size), took.bytes)
            }
            Op::Free(_) => heading.to_string(),
        };
        let heading = heading.as_str();
        let scale = Scale { shown: 560 };
        let mut body = String::new();
        text(&mut body, LEFT, 22.0, 15, true, heading);
        text(&mut body, LEFT, 50.0, 12, false, "before");
        bar(&mut body, 58.0, &row.before, &scale, &[], row.picked, None);
        let after_caption =
            format!("after: {}", row.caption.split_once(" → ").map_or(row.caption.as_str(), |(_, r)| r));
        text(&mut body, LEFT, 120.0, 12, false, &after_caption);
        let new = match op {
            Op::Alloc(n, _) => row.after.iter().find(|b| b.name == Some(n)).map(|b| b.off),
            Op::Free(_) => row
                .after
                .iter()
                .find(|b| Some(b.off) <= row.picked && row.picked < Some(b.end()))
                .map(|b| b.off),
        };
        bar(&mut body, 128.0, &row.after, &scale, &[], new, None);
        let alt = format!("{heading}. Before and {after_caption}.");
        frames.push(Frame { dir: "policy", name: file.to_string(), alt, svg: svg(176.0, heading, &body) });
    }
    frames
}

/// Every frame of the chapter.
pub fn frames() -> Vec<Frame> {
    let mut all = policy_frames();
    all.extend(mechanism_frames());
    all
}
