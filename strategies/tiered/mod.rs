//! `Tiered`: the Go runtime's allocator, complete, in Rust, with explicit free.
//!
//! Go original: `runtime/malloc.go` and the files it names; each file of this module opens
//! with the Go structure it mirrors:
//!
//! | file | Go | role |
//! |---|---|---|
//! | `sizeclass.rs` | `_mkmalloc/mksizeclasses.go`, `sizeclasses.go` | 68 size classes, generated |
//! | `span.rs` | `mspan`, `nextFreeFast` | a run of pages cut into objects of one class |
//! | `mcache.rs` | `mcache`, `refill`, `releaseAll` | per-thread current and owned spans, no lock |
//! | `freestack.rs` | (none: Go has a GC) | per-class stacks of a thread's last frees |
//! | `tls.rs` | `p.mcache`, `getMCache` | binds caches to threads, exit guard |
//! | `malloc.rs` | `mallocgc`, `largeAlloc` | the malloc and free paths (`Tiered`, `Root`) |
//! | `mcentral.rs` | `mcentral` | per-span-class lists of spans nobody caches |
//! | `mheap.rs` | `mheap` | page runs, large objects, arenas, metadata |
//! | `pagealloc.rs` | `pageAlloc` | bitmap and summaries, lowest address first |
//! | `arena.rs` | `heapArena`, `spanOf` | 64 MiB arenas, page → span map |
//! | `scavenger.rs` | `mgcscavenge.go` | gives free pages back to the OS |
//! | `remote.rs` | (none: Go has a GC) | lock-free remote-free stack |
//! | `fixalloc.rs` | `fixalloc`, `persistentalloc` | metadata from the page source |
//!
//! # Glossary
//! - *runtime page*: 8 KiB ([`sizeclass::PAGE_BYTES`]); *OS page*: the source's unit.
//! - *small object*: up to 32 KiB with alignment up to 32 KiB (a class whose objects have
//!   it: `CLASS_ALIGN`), served from a span of its size class; *large object*: anything
//!   else, a whole page run (class 0).
//! - *live*: an object handed out to the program and not freed; each span keeps one *live
//!   bit* per object beside its alloc bits (see "Liveness" in span.rs). An object on a free
//!   stack, in an alloc cache, or on its way to the span's holder (a remote free) has its
//!   alloc bit set but is not live.
//! - *root*: every structure of one heap ([`Root`]), in memory from the page source, made at
//!   the first allocation and given back by `release_all`; [`Tiered`] itself is a pointer
//!   (the root) and a lock, so it fits a `static` and may be moved.
//!
//! # Small requests: no tiny allocator (issue 22)
//! Go bumps requests under 16 B into shared 16 B blocks. A sub-block of such a block has no
//! exact record of its start and size, which `block_of` and the free by address need, and
//! keeping one would cost an atomic read-modify-write per tiny allocation. So, as in mimalloc
//! and glibc, a request under 16 B takes a whole object: the 8 B class (class 1) up to 8 B,
//! the 16 B class from 9 B, and the 16 B class for C's `malloc(1..=15)`, whose alignment is 16
//! (class 1's objects are only 8-aligned).
//!
//! # Alloc path (one allocation through every tier)
//! 1. `Tiered::alloc` tries `alloc_fast`: the thread's mcache (thread-local, most recent
//!    heap), then the class of the size rounded up to the alignment (`size_to_class8` /
//!    `size_to_class128`), if that class's objects have the alignment (`CLASS_ALIGN`: every
//!    class but 8 B and 24 B serves C's 16); the top of the class's free stack if it has one
//!    (see freestack.rs), else the current span of the span class, `next_free_fast`: a
//!    count-trailing-zeros in `allocCache`. Either marks the object live (a plain store to
//!    the span's live bits, which this thread holds). No lock, no atomic read-modify-write,
//!    no call, so no register is saved. A countdown in the mcache (`count_op`) sends every `OP_STEP_ALLOCS`th
//!    allocation to `op_step` (a tail call): a bounded step of background work
//!    (scavenger.rs).
//! 2. Alloc cache empty: `mcache::refill` (a tail call from the fast path): the next bitmap
//!    word of the span, else the span's sweep and rewind, else an owned span worth a
//!    refill, else `mcentral::cache_span` (a partial span worth a refill, after collecting
//!    its remote frees) → `mcentral::grow` → `mheap::alloc_span` (page allocator, grows by
//!    arenas) → `PageSource` (`reserve`, `map`, `used`).
//! 3. Everything else (`alloc_slow`): the heap's creation, the thread's first cache, large
//!    objects (`mheap::alloc_span` under the heap lock), alignments the size's class lacks
//!    (`class_for_aligned` finds a class that has them).
//!
//! # Free path, and how a freed object becomes reusable (the explicit-free decision)
//! Go never frees: its sweeper rebuilds a span's alloc bits from the GC's mark bits and
//! rewinds `freeindex`. mimalloc gives each page a local free list plus an atomic list for
//! other threads. stratalloc keeps Go's bitmaps and makes the bit itself the truth:
//! 1. `spanOf(ptr)` (arena index, then the arena's page → span map): O(1), no header, the
//!    same for `dealloc` (whose layout is not needed) and the free by address (`free`).
//!    Every step checks: an address outside the index, with no arena or no span, is
//!    `Foreign`; one that does not start an object (`Span::object_at`) is `Interior`; an
//!    object that is not live is `NotLive` (a double free). `free_addr` in malloc.rs
//!    (`dealloc_fast` for `dealloc`). The owner's free looks first in the arena its cache
//!    found last, at the span it maps the page to, and goes on only if the cache owns that
//!    span (`find_mine`); every other free takes the index (`find_small`).
//! 2. A free by the owner of the span (the fast path; the owner test compares the span's
//!    owner with the thread's cache for this heap, `tls::peek`): `take_live` clears the
//!    live bit (a plain load and store: the owner holds the span), then the object goes
//!    onto this thread's free stack for its class (freestack.rs), unless the stack is full.
//!    Its alloc bit stays set: to its span it is still allocated (to the thread's cache).
//!    The thread's next allocation of that class takes it back, newest first, while it is
//!    likely still in the processor's cache. Only a full stack sends the free on to 3.
//! 3. The owner of the span (the mcache whose current span it is, or that keeps it on its
//!    owned list, see mcache.rs) clears the object's bit: no lock, no atomic, no call (the
//!    fast path of `Tiered::dealloc`). The object is reused when the owner next scans the
//!    span: once a span has a quarter of its objects free (`Span::refill_min`), the owner's
//!    refill rewinds it to object 0 (Go's sweep, done by the owner, for one span, when it
//!    is worth it) or takes it from the head of its owned list.
//! 4. Another thread's free of an object in an owned span first claims the object's remote
//!    bit (`Span::claim_remote`, one `fetch_or`: a second claim, or a claim of an object
//!    whose live bit is clear, is refused), then holds it back in the freeing thread's
//!    cache with its other frees into the same span, which go onto the span's remote stack
//!    together (one CAS for up to `REMOTE_CHAIN_MAX` frees, lock-free, loom-tested;
//!    "Held-back remote frees" in mcache.rs; a thread without a cache, which its first free
//!    makes if it can, pushes each free); the owner collects the stack at the end of a scan and
//!    when it looks for an owned span worth a refill, and mcentral collects it when the span
//!    changes hands. Collecting clears the live and alloc bits of every object taken, then
//!    their remote bits, one `fetch_and` per bitmap word (`Span::collect_remote`).
//! 5. A free into a span that nobody owns (on mcentral's lists) claims the remote bit as in
//!    4 and goes on that mcentral's pending stack (one CAS, no lock); the next cacheSpan (or background step, or trim)
//!    drains it under the lock: the bit is cleared, a full span becomes partial (at the
//!    tail: the lists are FIFO, so the span cacheSpan hands out has had the longest time to
//!    collect frees), an empty span becomes the class's one spare or goes back to the heap
//!    (Go's sweeper frees dead spans the same way).
//! 6. Large objects: the heap lock, under which the span is looked up again and its one
//!    live bit checked and cleared (so two frees of one large object never both succeed),
//!    and the pages go back to the page allocator, Ready, for
//!    the next large request; the scavenger releases them when too many are retained.
//!
//! The cached paths (`Strategy::alloc_cached`, `free_cached`; `alloc_cached` and
//! `free_cached` in malloc.rs, for a preload's fast entry) are the fast paths of allocation
//! step 1 and free step 2 alone, with no call and nothing changed when they do not apply: no
//! refill and no op step (`None` when the countdown would reach 0), a free only into a stack
//! with room. The cached free finds the span from its cache's hint (`MCache::arena_hint`,
//! the record its last lookup through the index found) before the index, as the owner's
//! free of step 2 does (`find_mine`: the cache's memo of its last page, then the hinted
//! arena's head slot of the address's page, the record of a small span that begins there,
//! at an address computed from the pointer, then the span map; see arena.rs); `free_cached_fast` is that first lookup alone (its
//! `Missed` sends the caller to `free_cached` or `free`), for the preload's `free`, which
//! then makes no call on its fast path.
//!
//! The trade-off, measured in the benchmarks (figures in benches/README.md): a bitmap span
//! is visited by a scan, so a program that frees at random leaves holes that cost a refill
//! (central lists and page heap included) per batch of objects (at least a quarter of the span), and a class's spans stay up to a quarter
//! empty; frees into spans no cache owns meet in one CAS head per
//! class. mimalloc's per-page free lists make a freed slot reusable at once at no scan;
//! the free stacks give the same to a thread's most recent frees, a bounded number per
//! class, and leave the bulk to the spans. In
//! exchange a span has one owner at a time, exactly Go's shape, and the alloc bitmap is the
//! single truth the checker verifies. Empty spans go back to the heap once they leave
//! their owner (at most 128 MiB of spans per class and thread stay owned, of which at most
//! 512 KiB wholly empty, and at most one empty span per class past the next bounded step:
//! "Empty spans leave" in mcache.rs); arenas left without a span go back to the source
//! once the scavenger has released their pages, or at once if they were reserved for an
//! over-aligned request (`MHeap::release_empty_arenas`).
//!
//! # Threads
//! See tls.rs: a cache per thread and heap, an exit guard that gives it back, and a shared
//! cache under a lock for re-entrant calls and thread teardown. `release_all` (a dropped
//! `Heap`) gives the root and every cache back while threads that used the heap may live on:
//! their slots name the heap by a key that is never reused, checked against the heap's
//! registry entry before a slot is dereferenced ("Heap keys" in tls.rs), so a stale slot is
//! discarded without touching the released memory (over `Fixed`, a region its owner may
//! have freed).
//!
//! `fork` (the `Strategy` fork protocol): `fork_prepare` takes every lock, in this order,
//! which is the order in which the code nests them (a lock is only ever taken while holding
//! locks that come before it here):
//! 1. `Tiered::init` (the root's creation);
//! 2. `Root::shared` (the shared cache: its holder refills, so it takes the ones below);
//! 3. `MHeap::scav_lock` (one scavenger; it takes the heap lock);
//! 4. `MCentral::lock` of every span class, in span-class order (a holder may take the heap
//!    lock, never another mcentral's);
//! 5. `MHeap::lock`, the page heap, which also guards the cache lists (`all_caches`,
//!    `free_caches`) that thread exit and cache creation change.
//!
//! With all of them held no thread is inside a locked section, thread-exit flushes
//! (`release_cache`) included, and no page-source call is in flight (each runs under `init`,
//! `scav_lock` or the heap lock). `fork_parent` and `fork_child` release them in the reverse
//! order. In the child, the caches of the parent's other threads are abandoned: their spans
//! stay owned by caches nobody uses (the child's frees into them take the remote path), since
//! their owners may have been in a lock-free fast path at the fork.
//!
//! # Statistics
//! `live_bytes` counts usable sizes: a small object's class size, a large object's whole
//! pages (what `block_of` answers as `usable`), so a free by address, which knows no
//! requested size, keeps it exact. `live_bytes` / `live_objects` are exact once every cache
//! has flushed; each cache counts
//! its own allocations and frees and flushes them to the root every 8th refill from mcentral
//! (sooner past 1 MiB unflushed) and at thread exit, and `stats()` adds the unflushed counts
//! of live caches. The peak is updated at the flushes (large objects: at once), so it is
//! exact at that granularity: it may miss a high point between two flushes of a cache by up
//! to 1 MiB plus what 8 refills hand out.
//!
//! # Bad input
//! - Requests the design cannot serve (a size or alignment past what the page source can
//!   reserve) and exhausted sources return null: no panic, no abort.
//! - Frees are checked in release builds, by both `free` (which reports the reason) and
//!   `dealloc` (which ignores the free, as C's `free` of glibc would abort: a `GlobalAlloc`
//!   has no way to report): a pointer outside this heap's arenas or on a page no span holds
//!   (`Foreign`), one that is not the start of an object (`Interior`), an object that is not
//!   live (`NotLive`: freed already, on a free stack, on a remote or pending stack, or never
//!   handed out). Nothing changes, so no block is ever handed out twice. The checks are the
//!   span lookup and the live bit the free needs anyway; the cost is a span read on every
//!   free (the free stack used to take a free from its layout alone).
//! - What the checks cannot see: a double free of a block whose memory was reused since (a
//!   new block at the same address is freed instead, as in every allocator); and two frees
//!   of one block racing on two threads with no order between them (the owner's check is a
//!   plain load and store; a non-owner's is a `fetch_or`, so two non-owners never both
//!   succeed).
//! - `block_of` and `free` of a pointer into a span being freed or reused by another thread
//!   at that moment read the span record while it is rewritten (its fields are cells: see
//!   "Reuse of span records" in span.rs); the answer is then either, as the contract allows
//!   for a block freed during the call.
//! - `block_of` and `free` of a stale pointer into an arena that goes back to the source at
//!   that moment (the scavenger's background step or `trim`, `MHeap::release_empty_arenas`)
//!   may read the arena's record after it left the index: records are never freed while
//!   the heap lives but retired and reused (see "Reuse of arena records" in arena.rs), and
//!   `span_of` answers from a record only for an address inside the arena it describes at
//!   that moment, so the answer is `None` / `Err(Foreign)`, or the right one for a new
//!   arena at the same address. The arena's own memory is never read for such a pointer.
//! - `check` reports what a free outside these rules corrupted: an object twice on a stack,
//!   a stacked object that is live, live bits outside the alloc bits, bitmaps and counts
//!   that disagree.

