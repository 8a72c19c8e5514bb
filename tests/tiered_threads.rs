//! Multi-thread stress of `Tiered` with cross-thread frees, every byte checked: two threads
//! replacing each other's objects (larson-like), producer/consumer hand-off, threads that
//! exit while others still free their objects. The heap's checker runs at the end.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use stratalloc::{Heap, Mmap, Tiered, Tracked};

type TieredHeap = Heap<Tiered, Tracked<Mmap>>;

/// A block with its layout and the seed of its byte pattern.
#[derive(Copy, Clone)]
struct Block {
    ptr: usize,
    layout: Layout,
    seed: u8,
}

fn pattern(seed: u8, i: usize) -> u8 {
    seed ^ (i as u8).wrapping_mul(31)
}

fn make(heap: &TieredHeap, size: usize, align: usize, seed: u8) -> Block {
    let layout = Layout::from_size_align(size, align).unwrap();
    // SAFETY: non-zero size.
    let p = unsafe { heap.alloc(layout) };
    assert!(!p.is_null(), "allocation of {size} failed");
    assert_eq!(p as usize % align, 0);
    for i in 0..size {
        // SAFETY: the block is valid for `size` bytes.
        unsafe { p.add(i).write(pattern(seed, i)) };
    }
    Block { ptr: p as usize, layout, seed }
}

fn verify_and_free(heap: &TieredHeap, b: Block) {
    let p = b.ptr as *mut u8;
    for i in 0..b.layout.size() {
        // SAFETY: live block of `size` bytes.
        let got = unsafe { p.add(i).read() };
        assert_eq!(got, pattern(b.seed, i), "byte {i} of block {p:?} ({} bytes) corrupted", b.layout.size());
    }
    // SAFETY: live block of this heap with its layout.
    unsafe { heap.dealloc(p, b.layout) };
}

use workloads::Rng;

/// A size: 40% tiny, 50% small, 9% up to 32 KiB, 1% large.
fn size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=39 => 1 + rng.below(15),
        40..=89 => 16 + rng.below(1000),
        90..=98 => 1000 + rng.below(31_000),
        _ => 32_769 + rng.below(300_000),
    }
}

/// An alignment, mostly small.
fn align(rng: &mut Rng) -> usize {
    [1, 1, 1, 8, 8, 16, 64, 4096][rng.below(8)]
}

fn finish(heap: &TieredHeap) {
    heap.strategy().release_thread_cache();
    // SAFETY: every other thread has been joined.
    unsafe { heap.check() }.unwrap_or_else(|e| panic!("{e}"));
    let st = heap.stats();
    assert_eq!((st.live_bytes, st.live_objects), (0, 0), "{st:?}");
}

