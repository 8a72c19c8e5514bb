//! The scavenger: gives free pages back to the OS, toward a retained-memory target.
//!
//! Go original: `runtime/mgcscavenge.go` (the background scavenger, `scavengeOne`, the
//! `retainExtraPercent` goal). Go runs it in the background at about 1% of a CPU and
//! synchronously when the heap grows past its limit. stratalloc has no background thread:
//! the work runs synchronously in bounded steps (`Root::background`) paced by the work the
//! program does, whatever path it takes, and in full on `trim`:
//! - every large allocation; every [`FREE_STEP_BYTES`] of large objects freed (and any
//!   large free that leaves an arena dedicated to an over-aligned object without a span, so
//!   that it goes back at once): frees paced by bytes, like the frees below, so that
//!   dropping many mid-sized large objects is not many steps (it would end the hold below
//!   while the program is about to reuse them);
//! - every 16th cache refill from mcentral;
//! - every [`FREE_STEP_BYTES`] freed through a thread's cache off the owner's fast path
//!   (frees into spans the cache does not own, which go on remote or pending stacks).
//!   Those are the frees that bring spans, and so pages, back to the heap;
//!   the owner's free of a small object only clears a bit in a span it keeps owning;
//! - every [`OP_STEP_ALLOCS`] allocations a thread's cache serves on its fast path (a
//!   countdown in the mcache: one decrement and one branch per allocation). So a program
//!   that frees a large heap and then only allocates and frees objects its cache serves
//!   without a refill still runs steps, and the hold below ends.
//!
//! # Hold (a departure from Go's target, for a heap without a heap goal)
//! A program that drops a large structure and builds another at once (serde_json: drop a
//! parsed `Value`, parse again) would, with a target relative to the pages in use *now*,
//! see the freed pages released during the drop and fault every one of them in again
//! (measured: far more page faults than without a scavenger; figures in benches/README.md). Go keeps memory up
//! to its heap goal, which follows the previous peak; mimalloc purges after a delay. Here
//! the target is measured from a *held peak* (`hold_peak_pages`): raised to the pages in use
//! whenever they reach it (which re-arms the hold: [`HOLD_STEPS`] steps), and each bounded
//! step in which the pages in use did not grow since the previous step ages the hold by
//! one; when it ends, the peak falls to the pages in use. So memory freed below the peak
//! stays Ready while the program builds its heap back up (steps in which the heap grows do
//! not count) and goes back to the OS after at most [`HOLD_STEPS`] steps in which it does
//! not: a bounded amount of further work (`tests/tiered_scavenger.rs`). A drop larger than
//! about `HOLD_STEPS` × `FREE_STEP_BYTES` (384 MiB) ends its own hold while it runs.
//!
//! # Glossary
//! - *retained*: free pages that are Ready (`free_ready_pages`), i.e. resident but unused.
//! - *target*: retained may be [`RETAIN_EXTRA_PERCENT`] % of the pages in use (see
//!   "Goal" below) or, if more, the held peak minus the
//!   pages in use (see "Hold": the heap may grow back to its held peak without a fault), and
//!   never has to go below [`RETAIN_MIN_PAGES`] (4 MiB), so that small heaps do not make a
//!   system call per free. (Holding 10 % above the held peak instead raised serde_json's
//!   peak RSS for few fewer page faults; figures in benches/README.md.)
//! - *in-flight run*: the run of pages one scavenger is giving back right now, taken out of
//!   the page allocator (marked in use, no span) while the heap lock is released.
//!
//! # Goal (issue 17)
//! Go's scavenger keeps the heap's retained memory (in use plus free Ready) at about 10 %
//! over the heap goal, and the heap goal under the default `GOGC=100` is twice the live
//! heap: a Go program keeps up to about as much free memory resident as it has live. Here
//! the pages in use are the live heap (frees are explicit), so the proportional part of the
//! target is 100 % of them. A target of 10 % of the pages in use (Go's `retainExtraPercent`
//! alone, without the heap goal's doubling) gave back the runs a program freeing and
//! allocating large blocks of mixed sizes needs next, so that they faulted in again (about
//! four times the page faults on malloc-large); 50 % gave more faults and no lower peak
//! (figures in benches/README.md, issue 17).
//! Small heaps are unaffected (the 4 MiB minimum dominates), and a heap that has freed
//! nearly everything keeps only that minimum: the return-memory guarantees of issue 16
//! measure retained memory against a heap in use near zero.
//!
//! # Work (`MHeap::scavenge`)
//! One scavenger at a time (`MHeap::scav_lock`; a background step that finds it busy skips).
//! Repeatedly, until `max_pages` are released or retained memory is down to the goal:
//! 1. Under the heap lock, find the highest run of pages that are free and not yet
//!    scavenged (in a region with no page in use, for a background step), at most one
//!    bitmap word ([`SCAVENGE_RUN_PAGES`] = 64 pages, 512 KiB), below the previous one
//!    (the page allocator takes the lowest first, so these are the last to be reused); mark it in use so that no allocation can take it (Go's `scavengeOne` does the
//!    same with `allocRange`), and record it as the in-flight run.
//! 2. Release the heap lock; call `PageSource::unused` (Ready → Prepared, Linux
//!    `MADV_DONTNEED`) on the run.
//! 3. Under the heap lock again, mark the run free and set its scavenged bits (or, if
//!    `unused` failed, leave them clear: the pages are still Ready).
//!
//! 4. (Background steps only, when a freed span has left an arena without a span:
//!    `empty_arena_hint`.) Arenas that hold nothing and whose pages are all scavenged, or
//!    that were reserved for an over-aligned request, go back to the source, address space
//!    and all (`MHeap::release_empty_arenas`, under this scavenger's lock, the system calls
//!    after the heap lock is released).
//!
//! So the heap lock is never held across a system call: it is held for the bitmap walk and a
//! few bit updates, and an allocation that needs the lock meanwhile waits for at most that,
//! not for the kernel to tear down up to 8 MiB of mappings (the choice of Go as well). The
//! cost is one more lock round trip per 512 KiB released. The page allocator calls `used` on
//! scavenged pages again when it hands them out.
//!
//! # Huge pages
//! Arenas carry the huge-page hint (mheap.rs, `grow`), so the kernel backs their touched
//! 2 MiB regions with transparent huge pages. Releasing part of such a region splits its huge
//! page: the pages still in use are then mapped 4 KiB at a time, and the kernel's
//! `khugepaged` may collapse the region again later, faulting the released pages back in.
//! So the background steps skip *dense* regions, as Go's scavenger skips dense chunks: a
//! region ([`REGION_PAGES`], 2 MiB) with more than a quarter of its pages in use
//! ([`REGION_DENSE_PAGES`]) keeps its free pages Ready, and its huge page whole, until its
//! spans go. A sparser region is released from (its few spans lose their huge page, which
//! maps mostly free memory). Free runs in regions with nothing in use are released whole,
//! highest first, as before. Without the rule the scavenger releases the holes between a
//! dense region's spans, 512 KiB at a time. `trim` (`Goal::All`) releases every free page.
//! (Requiring regions with *no* page in use was tried: small-object heaps keep a span or two
//! of many classes scattered over the arenas, and the tests of issue 16's return
//! guarantees, `tests/tiered_return.rs`, then saw nothing given back at all.)
//!
//! Not done (Go does): pacing by CPU time (the hold is counted in steps of allocator work,
//! not in time).
//!
//! # Invariants
//! `inuse_pages <= hold_peak_pages` (a rise past it raises it); `hold_steps_left <=
//! HOLD_STEPS`. A scavenged page is free; `free_ready_pages` counts free pages whose scavenged bit is
//! clear; the in-flight run (if any) is marked in use, has no span, is not scavenged, and
//! is counted neither in `inuse_pages` nor in `free_ready_pages` (checked by
//! `Tiered::check`).

