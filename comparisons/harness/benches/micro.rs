//! Micro-benchmarks (criterion) of every allocator in the table, called directly through
//! `GlobalAlloc` on a `static` instance (criterion itself uses the system allocator).
//!
//! Groups: `pair/<bytes>` (alloc then free), `batch10k/lifo` and `batch10k/random` (10,000
//! blocks of 8..512 B, then freed newest-first or in a shuffled order), `realloc_growth`
//! (8 B doubled to 1 MiB), `remote_free` (1,000 blocks of 64 B allocated here and freed by
//! another thread). Every strategy and anchor of the table (`workloads::for_each_allocator!`)
//! joins; the variants (other indexes and sources) are left to `benches/freelist.rs`.
//!
//! `cargo bench -p comparisons --bench micro [-- FILTER]`.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::mpsc;
use std::time::Duration;

use comparisons::workloads::Rng;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const PAIR_BYTES: [usize; 7] = [8, 16, 64, 512, 4096, 64 * 1024, 1024 * 1024];
const BATCH: usize = 10_000;

/// A raw pointer that may cross threads (the allocator accepts frees from any thread).
struct Sent(*mut u8);
// SAFETY: the block it names is owned by whoever holds the `Sent`.
unsafe impl Send for Sent {}

fn alloc<A: GlobalAlloc>(a: &A, layout: Layout) -> *mut u8 {
    // SAFETY: every layout used here has a non-zero size.
    let p = unsafe { a.alloc(layout) };
    assert!(!p.is_null(), "allocation of {} B failed", layout.size());
    p
}

fn pairs<A: GlobalAlloc>(c: &mut Criterion, name: &str, a: &'static A) {
    let mut g = c.benchmark_group("pair");
    for bytes in PAIR_BYTES {
        let layout = Layout::from_size_align(bytes, 8).expect("valid layout");
        g.bench_with_input(BenchmarkId::new(name, bytes), &layout, |b, &layout| {
            b.iter(|| {
                let p = alloc(a, layout);
                // SAFETY: `p` is live, `layout.size() >= 8`.
                unsafe {
                    p.write(1);
                    a.dealloc(black_box(p), layout);
                }
            })
        });
    }
    g.finish();
}

fn batches<A: GlobalAlloc>(c: &mut Criterion, name: &str, a: &'static A) {
    let mut r = Rng::new(7, 0);
    let layouts: Vec<Layout> =
        (0..BATCH).map(|_| Layout::from_size_align(r.range(8, 512), 8).expect("valid layout")).collect();
    let mut order: Vec<usize> = (0..BATCH).collect();
    for i in (1..BATCH).rev() {
        order.swap(i, r.below(i + 1));
    }
    let mut g = c.benchmark_group("batch10k");
    g.throughput(Throughput::Elements(BATCH as u64)).sample_size(10).measurement_time(Duration::from_secs(2));
    for (label, random) in [("lifo", false), ("random", true)] {
        g.bench_function(BenchmarkId::new(label, name), |b| {
            let mut ptrs = Vec::with_capacity(BATCH);
            b.iter(|| {
                ptrs.extend(layouts.iter().map(|&l| alloc(a, l)));
                let free = |i: usize| {
                    // SAFETY: `ptrs[i]` is live and was allocated with `layouts[i]`.
                    unsafe { a.dealloc(ptrs[i], layouts[i]) }
                };
                if random {
                    order.iter().for_each(|&i| free(i))
                } else {
                    (0..BATCH).rev().for_each(free)
                }
                ptrs.clear();
            })
        });
    }
    g.finish();
}

fn realloc_growth<A: GlobalAlloc>(c: &mut Criterion, name: &str, a: &'static A) {
    c.bench_function(&format!("realloc_growth/{name}"), |b| {
        b.iter(|| {
            let mut layout = Layout::from_size_align(8, 8).expect("valid layout");
            let mut p = alloc(a, layout);
            while layout.size() < 1024 * 1024 {
                let new = layout.size() * 2;
                // SAFETY: `p` is live for `layout`; `new` is non-zero and valid for align 8.
                p = unsafe { a.realloc(p, layout, new) };
                assert!(!p.is_null(), "realloc failed");
                layout = Layout::from_size_align(new, 8).expect("valid layout");
                // SAFETY: `p` is live for `layout.size()` bytes.
                unsafe { p.add(new - 1).write(1) };
            }
            // SAFETY: `p` is live for `layout`.
            unsafe { a.dealloc(p, layout) };
        })
    });
}

fn remote_free<A: GlobalAlloc + Sync>(c: &mut Criterion, name: &str, a: &'static A) {
    let layout = Layout::from_size_align(64, 8).expect("valid layout");
    let (to_worker, from_main) = mpsc::sync_channel::<Vec<Sent>>(1);
    let (done, finished) = mpsc::sync_channel::<Vec<Sent>>(1);
    let worker = std::thread::spawn(move || {
        for mut batch in from_main {
            for Sent(p) in batch.drain(..) {
                // SAFETY: each block was allocated by `a` with `layout` and is freed once.
                unsafe { a.dealloc(p, layout) };
            }
            if done.send(batch).is_err() {
                break;
            }
        }
    });
    let mut spare = Some(Vec::with_capacity(1000));
    let mut g = c.benchmark_group("remote_free");
    g.throughput(Throughput::Elements(1000));
    g.bench_function(name, |b| {
        b.iter(|| {
            let mut batch = spare.take().unwrap_or_default();
            batch.extend((0..1000).map(|_| Sent(alloc(a, layout))));
            to_worker.send(batch).expect("worker alive");
            spare = Some(finished.recv().expect("worker alive"));
        })
    });
    g.finish();
    drop(to_worker);
    let _ = worker.join();
}

fn run_all<A: GlobalAlloc + Sync>(c: &mut Criterion, name: &str, a: &'static A) {
    pairs(c, name, a);
    batches(c, name, a);
    realloc_growth(c, name, a);
    remote_free(c, name, a);
}

fn micro(c: &mut Criterion) {
    comparisons::workloads::each_allocator!(|name, kind, a| {
        if kind != "variant" {
            run_all(c, name, a);
        }
    });
}

criterion_group!(benches, micro);
criterion_main!(benches);