//! # Invariants
//! Written next to each structure, checked by [`Tiered`]'s `check` (the walker below):
//! arena index and arena list, page bitmaps vs summaries vs spans, span bitmaps vs counts,
//! mcentral lists vs span states, mcaches vs the spans they own.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::source::PageSource;
use crate::strategy::{BadFree, BlockInfo, CachedFree, CheckError, ConstInit, Strategy, StrategyStats};
use crate::sync::SpinLock;

mod arena;
mod fixalloc;
mod freestack;
mod malloc;
mod mcache;
mod mcentral;
mod mheap;
mod pagealloc;
mod remote;
/// The atomics `remote.rs` is built on (loom's in tests/loom_tiered.rs).
mod remote_atomics {
    pub use core::sync::atomic::{AtomicPtr, Ordering};
}
mod scavenger;
pub mod sizeclass;
mod span;
/// One real span outside any heap, for the book's step-through pictures (not used by the
/// allocator; see the module's docs).
#[doc(hidden)]
pub mod span_lab;
mod tls;

/// Bytes of address space one arena's head slots take (see arena.rs), for the tests that
/// count what a heap holds.
pub use arena::HEADS_BYTES;
use arena::{INDEX_L1_BYTES, Index};
use mcache::{EMPTY_SPAN, MCache};
use mcentral::MCentral;
use mheap::MHeap;
use scavenger::Goal;
use sizeclass::{CLASS_ALIGN, MAX_SMALL_BYTES, PAGE_BYTES, SPAN_CLASS_COUNT, class_for, span_class};

