//! `Order::Recorded`: a multi-threaded trace replayed with its threads runs its calls in
//! the recorded global order. The global allocator of this test binary logs every call it
//! gets for the trace's blocks (each op has a size of its own), so the order the allocator
//! saw is compared with the trace's, call by call.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use workloads::program_replay::{FlatOp, Options, Order, Plan, plan_checksum, replay};

/// Sizes of the trace's blocks: odd and in this range, which nothing else in the test
/// asks for.
const BASE: u64 = 1_000_001;
const LIMIT: u64 = BASE + 2 * 10_000;
/// Log entries: `kind << 32 | size`, kind 1 alloc, 3 realloc (new size), 4 free.
const LOG_LEN: usize = 4096;

struct Logging;

static ON: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicUsize = AtomicUsize::new(0);
static LOG: [std::sync::atomic::AtomicU64; LOG_LEN] =
    [const { std::sync::atomic::AtomicU64::new(0) }; LOG_LEN];
/// One replay at a time logs (the test harness runs tests on several threads).
static SERIAL: Mutex<()> = Mutex::new(());

fn note(kind: u64, size: usize) {
    let size = size as u64;
    if ON.load(Ordering::Relaxed) && (BASE..LIMIT).contains(&size) && size % 2 == 1 {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = LOG.get(i) {
            slot.store(kind << 32 | size, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is passed to `System` unchanged; the log is lock-free and allocates
// nothing.
unsafe impl GlobalAlloc for Logging {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(1, layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(1, layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(4, layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(3, new_size);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Logging = Logging;

/// A trace of `threads` threads and `objects` objects, each allocated by one thread,
/// resized by a second and freed by a third (mostly cross-thread), the calls interleaved
/// by a seeded generator; every call's size is its own (odd, in `BASE..LIMIT`).
fn trace(threads: u32, objects: u32) -> Vec<FlatOp> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % u64::from(n)) as u32
    };
    let mut size = BASE;
    let mut fresh = move || {
        size += 2;
        size
    };
    // Each object's remaining ops; pick a random object with ops left at each step.
    let mut stage = vec![0u32; objects as usize];
    let owners: Vec<[u32; 3]> = (0..objects).map(|_| [next(threads), next(threads), next(threads)]).collect();
    let mut ops = Vec::new();
    // Objects open for their next op (at most 8 live at once, so calls interleave closely).
    let (mut open, mut started) = (Vec::<u32>::new(), 0u32);
    while started < objects || !open.is_empty() {
        if started < objects && (open.len() < 8 && next(3) != 0 || open.is_empty()) {
            open.push(started);
            started += 1;
        }
        let k = next(open.len() as u32) as usize;
        let o = open[k];
        let s = stage[o as usize];
        let (kind, size) = match s {
            0 => (1, fresh()),
            1 => (3, fresh()),
            _ => (4, 0),
        };
        ops.push(FlatOp {
            thread: owners[o as usize][s as usize],
            object: o,
            stage: s,
            kind,
            align_log2: 3,
            pad: [0; 2],
            size,
        });
        stage[o as usize] += 1;
        if s == 2 {
            open.swap_remove(k);
        }
    }
    ops
}

/// The log entries the ops should give, in order: a free logs the block's size then.
fn expected(ops: &[FlatOp], objects: u32) -> Vec<u64> {
    let mut size = vec![0u64; objects as usize];
    ops.iter()
        .map(|op| {
            if op.kind != 4 {
                size[op.object as usize] = op.size;
            }
            u64::from(op.kind) << 32 | size[op.object as usize]
        })
        .collect()
}

fn logged<R>(f: impl FnOnce() -> R) -> (R, Vec<u64>) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    NEXT.store(0, Ordering::Relaxed);
    ON.store(true, Ordering::SeqCst);
    let r = f();
    ON.store(false, Ordering::SeqCst);
    let n = NEXT.load(Ordering::Relaxed).min(LOG_LEN);
    (r, LOG[..n].iter().map(|e| e.load(Ordering::Relaxed)).collect())
}

#[test]
fn recorded_order_runs_every_call_in_the_trace_order_on_its_threads() {
    let (threads, objects) = (4, 300);
    let ops = trace(threads, objects);
    assert_eq!(ops.len(), 3 * objects as usize);
    let handoffs = ops.windows(2).filter(|w| w[0].thread != w[1].thread).count();
    assert!(handoffs > ops.len() / 2, "the trace changes thread often ({handoffs} of {})", ops.len());
    let plan = Plan::new(&ops, objects, threads);
    let want = expected(&ops, objects);
    for whole in [true, false] {
        let (r, log) = logged(|| replay(&plan, Options { order: Order::Recorded, whole }, || None));
        let r = r.unwrap_or_else(|e| panic!("recorded replay failed: {e}"));
        assert_eq!(r.threads, threads as usize);
        assert_eq!(r.checksum, plan_checksum(&plan));
        assert_eq!(r.samples.last().expect("the end sample").live, 0);
        assert_eq!(log.len(), want.len(), "calls logged (whole {whole})");
        let first = log.iter().zip(&want).position(|(a, b)| a != b);
        assert_eq!(first, None, "the allocator saw a call out of the recorded order (whole {whole})");
    }
    // The free-running replay makes the same calls (in an order the scheduler picks) and
    // passes the same checks.
    let (r, mut log) = logged(|| replay(&plan, Options { order: Order::Threads, whole: true }, || None));
    assert_eq!(r.expect("threaded replay").checksum, plan_checksum(&plan));
    let mut sorted = want.clone();
    sorted.sort_unstable();
    log.sort_unstable();
    assert_eq!(log, sorted);
}