use core::ptr::NonNull;

use super::arena::ARENA_PAGES;
use super::mheap::{HeapInner, MHeap};
use super::pagealloc::set_bits;
use super::sizeclass::PAGE_BYTES;
use crate::source::PageSource;

/// Retained free memory allowed, in percent of the pages in use (Go's heap goal under
/// `GOGC=100`: see "Goal").
pub const RETAIN_EXTRA_PERCENT: usize = 100;
/// Retained pages that are always allowed (4 MiB).
pub const RETAIN_MIN_PAGES: usize = 512;
/// Most pages one bounded step gives back (8 MiB).
pub const SCAVENGE_STEP_PAGES: usize = 1024;
/// Most pages one `unused` call gives back (one bitmap word, 512 KiB).
pub const SCAVENGE_RUN_PAGES: usize = 64;
/// Bytes freed through a thread's cache, off the owner's fast path, between two bounded
/// steps (4 MiB).
pub const FREE_STEP_BYTES: usize = 4 << 20;

/// Bounded background steps, in which the pages in use did not grow, that memory freed
/// below the peak stays retained (see "Hold").
pub const HOLD_STEPS: usize = 96;
/// Allocations served by a thread cache's fast path between two bounded steps.
pub const OP_STEP_ALLOCS: u32 = 4096;