/// The Go runtime's tiered allocator: thread caches, central lists, page heap, arenas,
/// scavenger. See the [module docs](self).
///
/// ```
/// use stratalloc::{Heap, Tiered};
/// static HEAP: Heap<Tiered> = Heap::new();
/// let mut v = allocator_api2::vec::Vec::new_in(&HEAP);
/// v.extend(0..1000u64);
/// assert_eq!(v.iter().sum::<u64>(), 499_500);
/// ```
pub struct Tiered {
    root: AtomicPtr<Root>,
    /// The published root's key (`Root::key`), [`tls::NO_KEY`] while there is none or the
    /// root has key 0 (no registry entry): the fast paths find the thread's cache from it
    /// with one load, without the root's, and with no null test (`tls::peek_key`; see
    /// `cached_cache`).
    key: AtomicU64,
    init: SpinLock<()>,
}

impl ConstInit for Tiered {
    const INIT: Self = Tiered {
        root: AtomicPtr::new(ptr::null_mut()),
        key: AtomicU64::new(tls::NO_KEY),
        init: SpinLock::new(()),
    };
}

impl Default for Tiered {
    fn default() -> Self {
        Self::INIT
    }
}

/// Every structure of one heap, in memory from the page source.
pub struct Root {
    /// The page heap.
    pub(crate) heap: MHeap,
    /// One central list per span class.
    pub(crate) central: [MCentral; SPAN_CLASS_COUNT],
    /// The arena index's L1 table (Ready from creation; L2 tables made on demand).
    index: Index,
    /// The cache used under a lock by re-entrant calls, exiting threads and `no_std`.
    shared: SpinLock<*mut MCache>,
    /// Flushed live bytes (caches keep unflushed deltas).
    live_bytes: AtomicIsize,
    /// Flushed live objects.
    live_objects: AtomicIsize,
    /// Highest flushed `live_bytes`.
    peak_live_bytes: AtomicUsize,
    /// Next span class the background sweep looks at.
    sweep_cursor: AtomicUsize,
    /// Set (Release) after a free goes on an mcentral's pending stack (`free_small`);
    /// `background` looks at the 136 pending stacks only when it takes this flag set
    /// (Acquire), so a step costs one load when nothing is pending. A free pushed before the
    /// flag is taken is drained by that step; one pushed after sets the flag again. Other
    /// drains (cacheSpan, sweep, trim) leave the flag set: the next step then finds nothing.
    pending_hint: AtomicBool,
    /// Bytes of large objects that may still be freed before one of those frees runs a
    /// bounded step of background work (`Root::large_step`): paced by bytes, as frees
    /// through a thread's cache are (`FREE_STEP_BYTES`), so that dropping many mid-sized
    /// large objects does not end the scavenger's hold by itself (scavenger.rs, "Hold").
    large_budget: AtomicIsize,
    /// Bytes of this record.
    root_bytes: usize,
    /// The heap's key: what thread-local slots name it by (see "Heap keys" in tls.rs);
    /// 0 if it has none (then no thread binds a cache to it).
    pub(crate) key: u64,
}

