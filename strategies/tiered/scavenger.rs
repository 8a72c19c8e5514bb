//! The scavenger: gives free pages back to the OS, toward a retained-memory target.
//!
//! Go original: `runtime/mgcscavenge.go` (the background scavenger, `scavengeOne`, the
//! `retainExtraPercent` goal). Go runs it in the background at about 1% of a CPU and
//! synchronously when the heap grows past its limit. stratalloc has no background thread:
//! the work runs synchronously on slow paths (large allocation and free, span refill from
//! mcentral), bounded per call, and in full on `trim`.
//!
//! # Glossary
//! - *retained*: free pages that are Ready (`free_ready_pages`), i.e. resident but unused.
//! - *target*: retained may be at most [`RETAIN_EXTRA_PERCENT`] % of the pages in use (Go's
//!   goal: retained memory about 10% above the heap in use), and never has to go below
//!   [`RETAIN_MIN_PAGES`] (4 MiB), so that small heaps do not make a system call per free.
//!
//! # Work (`scavenge`)
//! From the highest address down (the page allocator takes the lowest first, so these pages
//! are the last to be reused), find runs of pages that are free and not yet scavenged, one
//! bitmap word (64 pages) at a time, call `PageSource::unused` (Ready → Prepared, Linux
//! `MADV_DONTNEED`), and set their scavenged bits. The page allocator calls `used` on them
//! again when it hands them out. At most `max_pages` per call.
//!
//! Not done (Go does): skipping dense chunks, never splitting a huge page, pacing by CPU time.
//!
//! # Invariants
//! A scavenged page is free; `free_ready_pages` counts free pages whose scavenged bit is
//! clear (checked by `Tiered::check`).

use core::ptr::NonNull;

use super::arena::ARENA_PAGES;
use super::mheap::HeapInner;
use super::pagealloc::set_bits;
use super::sizeclass::PAGE_BYTES;
use crate::source::PageSource;

/// Extra retained memory allowed, in percent of the pages in use (Go's
/// `retainExtraPercent`).
pub const RETAIN_EXTRA_PERCENT: usize = 10;
/// Retained pages that are always allowed (4 MiB).
pub const RETAIN_MIN_PAGES: usize = 512;
/// Most pages one slow-path call gives back (8 MiB).
pub const SCAVENGE_STEP_PAGES: usize = 1024;

impl HeapInner {
    /// Retained free pages allowed by the target.
    pub fn retain_target_pages(&self) -> usize {
        (self.inuse_pages * RETAIN_EXTRA_PERCENT / 100).max(RETAIN_MIN_PAGES)
    }

    /// Whether retained memory is above the target.
    pub fn over_target(&self) -> bool {
        self.free_ready_pages > self.retain_target_pages()
    }

    /// Gives back up to `max_pages` free Ready pages, highest first, while more than `keep`
    /// are retained. Returns the pages given back.
    pub fn scavenge<P: PageSource>(&mut self, src: &P, max_pages: usize, keep: usize) -> usize {
        let mut released = 0;
        for ai in (0..self.narenas).rev() {
            // SAFETY: registered arenas are initialised; the heap lock is held (`&mut self`).
            let a = unsafe { &mut *self.arenas[ai] };
            for w in (0..ARENA_PAGES / 64).rev() {
                let mut cand = !a.pages.alloc[w] & !a.pages.scav[w];
                while cand != 0 {
                    let budget = (max_pages - released).min(self.free_ready_pages.saturating_sub(keep));
                    if budget == 0 {
                        return released;
                    }
                    let hi = 63 - cand.leading_zeros() as usize;
                    let run = ((!(cand << (63 - hi))).leading_zeros() as usize).min(budget);
                    let lo = hi + 1 - run;
                    let first = w * 64 + lo;
                    let addr = a.base + first * PAGE_BYTES;
                    // SAFETY: the pages are free and Ready (alloc and scav bits clear) in an
                    // arena from `src`; nothing uses their contents.
                    let r = unsafe { src.unused(NonNull::new_unchecked(addr as *mut u8), run * PAGE_BYTES) };
                    if r.is_err() {
                        return released;
                    }
                    set_bits(&mut a.pages.scav, first, run, true);
                    let mask = if run == 64 { !0 } else { ((1u64 << run) - 1) << lo };
                    cand &= !mask;
                    self.free_ready_pages -= run;
                    self.scavenged_pages_total += run;
                    released += run;
                }
            }
        }
        released
    }
}
