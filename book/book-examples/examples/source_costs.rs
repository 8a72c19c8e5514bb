//! What each page-source transition costs on this machine, for the book's chapter
//! "Address-space states and the PageSource trait".
//!
//! Run: `cargo run --release -p book-examples --example source_costs > book/src/measured/source_costs.txt`
//!
//! Each figure is the median over `REPS` repetitions in this one process. Touch costs are per
//! 4 KiB OS page (one byte written per page), call costs are per call.

use std::time::Instant;

use stratalloc::{Mmap, PageSource};

const REPS: usize = 101;
const RANGE_BYTES: usize = 1 << 20;
const OS_PAGE_BYTES: usize = 4096;
const PAGES: usize = RANGE_BYTES / OS_PAGE_BYTES;
const ARENA_BYTES: usize = 64 << 20;

/// Nanoseconds taken by `f`.
fn time(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Writes one byte in every OS page of `base..base + RANGE_BYTES`.
fn touch(base: *mut u8) {
    for i in 0..PAGES {
        // SAFETY: the caller passes a Ready range of RANGE_BYTES bytes.
        unsafe { base.add(i * OS_PAGE_BYTES).write_volatile(i as u8) };
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.to_string()))
        .and_then(|l| l.split(':').nth(1).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

fn main() {
    let src = Mmap;
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("reserve + free, 64 KiB (per pair)", vec![]),
        ("reserve + free, 64 MiB aligned to 64 MiB (per pair)", vec![]),
        ("map, 1 MiB (per call)", vec![]),
        ("first touch of fresh memory (per 4 KiB page)", vec![]),
        ("touch of memory already touched (per 4 KiB page)", vec![]),
        ("unused (MADV_DONTNEED), 1 MiB touched (per call)", vec![]),
        ("touch after unused (per 4 KiB page)", vec![]),
        ("free (munmap), 1 MiB (per call)", vec![]),
    ];
    for _ in 0..REPS {
        rows[0].1.push(time(|| {
            let p = src.reserve(64 << 10, OS_PAGE_BYTES).expect("reserve");
            // SAFETY: `p` was just reserved from this source and nothing uses it.
            unsafe { src.free(p, 64 << 10) }.expect("free");
        }));
        rows[1].1.push(time(|| {
            let p = src.reserve(ARENA_BYTES, ARENA_BYTES).expect("reserve");
            // SAFETY: `p` was just reserved from this source and nothing uses it.
            unsafe { src.free(p, ARENA_BYTES) }.expect("free");
        }));
        let base = src.reserve(RANGE_BYTES, OS_PAGE_BYTES).expect("reserve");
        // SAFETY: `base` is Reserved; the calls below follow the state machine on it.
        rows[2].1.push(time(|| unsafe { src.map(base, RANGE_BYTES) }.expect("map")));
        // SAFETY: Prepared -> Ready.
        unsafe { src.used(base, RANGE_BYTES) }.expect("used");
        rows[3].1.push(time(|| touch(base.as_ptr())) / PAGES as f64);
        rows[4].1.push(time(|| touch(base.as_ptr())) / PAGES as f64);
        // SAFETY: Ready, and nothing in it is needed.
        rows[5].1.push(time(|| unsafe { src.unused(base, RANGE_BYTES) }.expect("unused")));
        // SAFETY: Prepared -> Ready.
        unsafe { src.used(base, RANGE_BYTES) }.expect("used");
        rows[6].1.push(time(|| touch(base.as_ptr())) / PAGES as f64);
        // SAFETY: nothing uses the range any more.
        rows[7].1.push(time(|| unsafe { src.free(base, RANGE_BYTES) }.expect("free")));
    }
    println!("# Page-source transition costs (Mmap), median of {REPS} repetitions");
    println!("# command: cargo run --release -p book-examples --example source_costs");
    println!("# machine: {}", machine());
    println!();
    println!("{:<56} {:>12}", "operation", "median ns");
    for (name, v) in rows {
        println!("{name:<56} {:>12.0}", median(v));
    }
}