// SAFETY: `Root` is `!Sync` for its raw `index` pointer (and the fields below it that hold
// raw pointers: `HeapInner`, `Lists` and the shared cache pointer are `Send`, so their locks
// are `Sync`). `index` is written once, before the root is published (Release) and never
// after, and it points at the arena index, whose entries are atomics. Every other field is
// atomic (statistics, `pending_hint`, `sweep_cursor`, the pending stacks) or behind a
// `SpinLock` (the page heap, the central lists, the shared cache), so `&Root` on several
// threads shares nothing unsynchronised.
unsafe impl Sync for Root {}
// SAFETY: `Root` is `!Send` for the same raw pointers; they point into memory from the heap's
// page source (the arena index, caches, spans, arenas), tied to no thread, so a root may be
// moved (in practice it never is: it stays where it was made).
unsafe impl Send for Root {}

// The free path tells span kinds apart by the low bit of the span class.
const _: () = assert!(span_class(1) & 1 == 1 && span_class(67) & 1 == 1);

/// Spans the background sweep looks at per call.
const SWEEP_STEP_SPANS: usize = 16;

impl Root {
    const fn new() -> Root {
        Root {
            heap: MHeap::new(),
            central: [const { MCentral::new() }; SPAN_CLASS_COUNT],
            index: ptr::null(),
            shared: SpinLock::new(ptr::null_mut()),
            live_bytes: AtomicIsize::new(0),
            live_objects: AtomicIsize::new(0),
            peak_live_bytes: AtomicUsize::new(0),
            sweep_cursor: AtomicUsize::new(0),
            pending_hint: AtomicBool::new(false),
            large_budget: AtomicIsize::new(scavenger::FREE_STEP_BYTES as isize),
            root_bytes: 0,
            key: 0,
        }
    }