/// Two threads (plus a respawn) share a table of slots; each iteration frees the object in a
/// random slot, whoever allocated it, and puts a new one there.
#[test]
fn larson_like_replacement_across_threads() {
    let heap: &'static TieredHeap = Box::leak(Box::new(Heap::new()));
    let slots: Arc<Vec<Mutex<Option<Block>>>> = Arc::new((0..2000).map(|_| Mutex::new(None)).collect());
    for round in 0..3u64 {
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                let slots = slots.clone();
                thread::spawn(move || {
                    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15, round * 2 + t + 1);
                    for it in 0..8_000u32 {
                        let i = rng.below(slots.len());
                        let new = make(heap, size(&mut rng), align(&mut rng), (it as u8) ^ (t as u8));
                        let old = slots[i].lock().unwrap().replace(new);
                        if let Some(old) = old {
                            verify_and_free(heap, old);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // SAFETY: the threads of this round have exited; nobody uses the heap.
        unsafe { heap.check() }.unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    for s in slots.iter() {
        if let Some(b) = s.lock().unwrap().take() {
            verify_and_free(heap, b);
        }
    }
    finish(heap);
}

/// Producers allocate 64 B objects in batches, consumers free them.
#[test]
fn producer_consumer_hand_off() {
    let heap: &'static TieredHeap = Box::leak(Box::new(Heap::new()));
    let (tx, rx) = mpsc::sync_channel::<Vec<Block>>(8);
    let rx = Arc::new(Mutex::new(rx));
    let producers: Vec<_> = (0..2u8)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for batch in 0..200u32 {
                    let v: Vec<Block> =
                        (0..250).map(|i| make(heap, 64, 8, (batch as u8) ^ (i as u8) ^ t)).collect();
                    tx.send(v).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            thread::spawn(move || {
                loop {
                    let batch = rx.lock().unwrap().recv();
                    match batch {
                        Ok(v) => v.into_iter().for_each(|b| verify_and_free(heap, b)),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    for h in producers.into_iter().chain(consumers) {
        h.join().unwrap();
    }
    finish(heap);
}

/// Short-lived threads allocate and exit; their objects are freed later by others, and
/// their caches are reused by the next threads.
#[test]
fn exited_threads_objects_freed_elsewhere() {
    let heap: &'static TieredHeap = Box::leak(Box::new(Heap::new()));
    let mut kept = Vec::new();
    for round in 0..40u8 {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2u8)
            .map(|t| {
                let barrier = barrier.clone();
                thread::spawn(move || {
                    let mut rng = Rng::new(u64::from(round) * 7, u64::from(t) + 1);
                    let v: Vec<Block> =
                        (0..300).map(|i| make(heap, size(&mut rng), 8, round ^ i as u8)).collect();
                    barrier.wait();
                    v
                })
            })
            .collect();
        for h in handles {
            let v = h.join().unwrap();
            // Free half now (their threads are gone), keep half for later.
            let (now, later): (Vec<_>, Vec<_>) = v.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
            now.into_iter().for_each(|(_, b)| verify_and_free(heap, b));
            kept.extend(later.into_iter().map(|(_, b)| b));
        }
    }
    // SAFETY: all threads joined.
    unsafe { heap.check() }.unwrap_or_else(|e| panic!("{e}"));
    // Free the rest from several new threads at once.
    let chunks: Vec<Vec<Block>> = kept.chunks(1000).map(|c| c.to_vec()).collect();
    let hs: Vec<_> = chunks
        .into_iter()
        .map(|c| thread::spawn(move || c.into_iter().for_each(|b| verify_and_free(heap, b))))
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    finish(heap);
}

static TLS_HEAP: TieredHeap = Heap::new();

/// Holds blocks of `TLS_HEAP`; its destructor runs while the thread's TLS is torn down,
/// before or after the heap's own exit guard: it checks, frees and allocates there.
struct TlsHolder(std::cell::RefCell<Vec<Block>>);

impl Drop for TlsHolder {
    fn drop(&mut self) {
        for b in self.0.borrow_mut().drain(..) {
            verify_and_free(&TLS_HEAP, b);
        }
        let late: Vec<Block> = (0..100).map(|i| make(&TLS_HEAP, 8 + i * 7, 8, i as u8)).collect();
        late.into_iter().for_each(|b| verify_and_free(&TLS_HEAP, b));
    }
}

thread_local! {
    static EARLY: TlsHolder = const { TlsHolder(std::cell::RefCell::new(Vec::new())) };
    static LATE: TlsHolder = const { TlsHolder(std::cell::RefCell::new(Vec::new())) };
}

/// Frees and allocations from TLS destructors of exiting threads, registered before and
/// after the heap's exit guard.
#[test]
fn allocation_during_thread_teardown() {
    let hs: Vec<_> = (0..4u8)
        .map(|t| {
            thread::spawn(move || {
                EARLY.with(|h| h.0.borrow_mut().push(make(&TLS_HEAP, 40, 8, t)));
                let v: Vec<Block> = (0..200).map(|i| make(&TLS_HEAP, 1 + i % 300, 8, t ^ i as u8)).collect();
                LATE.with(|h| h.0.borrow_mut().extend(v));
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    finish(&TLS_HEAP);
}

/// A caller's region for a `Fixed` source, from `std::alloc` (large: a mapping of its own,
/// so using it after it is freed faults).
struct Region {
    base: *mut u8,
    layout: Layout,
}

impl Region {
    fn new(bytes: usize) -> Region {
        let layout = Layout::from_size_align(bytes, 1 << 12).unwrap();
        // SAFETY: non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        assert!(!base.is_null());
        Region { base, layout }
    }

    fn source(&self) -> stratalloc::Fixed {
        // SAFETY: the region outlives the heap built over it (each test drops the heap before
        // the region) and nothing else uses it meanwhile.
        unsafe { stratalloc::Fixed::new(self.base, self.layout.size()) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.base, self.layout) }
    }
}

/// Two more `Tiered` heaps on this thread (over `Mmap`), each allocating and freeing: the
/// thread's cache slots shift, and the oldest is evicted.
fn use_two_more_heaps() {
    for _ in 0..2 {
        let heap: Heap<Tiered> = Heap::new();
        let layout = Layout::from_size_align(48, 8).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { heap.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: allocated just above with this layout.
        unsafe { heap.dealloc(p, layout) };
        // Dropped: everything goes back to `Mmap`, and this thread's slot of it is cleared
        // (issue 22); the slots of the heaps before it are stale and never used again.
    }
}

/// Issue 16, item 6: three `Heap<Tiered, Fixed>` over regions too small for an arena (every
/// allocation fails, but the root and the arena index fit), dropped, their regions freed;
/// the thread's next heaps must not touch those regions through its cache slots.
#[test]
fn failed_fixed_heaps_leave_no_cache_slot() {
    thread::spawn(|| {
        for _ in 0..3 {
            let region = Region::new(40 << 20);
            let heap: Heap<Tiered, stratalloc::Fixed> = Heap::with_source(region.source());
            for size in [8, 100, 5000, 1 << 20] {
                let layout = Layout::from_size_align(size, 8).unwrap();
                // SAFETY: non-zero size.
                let p = unsafe { heap.alloc(layout) };
                assert!(p.is_null(), "a region without room for an arena served {size} bytes");
            }
            drop(heap);
            drop(region);
        }
        use_two_more_heaps();
    })
    .join()
    .unwrap();
}

/// The same with heaps whose allocations succeeded (all freed before the heap is dropped, as
/// `Fixed::new` requires): dropping the heap gives the thread's cache back.
#[test]
fn dropped_fixed_heaps_leave_no_cache_slot() {
    thread::spawn(|| {
        for _ in 0..3 {
            let region = Region::new(192 << 20);
            let heap: Heap<Tiered, stratalloc::Fixed> = Heap::with_source(region.source());
            let layouts = [8, 100, 5000, 1 << 20].map(|s| Layout::from_size_align(s, 8).unwrap());
            // SAFETY: non-zero sizes.
            let ps = layouts.map(|l| unsafe { heap.alloc(l) });
            for (p, l) in ps.into_iter().zip(layouts) {
                assert!(!p.is_null(), "allocation of {} failed", l.size());
                // SAFETY: allocated above with this layout.
                unsafe { heap.dealloc(p, l) };
            }
            drop(heap);
            drop(region);
        }
        use_two_more_heaps();
    })
    .join()
    .unwrap();
}
