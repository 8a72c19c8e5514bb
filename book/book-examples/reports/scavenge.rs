//! What `Tiered` gives back to the OS after a large heap is freed, for the book's chapter
//! "Freeing and scavenging".
//!
//! Run: `cargo run --release -p book-examples --example scavenge > book/src/measured/scavenge.txt`
//!
//! Allocates 256 MiB in 1 MiB large objects and 256 MiB in 128 B small objects, frees it all
//! (large first), then does a little further work (100,000 small allocations and frees that
//! the thread's cache serves without a refill from the central lists, then four large ones),
//! then calls `trim`. After each phase it prints what `Tracked` counts as Ready (resident)
//! and how many `unused` calls (MADV_DONTNEED) were made, so it shows the scavenger's bounded
//! steps on large frees, on the frees a cache counts, and `trim`. Deterministic in its
//! counts.

use core::fmt::Write;

use core::alloc::{GlobalAlloc, Layout};
use stratalloc::{Heap, Mmap, Op, Tiered, Tracked};

type H = Heap<Tiered, Tracked<Mmap>>;

fn phase(out: &mut String, h: &H, phase: &str) {
    let c = h.source().counts();
    let _ = writeln!(
        out,
        "{phase:<44} {:>10} {:>10} {:>14}",
        c.ready >> 20,
        c.calls_of(Op::Unused),
        c.bytes[Op::Unused.index()] >> 20
    );
}

/// The report, as the example prints it and `measured/` commits it.
pub fn report() -> String {
    let mut out = String::new();
    const MIB: usize = 1 << 20;
    let large = Layout::from_size_align(MIB, 8).unwrap();
    let small = Layout::from_size_align(128, 8).unwrap();
    let h: H = Heap::with_source(Tracked::new(Mmap));
    let _ =
        writeln!(out, "# Tiered over Tracked<Mmap>: Ready (resident) memory through a 512 MiB heap's life");
    let _ = writeln!(out, "# command: cargo run --release -p book-examples --example scavenge");
    out.push('\n');
    let _ = writeln!(out, "{:<44} {:>10} {:>10} {:>14}", "phase", "Ready MiB", "unused", "unused MiB");
    let bigs: Vec<_> = (0..256).map(|_| h.alloc_layout(large).expect("large")).collect();
    let smalls: Vec<_> = (0..(256 * MIB / 128)).map(|_| h.alloc_layout(small).expect("small")).collect();
    phase(&mut out, &h, "after allocating 256 MiB large + 256 MiB small");
    for p in bigs {
        // SAFETY: live block of `h` allocated with `large`, freed once.
        unsafe { h.dealloc(p.as_ptr(), large) };
    }
    phase(&mut out, &h, "after freeing the large objects");
    for p in smalls {
        // SAFETY: live block of `h` allocated with `small`, freed once.
        unsafe { h.dealloc(p.as_ptr(), small) };
    }
    phase(&mut out, &h, "after freeing the small objects");
    for _ in 0..1000 {
        let ps: Vec<_> = (0..100).map(|_| h.alloc_layout(small).expect("small")).collect();
        for p in ps {
            // SAFETY: live block of `h` allocated with `small`, freed once.
            unsafe { h.dealloc(p.as_ptr(), small) };
        }
    }
    phase(&mut out, &h, "after 100,000 more small alloc/free pairs");
    let large_ps: Vec<_> = (0..4).map(|_| h.alloc_layout(large).expect("large")).collect();
    for p in large_ps {
        // SAFETY: live block of `h` allocated with `large`, freed once.
        unsafe { h.dealloc(p.as_ptr(), large) };
    }
    phase(&mut out, &h, "after 4 more large alloc/free pairs");
    let trimmed = h.trim();
    phase(&mut out, &h, "after trim()");
    out.push('\n');
    let _ =
        writeln!(out, "trim() gave back {} MiB; live objects now {}", trimmed >> 20, h.stats().live_objects);
    out
}