    /// Adds to the flushed statistics and raises the peak.
    pub(crate) fn add_live(&self, bytes: isize, objects: isize) {
        if bytes == 0 && objects == 0 {
            return;
        }
        let now = self.live_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.live_objects.fetch_add(objects, Ordering::Relaxed);
        // Only a rise can make a new peak: a fall leaves `live_bytes` below a value some
        // rise already raised the peak to (each rise raises it after its add).
        if bytes > 0 && now > 0 {
            self.peak_live_bytes.fetch_max(now as usize, Ordering::Relaxed);
        }
    }

    /// A cache for a new thread (a released one if any).
    pub(crate) fn new_cache<P: PageSource>(&self, src: &P) -> *mut MCache {
        let mut h = self.heap.lock.lock();
        let c = h.free_caches;
        if !c.is_null() {
            // SAFETY: caches on the free list are initialised, released, and ours.
            unsafe {
                h.free_caches = (*c).next_free;
                (*c).next_free = ptr::null_mut();
                (*c).in_use.store(true, Ordering::Relaxed);
            }
            return c;
        }
        let h = &mut *h;
        let Some(rec) = h.caches.alloc(&mut h.meta, src) else { return ptr::null_mut() };
        let c = rec.as_ptr().cast::<MCache>();
        // SAFETY: a fresh record sized and aligned for an MCache, used by nothing else.
        unsafe { MCache::init_at(c, self, h.all_caches) };
        h.all_caches = c;
        c
    }

    /// Gives a thread's cache back (thread exit, eviction).
    ///
    /// # Safety
    /// `c` is a cache of this root that the calling thread owns and stops using.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) unsafe fn release_cache(&self, c: *mut MCache) {
        // SAFETY: the caller owns the cache.
        let cache = unsafe { &*c };
        cache.release_all(self);
        cache.in_use.store(false, Ordering::Relaxed);
        let mut h = self.heap.lock.lock();
        // SAFETY: the record is ours; it goes on the heap's free list under the heap lock.
        unsafe { (*c).next_free = h.free_caches };
        h.free_caches = c;
    }

    // ANCHOR: background
    /// Bounded scavenger and sweep work: every large allocation, every 4 MiB of large frees, every 16th refill
    /// from mcentral, every `FREE_STEP_BYTES` a cache frees and every `OP_STEP_ALLOCS`
    /// allocations its fast path serves (see scavenger.rs). Takes no
    /// lock across the scavenger's system calls. The pending stacks are drained only when a
    /// free has gone on one since the last drain (`pending_hint`): without it, the preload
    /// tests' C++ program, whose large objects come and go, spent a large share of its
    /// samples here reading 136 empty stacks (figure in benches/README.md).
    fn background<P: PageSource>(&self, src: &P) {
        if self.pending_hint.load(Ordering::Relaxed) && self.pending_hint.swap(false, Ordering::Acquire) {
            for c in &self.central {
                c.drain_pending(&self.heap, self.index);
            }
        }
        let spc = self.sweep_cursor.fetch_add(1, Ordering::Relaxed) % SPAN_CLASS_COUNT;
        self.central[spc].sweep(&self.heap, self.index, SWEEP_STEP_SPANS);
        if P::RELEASES_MEMORY {
            self.heap.scavenge(src, scavenger::SCAVENGE_STEP_PAGES, Goal::Target, false);
        }
    }
    // ANCHOR_END: background
}

impl Tiered {
    #[inline]
    fn root<P: PageSource>(&self, src: &P) -> Option<&Root> {
        let r = self.root.load(Ordering::Acquire);
        if !r.is_null() {
            // SAFETY: a published root is initialised, and freed only by `release_all`, which
            // unpublishes it first and which no other call may overlap (its contract).
            return Some(unsafe { &*r });
        }
        self.init_root(src)
    }

    /// The root if it exists.
    #[inline]
    fn existing_root(&self) -> Option<&Root> {
        // SAFETY: a published root is initialised, and freed only by `release_all`, which
        // unpublishes it first and which no other call may overlap (its contract).
        unsafe { self.root.load(Ordering::Acquire).as_ref() }
    }

