//! A deliberately broken allocator, for the test that the driver reports it FAILED.
//!
//! Every 97th allocation of 16..=4096 bytes returns the block handed out just before it
//! (so two live blocks overlap) instead of fresh memory. Its `--describe` kind is `test`,
//! so the driver runs it only when named with `--allocators`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

struct Overlapping;

static CALLS: AtomicUsize = AtomicUsize::new(0);
static LAST: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
static LAST_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Pointers handed out twice; their second free is skipped so the process does not abort
/// in the system allocator before the workload's own check reports the overlap.
static TWICE: [AtomicPtr<u8>; 256] = [const { AtomicPtr::new(ptr::null_mut()) }; 256];

fn remember_twice(p: *mut u8) -> bool {
    TWICE.iter().any(|s| s.compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Relaxed).is_ok())
}

// SAFETY: NOT SOUND ON PURPOSE: it breaks GlobalAlloc's disjointness guarantee to show that
// the harness catches such an allocator. Everything else is forwarded to `System`.
unsafe impl GlobalAlloc for Overlapping {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        let last = LAST.load(Ordering::Relaxed);
        let fits = (16..=4096).contains(&layout.size())
            && layout.size() <= LAST_BYTES.load(Ordering::Relaxed)
            && layout.align() <= 16;
        if n % 97 == 96 && fits && !last.is_null() && remember_twice(last) {
            return last;
        }
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if (16..=4096).contains(&layout.size()) {
            LAST.store(p, Ordering::Relaxed);
            LAST_BYTES.store(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if let Some(slot) = TWICE.iter().find(|s| s.load(Ordering::Relaxed) == p) {
            slot.store(ptr::null_mut(), Ordering::Relaxed);
            return;
        }
        let _ = LAST.compare_exchange(p, ptr::null_mut(), Ordering::Relaxed, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(p, layout) }
    }
}

#[global_allocator]
static GLOBAL: Overlapping = Overlapping;

fn main() {
    comparisons::runner::main("broken-overlap", "test")
}
