//! What composition costs: the identity layer against the bare strategy, and the thread
//! cache and arenas against the bare strategy, on single-threaded hot paths (criterion).
//!
//! Groups: `pair64` (alloc then free of 64 B), `batch` (1,000 blocks of 8..512 B allocated,
//! then freed in a shuffled order). `cargo bench --bench layers [-- FILTER]`; see
//! benches/README.md for the figures.

use core::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use stratalloc::{Arenas, BestFit, Heap, Identity, SegregatedFit, ThreadCache};

const BATCH: usize = 1000;

fn pair<A: GlobalAlloc>(a: &A) {
    let l = Layout::from_size_align(64, 8).expect("valid layout");
    // SAFETY: a non-zero layout; the block is live until freed with the same layout.
    unsafe {
        let p = a.alloc(l);
        assert!(!p.is_null());
        p.write(1);
        a.dealloc(black_box(p), l);
    }
}

fn batch<A: GlobalAlloc>(a: &A, layouts: &[Layout], order: &[usize], ptrs: &mut [*mut u8]) {
    for (p, l) in ptrs.iter_mut().zip(layouts) {
        // SAFETY: non-zero layouts.
        *p = unsafe { a.alloc(*l) };
        assert!(!p.is_null());
    }
    for &i in order {
        // SAFETY: each block is live and freed once with its layout.
        unsafe { a.dealloc(ptrs[i], layouts[i]) };
    }
}

fn bench<A: GlobalAlloc>(c: &mut Criterion, name: &str, a: &'static A) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let layouts: Vec<Layout> =
        (0..BATCH).map(|_| Layout::from_size_align(8 + (next() % 505) as usize, 8).expect("valid")).collect();
    let mut order: Vec<usize> = (0..BATCH).collect();
    for i in (1..BATCH).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    let mut ptrs = vec![core::ptr::null_mut(); BATCH];
    c.bench_with_input(BenchmarkId::new("pair64", name), &(), |b, _| b.iter(|| pair(a)));
    c.bench_with_input(BenchmarkId::new("batch", name), &(), |b, _| {
        b.iter(|| batch(a, &layouts, &order, &mut ptrs))
    });
}

macro_rules! heaps {
    ($c:ident; $($name:literal => $ty:ty),* $(,)?) => {$({
        static HEAP: Heap<$ty> = Heap::new();
        bench($c, $name, &HEAP);
    })*};
}

fn layers(c: &mut Criterion) {
    heaps!(c;
        "best-fit" => BestFit,
        "identity(best-fit)" => Identity<BestFit>,
        "segregated-fit" => SegregatedFit,
        "identity(segregated-fit)" => Identity<SegregatedFit>,
        "arenas(best-fit)" => Arenas<BestFit>,
        "tcache(best-fit)" => ThreadCache<BestFit>,
        "tcache(arenas(best-fit))" => ThreadCache<Arenas<BestFit>>,
    );
}

criterion_group!(benches, layers);
criterion_main!(benches);