    #[cold]
    fn init_root<P: PageSource>(&self, src: &P) -> Option<&Root> {
        let _g = self.init.lock();
        if let Some(r) = self.existing_root() {
            return Some(r);
        }
        let bytes = core::mem::size_of::<Root>().next_multiple_of(P::PAGE_BYTES);
        let mem = src.alloc_ready(bytes, P::PAGE_BYTES).ok()?.cast::<Root>();
        // The L1 table of the arena index, Ready at once (see "arena index" in arena.rs).
        let index_bytes = INDEX_L1_BYTES.next_multiple_of(P::PAGE_BYTES);
        let Ok(index) = src.alloc_ready(index_bytes, P::PAGE_BYTES) else {
            // SAFETY: the root's pages are unused.
            let _ = unsafe { src.free(mem.cast(), bytes) };
            return None;
        };
        // SAFETY: fresh Ready pages of `index_bytes`, seen by nobody yet; all-zero bytes are
        // null atomic pointers (no L2 table yet).
        unsafe { ptr::write_bytes(index.as_ptr(), 0, index_bytes) };
        // SAFETY: fresh Ready pages sized and aligned for a Root.
        unsafe {
            mem.as_ptr().write(Root::new());
            let r = &mut *mem.as_ptr();
            r.index = index.as_ptr().cast();
            r.root_bytes = bytes;
            r.heap.lock.get_mut().index = r.index;
            r.key = tls::register();
        }
        self.root.store(mem.as_ptr(), Ordering::Release);
        // SAFETY: just published, initialised above.
        let key = unsafe { (*mem.as_ptr()).key };
        self.key.store(if key == 0 { tls::NO_KEY } else { key }, Ordering::Relaxed);
        self.existing_root()
    }
}

