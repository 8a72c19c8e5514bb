//! Bytes per live 16-byte object (malloc(16), no preload header) for each free-list strategy:
//! the heap's committed bytes and the process's resident growth over N live blocks.
//! `cargo run --release --example bytes_per_object [N]`
use std::alloc::Layout;
use stratalloc::{BestFit, FirstFit, Heap, NextFit, SegregatedFit};

fn rss_kib() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn run<S: stratalloc::Strategy + stratalloc::ConstInit + 'static>(
    name: &str,
    n: usize,
    keep: &mut Vec<usize>,
) {
    let h: &'static Heap<S> = Box::leak(Box::new(Heap::new()));
    let l = Layout::from_size_align(16, 16).unwrap();
    let before = rss_kib();
    for _ in 0..n {
        keep.push(h.alloc_layout(l).unwrap().as_ptr().addr());
    }
    let after = rss_kib();
    let s = h.stats();
    println!(
        "{name:15} committed/obj {:6.2} B  resident growth/obj {:6.2} B",
        s.committed_bytes as f64 / n as f64,
        (after - before) as f64 * 1024.0 / n as f64
    );
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let mut keep = Vec::with_capacity(4 * n);
    run::<FirstFit>("first-fit", n, &mut keep);
    run::<NextFit>("next-fit", n, &mut keep);
    run::<BestFit>("best-fit", n, &mut keep);
    run::<SegregatedFit>("segregated-fit", n, &mut keep);
}