/// Pages of a huge-page region (2 MiB, the x86-64 transparent huge page; arenas are
/// aligned to 64 MiB, so regions are aligned to 2 MiB): the background scavenger releases
/// nothing from a *dense* region, one with more than [`REGION_DENSE_PAGES`] pages in use
/// (see "Huge pages").
pub const REGION_PAGES: usize = (2 << 20) / PAGE_BYTES;
/// Most pages in use in a region the background scavenger releases from (a quarter).
pub const REGION_DENSE_PAGES: usize = REGION_PAGES / 4;
/// Bitmap words of a region.
const REGION_WORDS: usize = REGION_PAGES / 64;
const _: () = assert!(REGION_PAGES.is_multiple_of(64) && ARENA_PAGES.is_multiple_of(REGION_PAGES));

/// How far a scavenge goes.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Goal {
    /// Down to the retained-memory target (background steps).
    Target,
    /// Every free page (trim).
    All,
}

/// A run of pages being given back (the in-flight run).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ScavRun {
    /// First byte, derived from its arena's base.
    pub base: NonNull<u8>,
    /// Runtime pages.
    pub npages: usize,
}

impl ScavRun {
    /// No run.
    pub const NONE: ScavRun = ScavRun { base: NonNull::dangling(), npages: 0 };

    /// First byte, as an address.
    pub fn addr(&self) -> usize {
        self.base.as_ptr().addr()
    }
}

impl HeapInner {
    // ANCHOR: target
    /// Retained free pages allowed by the target: [`RETAIN_EXTRA_PERCENT`] % of the pages
    /// in use, or as many as the pages in use may grow by to reach the held peak again.
    pub fn retain_target_pages(&self) -> usize {
        let held = self.hold_peak_pages.saturating_sub(self.inuse_pages);
        held.max(self.inuse_pages * RETAIN_EXTRA_PERCENT / 100).max(RETAIN_MIN_PAGES)
    }

    /// Whether retained memory is above the target.
    pub fn over_target(&self) -> bool {
        self.free_ready_pages > self.retain_target_pages()
    }

    /// Called whenever `inuse_pages` grows: a new peak (re)arms the hold.
    #[inline]
    pub(super) fn note_inuse_rise(&mut self) {
        if self.inuse_pages >= self.hold_peak_pages {
            self.hold_peak_pages = self.inuse_pages;
            self.hold_steps_left = HOLD_STEPS;
        }
    }

    /// One bounded background step: if the heap did not grow since the previous step, the
    /// hold ages by one, and when it ends the peak falls to the pages in use now.
    pub(super) fn age_hold(&mut self) {
        if self.inuse_pages <= self.step_inuse_pages {
            self.hold_steps_left = self.hold_steps_left.saturating_sub(1);
            if self.hold_steps_left == 0 {
                self.hold_peak_pages = self.inuse_pages;
            }
        }
        self.step_inuse_pages = self.inuse_pages;
    }
    // ANCHOR_END: target

    /// Free Ready pages a scavenger working toward `goal` may still give back.
    fn excess_pages(&self, goal: Goal) -> usize {
        match goal {
            Goal::Target if !self.over_target() => 0,
            Goal::Target => self.free_ready_pages - self.retain_target_pages(),
            Goal::All => self.free_ready_pages,
        }
    }