// SAFETY: (1) blocks are objects of distinct span slots or distinct page runs, aligned as the
// size-class rules guarantee (sizeclass.rs) or as the page allocator aligns large runs;
// (2) nothing writes into a live object (remote-free links are written only into freed
// objects); (3) `alloc_zeroed` clears unless pages are known fresh from a zeroing source;
// (4) failures propagate as `None`, metadata comes from the page source; (5) shared state is
// atomic or locked, per-thread caches are used by their thread only.
unsafe impl Strategy for Tiered {
    fn name(&self) -> &'static str {
        "tiered"
    }

    // ANCHOR: tiered_alloc
    #[inline]
    unsafe fn alloc<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        match self.alloc_fast(src, layout) {
            Ok(p) => p,
            Err(()) => self.alloc_slow(src, layout),
        }
    }
    // ANCHOR_END: tiered_alloc

    // ANCHOR: tiered_dealloc
    /// The free by address (`dealloc_fast`, malloc.rs): the layout is not needed, and a free
    /// that `free` would refuse (a double free, a foreign or interior pointer) is ignored
    /// here, so it changes nothing (see "Bad input" in the module docs).
    #[inline]
    unsafe fn dealloc<P: PageSource>(&self, src: &P, ptr: NonNull<u8>, layout: Layout) {
        let _ = layout;
        self.dealloc_fast(src, ptr);
    }
    // ANCHOR_END: tiered_dealloc

    unsafe fn alloc_zeroed<P: PageSource>(&self, src: &P, layout: Layout) -> Option<NonNull<u8>> {
        let root = self.root(src)?;
        let (size, align) = (layout.size(), layout.align());
        if class_for(size, align).is_none() {
            let s = root.alloc_large(src, layout)?;
            if s.needzero.get() {
                // SAFETY: the span's first `size` bytes are ours and Ready.
                unsafe { ptr::write_bytes(s.base.get().as_ptr(), 0, size) };
            }
            return Some(s.base.get());
        }
        let p = self.alloc_in(root, src, layout)?;
        // SAFETY: the block is valid for `size` bytes.
        unsafe { ptr::write_bytes(p.as_ptr(), 0, size) };
        Some(p)
    }

    // ANCHOR: tiered_realloc
    /// A small block reallocated with an alignment up to 8 to a small size stays where it is
    /// if the new size has the class of the old one, and moves otherwise, with no lookup:
    /// the layout names the block's class (see `realloc_looked_up` for why). Anything else looks the
    /// block up (`realloc_looked_up`).
    #[inline]
    unsafe fn realloc<P: PageSource>(
        &self,
        src: &P,
        ptr: NonNull<u8>,
        layout: Layout,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        let old = layout.size();
        if layout.align() <= 8 && old <= MAX_SMALL_BYTES && new_size <= MAX_SMALL_BYTES {
            if sizeclass::class_of(new_size) == sizeclass::class_of(old) {
                return Some(ptr);
            }
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { crate::strategy::realloc_by_moving(self, src, ptr, layout, new_size) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.realloc_looked_up(src, ptr, layout, new_size) }
    }
    // ANCHOR_END: tiered_realloc

    unsafe fn usable_size(&self, ptr: NonNull<u8>, layout: Layout) -> usize {
        self.block_of(ptr.as_ptr()).map_or(layout.size(), |b| b.usable)
    }

    // ANCHOR: tiered_block_of
    /// spanOf, then the object's index and its live bit (see "Liveness" in span.rs).
    fn block_of(&self, ptr: *const u8) -> Option<BlockInfo> {
        let root = self.existing_root()?;
        let p = ptr.addr();
        // SAFETY: the root's index; `span_of` checks the range and every entry, and reads
        // only arena records, which stay mapped while the heap lives (a released arena's
        // is retired and kept: see "Reuse of arena records" in arena.rs).
        let s = unsafe { arena::span_of(root.index, p) };
        // SAFETY: a non-null entry of a span map names a span record, mapped while the heap
        // lives; only fields fixed while the span lives and atomics are read. The span may
        // not hold `p` (a record reused meanwhile): `object_at` checks `p` against it.
        let s = unsafe { s.as_ref() }?;
        if s.span_class.get() & 1 == 0 && s.class.get() != 0 {
            return None;
        }
        let i = s.object_at(p)?;
        if !s.is_live(i) {
            return None;
        }
        let usable = if s.class.get() == 0 { s.npages.get() * PAGE_BYTES } else { s.elem_bytes.get() };
        let pow = 1usize << p.trailing_zeros().min(usize::BITS - 1);
        // Large spans keep the alignment they were made with (up to their base's); small
        // objects are promised at most a page, or their class's alignment if larger (the
        // 16 KiB and 32 KiB classes, `CLASS_ALIGN`).
        let cap = PAGE_BYTES.max(CLASS_ALIGN[s.class.get() as usize] as usize);
        let align = if s.class.get() == 0 { pow } else { pow.min(cap) };
        Some(BlockInfo { start: p, usable, align })
    }
    // ANCHOR_END: tiered_block_of

    #[inline]
    unsafe fn free<P: PageSource>(&self, src: &P, ptr: NonNull<u8>) -> Result<usize, BadFree> {
        self.free_addr(src, ptr)
    }

    #[inline]
    unsafe fn alloc_cached(&self, layout: Layout) -> Option<NonNull<u8>> {
        Tiered::alloc_cached(self, layout)
    }

    #[inline]
    unsafe fn free_cached(&self, ptr: NonNull<u8>) -> bool {
        Tiered::free_cached(self, ptr)
    }

    #[inline]
    unsafe fn free_cached_fast(&self, ptr: NonNull<u8>) -> CachedFree {
        Tiered::free_cached_fast(self, ptr)
    }

    // ANCHOR: tiered_release_all
    /// Everything back to `src`: the heap's key out of the registry first (so no thread
    /// slot reaches the heap again; see "Heap keys" in tls.rs), then every arena, arena
    /// record, L2 table and metadata chunk (`MHeap::release_all`), the L1 table and the
    /// root; `Tiered` is then as `INIT` made it.
    unsafe fn release_all<P: PageSource>(&self, src: &P) {
        let _g = self.init.lock();
        let Some(root) = self.existing_root() else { return };
        self.key.store(tls::NO_KEY, Ordering::Relaxed);
        tls::unregister(root.key);
        tls::drop_slot(root.key);
        let (root_bytes, index) = (root.root_bytes, root.index);
        // SAFETY: no other thread uses the heap (the caller's contract), and no thread slot
        // reaches it any more (its key is out of the registry).
        unsafe { root.heap.release_all(src) };
        self.root.store(ptr::null_mut(), Ordering::Release);
        let index_bytes = INDEX_L1_BYTES.next_multiple_of(P::PAGE_BYTES);
        let root_ptr = NonNull::from(root).cast::<u8>();
        // SAFETY: the L1 table and the root are pages from `src` (`init_root`), used by
        // nothing now: the root is no longer published and nobody else runs.
        unsafe {
            if let Some(ix) = NonNull::new(index.cast_mut()) {
                let _ = src.free(ix.cast(), index_bytes);
            }
            let _ = src.free(root_ptr, root_bytes);
        }
    }
    // ANCHOR_END: tiered_release_all

    fn stats(&self) -> StrategyStats {
        let Some(root) = self.existing_root() else { return StrategyStats::default() };
        let h = root.heap.lock.lock();
        let (mut bytes, mut objects) =
            (root.live_bytes.load(Ordering::Relaxed), root.live_objects.load(Ordering::Relaxed));
        let mut c = h.all_caches;
        while !c.is_null() {
            // SAFETY: cache records live as long as the heap; only their atomics are read.
            let cache = unsafe { &*c };
            let (b, o) = cache.unflushed();
            bytes += b;
            objects += o;
            c = cache.next_all;
        }
        let live_bytes = bytes.max(0) as usize;
        StrategyStats {
            live_bytes,
            live_objects: objects.max(0) as usize,
            peak_live_bytes: root.peak_live_bytes.load(Ordering::Relaxed).max(live_bytes),
            committed_bytes: h.committed_bytes() + root.root_bytes,
            reserved_bytes: h.reserved_bytes
                + h.heads_prepared_bytes
                + INDEX_L1_BYTES
                + h.meta.committed_bytes
                + root.root_bytes,
        }
    }

    unsafe fn check<P: PageSource>(&self, src: &P) -> Result<(), CheckError> {
        let _ = src;
        match self.existing_root() {
            Some(root) => check::check(root),
            None => Ok(()),
        }
    }

    unsafe fn trim<P: PageSource>(&self, src: &P) -> usize {
        let Some(root) = self.existing_root() else { return 0 };
        // The calling thread's cache and the shared cache give their spans back, so that
        // empty ones reach the heap (other threads' caches are theirs to use).
        self.release_thread_cache();
        {
            let g = root.shared.lock();
            if !g.is_null() {
                // SAFETY: the shared cache is used only under its lock, held here.
                unsafe { (**g).release_all(root) };
            }
        }
        for c in &root.central {
            while c.sweep(&root.heap, root.index, usize::MAX) > 0 {}
            c.release_spare(&root.heap);
        }
        if !P::RELEASES_MEMORY {
            return 0;
        }
        let scavenged = root.heap.scavenge(src, usize::MAX, Goal::All, true) * PAGE_BYTES;
        // Arenas left empty go back to the source (address space; their memory went above).
        root.heap.release_empty_arenas(src);
        scavenged
    }

    /// Takes `init`, then the root's locks (`Root::fork_lock`). Holding `init` keeps the root
    /// from being made during the fork, so the root read after it is the one unlocked later.
    fn fork_prepare(&self) {
        self.init.lock_held();
        if let Some(root) = self.existing_root() {
            root.fork_lock();
        }
    }

    unsafe fn fork_parent(&self) {
        if let Some(root) = self.existing_root() {
            // SAFETY: `fork_prepare` took the root's locks on this thread (caller); the root
            // it saw is this one, since `init` (held) is what a root is made under.
            unsafe { root.fork_unlock() };
        }
        // SAFETY: `fork_prepare` took `init` on this thread (caller).
        unsafe { self.init.force_unlock() };
    }

    /// Releases the locks as in the parent. The caches of the parent's other threads stay
    /// in use by threads that do not exist here: they are abandoned, not released, because a
    /// cache's fast paths run without a lock and its owner may have been in the middle of one
    /// at the fork. Their spans stay owned, so the child's frees into them take the
    /// non-owner path (the span's remote stack), which is always safe; the memory is lost
    /// to the child, never handed out twice.
    unsafe fn fork_child(&self) {
        // SAFETY: the child's only thread is the one that called `fork_prepare` (caller), so
        // the locks are its own; as in `fork_parent`.
        unsafe { self.fork_parent() };
    }
}

