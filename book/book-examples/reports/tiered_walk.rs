//! One allocation of each kind through `Heap<Tiered, Tracked<Mmap>>`: what each step asks of
//! the page source, for the book's chapter "One allocation walked through every tier".
//!
//! Run: `cargo run --release -p book-examples --example tiered_walk > book/src/measured/tiered_walk.txt`
//!
//! Deterministic in its counts (not in its addresses, which the OS picks; they are printed
//! relative to the first block).

use core::fmt::Write;

use core::alloc::Layout;
use stratalloc::{Heap, Mmap, Op, Tiered, Tracked, TrackedCounts};

type H = Heap<Tiered, Tracked<Mmap>>;

fn delta(now: &TrackedCounts, before: &TrackedCounts) -> String {
    let mut parts = Vec::new();
    for op in Op::ALL {
        let calls = now.calls_of(op) - before.calls_of(op);
        if calls > 0 {
            let bytes = now.bytes[op.index()] - before.bytes[op.index()];
            parts.push(format!("{op} x{calls} ({} KiB)", bytes / 1024));
        }
    }
    if parts.is_empty() { "none".to_string() } else { parts.join(", ") }
}

fn step(
    out: &mut String,
    h: &H,
    base: &mut Option<usize>,
    what: &str,
    layout: Layout,
) -> core::ptr::NonNull<u8> {
    let before = h.source().counts();
    let p = h.alloc_layout(layout).expect("alloc") as core::ptr::NonNull<u8>;
    let now = h.source().counts();
    let addr = p.as_ptr() as usize;
    let first = *base.get_or_insert(addr);
    // SAFETY: `p` is a live block of `h` allocated with `layout`.
    let usable = unsafe { h.usable_size(p, layout) };
    let _ = writeln!(
        out,
        "{what:<28} {:>10} {:>8}  {:<58} {:>8}",
        format!("+{:#x}", addr - first),
        usable,
        delta(&now, &before),
        now.ready / 1024
    );
    p
}

/// The report, as the example prints it and `measured/` commits it.
pub fn report() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# One allocation of each kind through Heap<Tiered, Tracked<Mmap>>");
    let _ = writeln!(out, "# command: cargo run --release -p book-examples --example tiered_walk");
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<28} {:>10} {:>8}  {:<58} {:>8}",
        "request", "address", "usable", "page-source calls made by this request", "Ready KiB"
    );
    let h: H = Heap::with_source(Tracked::new(Mmap));
    let mut base = None;
    step(&mut out, &h, &mut base, "8 B (first ever)", Layout::new::<u64>());
    step(&mut out, &h, &mut base, "4 B (8 B class)", Layout::new::<u32>());
    step(&mut out, &h, &mut base, "small: 100 B", Layout::from_size_align(100, 8).unwrap());
    step(&mut out, &h, &mut base, "small: 100 B again", Layout::from_size_align(100, 8).unwrap());
    let large = Layout::from_size_align(100 * 1024, 8).unwrap();
    let first_large = step(&mut out, &h, &mut base, "large: 100 KiB", large);
    step(&mut out, &h, &mut base, "large: 100 KiB again", large);
    let before = h.source().counts();
    // SAFETY: `first_large` is a live block of `h` allocated with `large`.
    unsafe { core::alloc::GlobalAlloc::dealloc(&h, first_large.as_ptr(), large) };
    let _ = writeln!(
        out,
        "{:<28} {:>10} {:>8}  {:<58}",
        "free the first 100 KiB",
        "",
        "",
        delta(&h.source().counts(), &before)
    );
    step(&mut out, &h, &mut base, "large: 100 KiB after free", large);
    let s = h.stats();
    out.push('\n');
    let _ = writeln!(
        out,
        "after these: live {} B in {} objects, committed {} KiB, reserved {} KiB",
        s.live_bytes,
        s.live_objects,
        s.committed_bytes / 1024,
        s.reserved_bytes / 1024
    );
    out
}