    // ANCHOR: take_run
    /// Step 1: the highest run of free, unscavenged pages that ends at or below `below`, at
    /// most `max_pages` long and inside one bitmap word, taken out of the page allocator as
    /// the in-flight run. With `sparse_only`, only from huge-page regions ([`REGION_PAGES`])
    /// with at most [`REGION_DENSE_PAGES`] pages in use (see "Huge pages").
    pub(super) fn take_scavenge_run(
        &mut self,
        below: usize,
        max_pages: usize,
        sparse_only: bool,
    ) -> Option<ScavRun> {
        for ai in (0..self.narenas).rev() {
            // SAFETY: the arena list holds initialised arenas, reached by shared reference
            // only (other threads read their span maps).
            let a = unsafe { &*self.arenas[ai] };
            // SAFETY: `&mut self` proves the heap lock held; no other reference to this
            // arena's pages is made while `pages` lives.
            let pages = unsafe { a.pages_mut() };
            if a.base_addr() >= below {
                continue;
            }
            let top_page = ((below - a.base_addr()) / PAGE_BYTES).min(ARENA_PAGES);
            for w in (0..top_page.div_ceil(64)).rev() {
                let mut cand = !pages.alloc[w] & !pages.scav[w];
                if top_page < (w + 1) * 64 {
                    cand &= (1u64 << (top_page - w * 64)) - 1;
                }
                if cand == 0 {
                    continue;
                }
                if sparse_only {
                    let r = w / REGION_WORDS * REGION_WORDS;
                    let used: u32 = pages.alloc[r..r + REGION_WORDS].iter().map(|u| u.count_ones()).sum();
                    if used as usize > REGION_DENSE_PAGES {
                        continue;
                    }
                }
                let hi = 63 - cand.leading_zeros() as usize;
                let run = ((!(cand << (63 - hi))).leading_zeros() as usize).min(max_pages);
                let first = w * 64 + hi + 1 - run;
                pages.mark(first, run, true);
                self.free_ready_pages -= run;
                // SAFETY: `first < ARENA_PAGES`: inside the arena's reservation.
                let r = ScavRun { base: unsafe { a.base().add(first * PAGE_BYTES) }, npages: run };
                self.scav_inflight = r;
                return Some(r);
            }
        }
        None
    }

    /// Step 3: the in-flight run goes back to the page allocator, scavenged if `released`.
    pub(super) fn finish_scavenge_run(&mut self, r: ScavRun, released: bool) {
        let a = self.arena_of(r.addr());
        let first = (r.addr() - a.base_addr()) / PAGE_BYTES;
        // SAFETY: `&mut self` proves the heap lock held; no other reference to this arena's
        // pages is made while `pages` lives.
        let pages = unsafe { a.pages_mut() };
        pages.mark(first, r.npages, false);
        if released {
            set_bits(&mut pages.scav, first, r.npages, true);
            self.scavenged_pages_total += r.npages;
        } else {
            self.free_ready_pages += r.npages;
        }
        self.scav_inflight = ScavRun::NONE;
    }
    // ANCHOR_END: take_run
}

impl MHeap {
    // ANCHOR: scavenge
    /// Gives back up to `max_pages` free Ready pages, highest first, while retained memory is
    /// above `goal`, without holding the heap lock across `unused`. When another scavenger
    /// is at work, waits for it if `wait`, else returns 0 at once. Returns the pages given
    /// back.
    pub fn scavenge<P: PageSource>(&self, src: &P, max_pages: usize, goal: Goal, wait: bool) -> usize {
        let _one = if wait {
            self.scav_lock.lock()
        } else {
            match self.scav_lock.try_lock() {
                Some(g) => g,
                None => return 0,
            }
        };
        if goal == Goal::All {
            // Everything: the page cache's free pages too (see "Page cache" in mheap.rs).
            self.lock.lock().flush_pcache();
        }
        let arenas = goal == Goal::Target && {
            let mut h = self.lock.lock();
            h.age_hold();
            h.empty_arena_hint
        };
        let (mut released, mut below) = (0, usize::MAX);
        while released < max_pages {
            let run = {
                let mut h = self.lock.lock();
                let budget = (max_pages - released).min(h.excess_pages(goal)).min(SCAVENGE_RUN_PAGES);
                if budget == 0 {
                    break;
                }
                h.take_scavenge_run(below, budget, goal == Goal::Target)
            };
            let Some(r) = run else { break };
            // SAFETY: the run is free, Ready and mapped (alloc and scav bits were clear) in an
            // arena from `src`; marked in use as the in-flight run, nothing else touches it.
            let ok = unsafe { src.unused(r.base, r.npages * PAGE_BYTES) }.is_ok();
            self.lock.lock().finish_scavenge_run(r, ok);
            if !ok {
                break;
            }
            released += r.npages;
            below = r.addr();
        }
        if arenas {
            // Arenas without a span go back to the source, address space and all, once their
            // pages are scavenged (or at once if dedicated): see `release_empty_arenas`.
            self.release_empty_arenas_held(src);
        }
        released
    }
    // ANCHOR_END: scavenge
}