impl Root {
    /// Every lock of the root, in the fork order (see "Threads" in the module docs): shared
    /// cache, scavenger, the mcentrals by span class, the page heap (which also guards the
    /// cache lists).
    fn fork_lock(&self) {
        self.shared.lock_held();
        self.heap.scav_lock.lock_held();
        for c in &self.central {
            c.lock.lock_held();
        }
        self.heap.lock.lock_held();
    }

    /// Releases what `fork_lock` took, in the reverse order.
    ///
    /// # Safety
    /// The calling thread took them with `fork_lock` (or is the only thread of a child forked
    /// after that).
    unsafe fn fork_unlock(&self) {
        // SAFETY: every lock below was taken by `fork_lock` on this thread (caller), and no
        // guard of them exists.
        unsafe {
            self.heap.lock.force_unlock();
            for c in self.central.iter().rev() {
                c.lock.force_unlock();
            }
            self.heap.scav_lock.force_unlock();
            self.shared.force_unlock();
        }
    }
}

/// Dropping a `Tiered` gives the dropping thread's cache for it back and clears that
/// thread's slot, so the slot never points into the heap's memory once the heap's owner may
/// free it (a `Fixed` region after the heap is dropped). Other threads' caches are not
/// reached: a thread that used the heap must be done with it (exited, or
/// [`release_thread_cache`](Tiered::release_thread_cache) called) before the region is
/// freed ("Threads" in the module docs). The root itself stays (issue 22).
impl Drop for Tiered {
    fn drop(&mut self) {
        self.release_thread_cache();
    }
}

impl Tiered {
    /// Gives the calling thread's cache for this heap back, as thread exit does (useful
    /// before dropping a heap that this thread used, and in tests).
    pub fn release_thread_cache(&self) {
        #[cfg(feature = "std")]
        if let Some(root) = self.existing_root() {
            tls::forget(root);
        }
    }

    /// What the scavenger weighs at this moment (read under the heap lock; changes nothing),
    /// or `None` before the heap's first allocation. For reports and tests: the book plots
    /// Ready memory against the goal this gives (`book/book-examples/reports/scavenge.rs`).
    pub fn scavenger_view(&self) -> Option<ScavengerView> {
        let root = self.existing_root()?;
        let h = root.heap.lock.lock();
        Some(ScavengerView {
            inuse_bytes: h.inuse_pages * PAGE_BYTES,
            retained_bytes: h.free_ready_pages * PAGE_BYTES,
            target_bytes: h.retain_target_pages() * PAGE_BYTES,
        })
    }
}

/// The page heap's figures that a scavenger step acts on ([`Tiered::scavenger_view`]), in
/// bytes. A bounded step gives pages back while `retained_bytes > target_bytes`, so the most
/// Ready memory the scavenger leaves is the Ready memory now, less `retained_bytes`, plus
/// `target_bytes`.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ScavengerView {
    /// Pages of live spans (`inuse_pages`: spans holding objects, cached or spare ones),
    /// and the page cache's free pages (at most 64, see "Page cache" in mheap.rs).
    pub inuse_bytes: usize,
    /// Free pages that are Ready: *retained*, what the scavenger may give back.
    pub retained_bytes: usize,
    /// Retained bytes the target allows (`retain_target_pages`: 10 % of the pages in use,
    /// or the room back up to the held peak, and at least 4 MiB).
    pub target_bytes: usize,
}

mod check;

#[cfg(test)]
mod tests;
