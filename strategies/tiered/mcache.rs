//! The thread cache: one per thread (Go: one per P), one current span per span class, the
//! owned spans and the refill policy; no lock and no atomic read-modify-write on its fast
//! paths. Its free stacks are in freestack.rs, its binding to threads in tls.rs.
//!
//! Go original: `mcache` in `runtime/mcache.go` (`refill`, `releaseAll`).
//!
//! # Glossary
//! - `alloc[spc]`: the current span of span class `spc`, owned by this cache
//!   (`span.owner == self`); initially [`EMPTY_SPAN`], so the first allocation refills.
//! - `owned[spc]`: this cache's other spans of span class `spc` (see "Owned spans"), an
//!   intrusive list ([`OwnedList`]) through the spans' `next` / `prev`.
//!
//! - `free[class]`: the *free stack* of a size class (see freestack.rs).
//!
//! # Alloc path
//! 1. Small: the top of `free[class]` if the stack is not empty, else
//!    `alloc[spc].next_free_fast()` (span.rs), which marks the object live. Both are
//!    inlined into `Tiered::alloc`'s fast path, which saves no register and calls
//!    nothing but, in tail position, the refill below, and, every [`OP_STEP_ALLOCS`]th
//!    allocation (`ops_left`, a countdown: one decrement and a branch), a bounded step of
//!    background work (scavenger.rs: so that a program whose cache serves everything
//!    without a refill still lets the scavenger's hold end).
//! 2. Empty cache word: `refill` (cold): continue the span's scan; at its end sweep the span
//!    (collect its remote frees) and rewind it if it is still worth a refill (at least
//!    [`Span::refill_min`] free objects); else put it at the tail of `owned[spc]` and take
//!    the head if that one is worth a refill (or, after collecting the remote frees of the
//!    next [`TAKE_OWNED_LOOK_SPANS`], the first that is; those passed over go to the tail);
//!    else cacheSpan from mcentral, giving mcentral the owned
//!    tail in the same lock hold if the class's owned spans exceed [`OWNED_PAGES`]. Every
//!    8th mcentral refill (or past 1 MiB unflushed) flushes this cache's statistics to the
//!    root.
//!
//! # Owned spans and the refill policy (a departure from Go, after mimalloc's pages)
//! A span the cache has used stays owned by it (on `owned[spc]`) until the class holds
//! more than [`OWNED_PAGES`] (128 MiB) of them, the thread exits, or the thread calls `trim`
//! (`release_all`): this thread's frees into it stay lock-free, atomic-free bit clears, as
//! mimalloc keeps each page with the thread heap that owns it. Go needs no such thing: its
//! frees are the GC's sweeps, not one call per object.
//!
//! The policy decides how freed slots become reusable. A span is swept (rewound) or taken
//! only when it has at least [`Span::refill_min`] free objects (a quarter of the span, at
//! least min(8, half)), so that every refill pays for a batch of allocations; a span with
//! fewer waits and collects frees. Rewinding at the first free slot instead makes the
//! program's random frees cost a refill for every two or three allocations. The owned list
//! is FIFO (spans that run dry go to the tail), and the owner's free that brings a span to
//! `refill_min` free objects moves it to the head ([`MCache::on_refillable`], one compare on
//! the free path), so the next refill takes it without a search. Remote frees are not seen
//! until collected: when the head is not worth a refill, the refill collects the remote
//! stacks of at most [`TAKE_OWNED_LOOK_SPANS`] spans from the head, moving each that is
//! still not worth it to the tail, so that successive refills go round the list. The walk
//! is bounded because a heap that only grows (a parser building a tree) has no owned span
//! worth a refill, and a walk of the whole list on every refill cost serde_json a large
//! share of its time (figure in benches/README.md). Only when none is found does the class grow (mcentral).
//!
//! Wholly empty owned spans are capped: at most [`EMPTY_OWNED_PAGES`] pages of them per
//! class (`owned[spc].empty_pages`, at least one span). The owner's free that empties a
//! span (`alloc_count` 0: the second compare on the free path) calls `on_refillable`,
//! which keeps it at the head if the cap allows and else gives it to mcentral (uncacheSpan:
//! its spare, or the page heap, where the scavenger reaches it). A thread that frees
//! everything so keeps its current spans and at most that much empty memory per class, not
//! 2 MiB per class. Spans emptied by remote frees are seen only when a refill collects
//! them (and then taken), so the cap counts the owner's frees only.
//!
//! # Empty spans leave (the decay step)
//! The cap bounds a burst; it does not make the memory go back. Each bounded step of
//! background work the cache pays for (every [`OP_STEP_ALLOCS`] fast-path allocations, every
//! [`FREE_STEP_BYTES`] freed off the owner's fast path: `Root::free_step`) first runs
//! [`MCache::decay_empty`]: a class holding more than [`DECAY_KEEP_SPANS`] wholly empty owned
//! spans gives the others (among the first [`DECAY_LOOK_SPANS`] from the head) to mcentral,
//! whose spare or page heap the scavenger reaches. So an empty span leaves its owner after a
//! bounded amount of the owner's work, whatever that work is, while one empty span per class
//! stays: the hysteresis that keeps a class whose last spans empty and fill again from
//! sending a span to mcentral and back on every round (and a class emptied within one step
//! keeps the whole cap until the step). Every [`DECAY_COLLECT_EVERY_STEPS`]th step also
//! collects the remote frees waiting on every owned span ([`MCache::collect_owned_remote`]),
//! so that spans other threads' frees emptied leave as well, even when the owner never
//! refills from them; that walk covers every owned span, so it runs that much less often.
//!
//! # Free stacks
//! See freestack.rs: per size class, the objects this thread freed last, which the
//! class's next allocation takes back first.
//!
//! # Held-back remote frees (the thread's `RemoteChain`)
//! A thread's free into a span another cache owns claims the object's remote bit (one
//! `fetch_or`, which refuses a double free at once, as before), then, instead of one CAS on
//! the span's remote stack per object, links the object onto the cache's chain: the frees
//! of one span, at most [`REMOTE_CHAIN_MAX`] of them, which go onto the span's remote stack
//! together with one CAS (`RemoteStack::push_chain`) when a free lands in another span,
//! when the chain is full, at the cache's bounded background step (`Root::free_step`), and
//! when the cache is given back (`release_all`: thread exit, trim). A producer/consumer
//! pair, whose consumer frees a batch of objects of the same few spans, so pays about one
//! atomic read-modify-write per remote free, as mimalloc's `thread_free` list does (one
//! CAS per free there), where it paid two. snmalloc batches its remote frees per
//! destination the same way.
//!
//! A held object keeps its alloc bit (so its span cannot become empty and be freed: the
//! chain's span pointer stays valid) and its remote bit (so it is not live, and a second
//! free is refused); the owner does not see it until the push. So held frees are delayed,
//! by at most the holding thread's next step of bounded work, and bounded: one span's
//! objects per thread. A flush reads the span's owner as `free_not_owned` does for one free:
//! a span with no owner now gets the chain on its mcentral's pending stack instead (a span
//! whose owner lets it go just after the read is the race of "A free that races with
//! uncacheSpan" in mcentral.rs, handled as for one free). Frees into unowned spans, and the
//! frees of a thread with no cache, are not held.
//!
//! # Free path (see `free_small` in malloc.rs and `Tiered::dealloc` in mod.rs)
//! First the free stack (above). Then, owner: clear the bit (no atomics); if that makes the span worth a refill, move it to the
//! head of its owned list; if it empties it, keep it there or give it to mcentral (the
//! empty cap above). Non-owner: the thread's chain of held-back remote frees (above),
//! which goes onto the span's remote stack, or the mcentral pending stack for a span nobody
//! owns. Every free but the owner's
//! bit clear (`dealloc_slow`) also counts its bytes in the cache (`note_free`, a plain add):
//! each `FREE_STEP_BYTES` so freed run a bounded step of background work (drain, sweep,
//! scavenge; see scavenger.rs).
//!
//! # Threads
//! See tls.rs: a cache per thread and heap, bound by a thread-local slot and given back
//! by an exit guard; the shared cache otherwise.
//!
//! # Invariants (checked by `Tiered::check`)
//! - `alloc[spc]` is [`EMPTY_SPAN`] or a span of class `spc` with `owner == self` and on no
//!   list; every span on `owned[spc]` is of class `spc`, has `owner == self` and
//!   `list == Owned`, and is not current; `owned[spc].len` is the list's length and its
//!   links are consistent (`prev` of each is the one before, `tail` the last);
//!   `owned[spc].empty_pages == Σ npages of its members with alloc_count == 0`, and a free
//!   by the owner never takes it past [`EMPTY_OWNED_PAGES`] unless it is one span (right
//!   after a decay step, at most [`DECAY_KEEP_SPANS`] spans, unless more are empty below
//!   the first [`DECAY_LOOK_SPANS`]: not checked, as it holds only at that moment);
//! - `free[class]` holds slots `base..top` of `free_slots`, within its class's room
//!   (`base <= top <= limit`, fixed `base` and `limit`: `stack_room`); every object on it is object `index` of its
//!   recorded span, a span of `class` owned by this cache, with its alloc bit set and its
//!   live bit clear, not in an alloc cache, and on the stack once; a released cache's
//!   stacks are empty;
//! - `last_span` is [`EMPTY_SPAN`] or a span record of this heap (a live span's, or one on
//!   the records' free list); nothing else is promised of it (`find_mine` checks it as a
//!   span map entry).

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use super::Root;
use super::arena::Arena;
use super::freestack::{FreeSlots, FreeStack, free_stacks_init};
use super::remote::RemoteStack;
use super::scavenger::{FREE_STEP_BYTES, OP_STEP_ALLOCS};
use super::sizeclass::{CLASS_BYTES, CLASS_COUNT, PAGE_BYTES, SPAN_CLASS_COUNT};
use super::span::{Span, SpanList};
use crate::source::PageSource;

/// Runtime pages of owned spans (current span aside) per span class at most (128 MiB);
/// past it, refill gives the least free span to mcentral. (At 2 MiB, a single-threaded
/// program with a large heap, serde_json's `Value`, had most of its spans in mcentral, and
/// every free into them took the pending stack and a drain under the lock; figures in
/// benches/README.md.)
pub const OWNED_PAGES: usize = 16384;

/// Runtime pages of wholly empty owned spans kept per span class (at least one span);
/// an owner's free that empties one more gives it to mcentral.
pub const EMPTY_OWNED_PAGES: usize = 64;

/// Owned spans a refill looks at when the head is not worth a refill; those passed over
/// go to the tail, so successive refills go round the list.
pub const TAKE_OWNED_LOOK_SPANS: usize = 4;

/// Wholly empty owned spans a class keeps through a decay step (the hysteresis that keeps
/// an alloc/free ping-pong from sending a span to mcentral and back).
pub const DECAY_KEEP_SPANS: usize = 1;

/// Owned spans a decay step looks at per class, from the head (where the owner's frees
/// put the spans they empty): more than the empty spans the cap lets a class keep
/// ([`EMPTY_OWNED_PAGES`] one-page spans), so that one step finds them all when nothing
/// was pushed above them since. Only classes over [`DECAY_KEEP_SPANS`] empty spans walk.
pub const DECAY_LOOK_SPANS: usize = EMPTY_OWNED_PAGES + 16;

/// Decay steps between two collections of the remote frees of every owned span
/// ([`MCache::collect_owned_remote`]).
pub const DECAY_COLLECT_EVERY_STEPS: u32 = 16;

/// mcentral refills between two flushes of a cache's statistics to the root.
const FLUSH_EVERY_REFILLS: u32 = 8;
/// A cache flushes its statistics sooner when its unflushed live bytes exceed this.
const FLUSH_BYTES: usize = 1 << 20;

/// Refills between two calls of the scavenger's bounded work.
const BACKGROUND_EVERY_REFILLS: u32 = 16;

/// Remote frees a cache holds back for one span at most before it pushes them
/// ([`RemoteChain`]).
pub const REMOTE_CHAIN_MAX: u32 = 32;

/// The span every class of a fresh cache points at (Go's `emptymspan`).
pub static EMPTY_SPAN: Span = Span::empty();

/// A cache's owned spans of one span class (besides the current one): an intrusive
/// doubly-linked list through the spans' `next` / `prev` (free while a span has an owner),
/// tagged [`SpanList::Owned`]. Owner only.
pub struct OwnedList {
    /// First span (worth a refill if any is), or null.
    pub head: Cell<*const Span>,
    /// Last span, or null.
    pub tail: Cell<*const Span>,
    /// Number of spans.
    pub len: Cell<u32>,
    /// Runtime pages of the members that are wholly empty (`alloc_count == 0`); an
    /// owner's free that would take it past [`EMPTY_OWNED_PAGES`] gives the span it
    /// emptied to mcentral instead (see "Owned spans").
    pub empty_pages: Cell<u32>,
}

impl OwnedList {
    const fn new() -> OwnedList {
        OwnedList {
            head: Cell::new(ptr::null()),
            tail: Cell::new(ptr::null()),
            len: Cell::new(0),
            empty_pages: Cell::new(0),
        }
    }

    /// Links `s` between `prev` and `next` (either may be null).
    fn link(&self, s: &Span, prev: *const Span, next: *const Span) {
        s.prev.set(prev);
        s.next.set(next);
        // SAFETY: list members are live spans owned by this cache.
        match unsafe { prev.as_ref() } {
            Some(p) => p.next.set(s),
            None => self.head.set(s),
        }
        // SAFETY: `next` is null or a member of this list: a live span owned by this cache.
        match unsafe { next.as_ref() } {
            Some(n) => n.prev.set(s),
            None => self.tail.set(s),
        }
        s.list.set(SpanList::Owned);
        self.len.set(self.len.get() + 1);
    }

    fn push_head(&self, s: &Span) {
        self.link(s, ptr::null(), self.head.get());
    }

    fn push_tail(&self, s: &Span) {
        self.link(s, self.tail.get(), ptr::null());
    }

    fn remove(&self, s: &Span) {
        let (p, n) = (s.prev.get(), s.next.get());
        // SAFETY: list members are live spans owned by this cache.
        match unsafe { p.as_ref() } {
            Some(p) => p.next.set(n),
            None => self.head.set(n),
        }
        // SAFETY: `n` is null or a member of this list: a live span owned by this cache.
        match unsafe { n.as_ref() } {
            Some(n) => n.prev.set(p),
            None => self.tail.set(p),
        }
        s.list.set(SpanList::None);
        self.len.set(self.len.get() - 1);
        if s.alloc_count.get() == 0 {
            self.empty_pages.set(self.empty_pages.get() - s.npages.get() as u32);
        }
    }

    /// The spans, head first.
    pub fn iter(&self) -> impl Iterator<Item = &Span> {
        let mut p = self.head.get();
        core::iter::from_fn(move || {
            // SAFETY: list members are live spans owned by this cache.
            let s = unsafe { p.as_ref() }?;
            p = s.next.get();
            Some(s)
        })
    }
}

/// This thread's last remote frees into one span (`span`), held back to go onto the span's
/// remote stack together, with one CAS (`RemoteStack::push_chain`), instead of one CAS each
/// (see "Held-back remote frees"). Owner only.
///
/// Invariants: `span` null and `len` 0, or `len` in `1..=REMOTE_CHAIN_MAX` objects of `span`
/// linked from `head` through their first words to `tail`, each with its alloc, live and
/// remote bits set (claimed by this thread: `Span::claim_remote`), on no stack.
pub struct RemoteChain {
    /// The span of the objects held, or null.
    pub span: Cell<*const Span>,
    /// The last object held (the chain's first node).
    pub head: Cell<*mut u8>,
    /// The first object held (the chain's last node).
    pub tail: Cell<*mut u8>,
    /// Objects held.
    pub len: Cell<u32>,
}

impl RemoteChain {
    const fn new() -> RemoteChain {
        RemoteChain {
            span: Cell::new(ptr::null()),
            head: Cell::new(ptr::null_mut()),
            tail: Cell::new(ptr::null_mut()),
            len: Cell::new(0),
        }
    }

    /// The objects held, from the last one held (for the checker).
    pub fn iter(&self) -> impl Iterator<Item = NonNull<u8>> + '_ {
        let (mut p, mut left) = (self.head.get(), self.len.get());
        core::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let q = NonNull::new(p)?;
            // SAFETY: a held object's first word links it to the next one held (invariant);
            // the last one's link is not read (`left` is 0 then).
            p = if left == 0 { ptr::null_mut() } else { unsafe { RemoteStack::next(q) } };
            Some(q)
        })
    }
}

// ANCHOR: mcache_struct
/// A thread cache (Go's `mcache`). Lives in heap metadata.
#[repr(C)]
pub struct MCache {
    // The fields every fast allocation or free reads, first: one cache line with the first
    // current spans.
    /// The arena record this cache's last free through the index found (`find_small`), a
    /// first guess before the arena index: null, or a record of this heap (live or retired;
    /// records stay mapped while the heap lives). `find_small` checks it with `Arena::holds`;
    /// `find_mine` trusts only a span of this cache found through it, checked against the
    /// address. Owner only.
    pub arena_hint: Cell<*const Arena>,
    /// An address `find_mine` looked up through the span map last, and the span map's entry
    /// for its page (`last_span`): a one-entry memo of the span map that the owner's next
    /// free on that page (`(p ^ last_addr) >> PAGE_SHIFT == 0`) tries first, two dependent
    /// loads fewer (the hint and the map entry). 0 (no page of a heap) at first. Owner only.
    pub last_addr: Cell<usize>,
    /// The span map's entry for `last_addr`'s page: [`EMPTY_SPAN`] at first, else a span record of
    /// this heap, mapped while the heap lives. Never trusted as it stands: `find_mine`
    /// checks it exactly as a span map entry (owner, then the address against its base and
    /// class), so a span that has since left this cache, or a reused record, is refused.
    pub last_span: Cell<*const Span>,
    /// Fast-path allocations left before this cache runs a bounded step of background work
    /// (scavenger.rs, `OP_STEP_ALLOCS`).
    pub ops_left: Cell<u32>,
    /// Current span per span class.
    pub alloc: [Cell<*const Span>; SPAN_CLASS_COUNT],
    /// Spans this cache owns besides the current one, per span class (see "Owned spans").
    pub owned: [OwnedList; SPAN_CLASS_COUNT],
    /// Objects this thread freed last, per size class (see freestack.rs).
    pub free: [FreeStack; CLASS_COUNT],
    /// Objects of each size class the fast paths allocated minus those they freed through
    /// this cache, not yet flushed to the root (`account_class`; the object size is the
    /// class's, so no byte count): one count per class, addressed like the class's free
    /// stack, instead of the cache's two. Written only by the owner (load + store), read by
    /// `Tiered::stats`.
    pub class_live: [AtomicIsize; CLASS_COUNT],
    /// Live bytes allocated minus freed through this cache, not yet flushed to the root.
    /// Written only by the owning thread (load + store, no read-modify-write).
    pub live_bytes: AtomicIsize,
    /// Same for objects.
    pub live_objects: AtomicIsize,
    /// The root this cache belongs to.
    pub root: *const Root,
    /// Next of every cache of the heap (heap lock).
    pub next_all: *mut MCache,
    /// Next on the heap's free-cache list (heap lock).
    pub next_free: *mut MCache,
    /// Whether a thread (or the shared path) uses this cache.
    pub in_use: AtomicBool,
    /// Refills from mcentral so far (paces the background scavenger work).
    pub refills: Cell<u32>,
    /// Bytes this cache may still free before it runs a bounded step of background work
    /// (scavenger.rs, `FREE_STEP_BYTES`).
    pub free_budget: Cell<isize>,
    /// Decay steps run so far (paces `collect_owned_remote`).
    pub decay_steps: Cell<u32>,
    /// Remote frees held back (see "Held-back remote frees").
    pub remote_chain: RemoteChain,
    /// The free stacks' slots (freestack.rs), uninitialised until pushed on: last, as the
    /// bulk of the record (every class's room), of which a thread touches the few classes
    /// it frees.
    pub free_slots: FreeSlots,
}
// ANCHOR_END: mcache_struct

// SAFETY: `MCache` is `!Sync` for its `Cell`s and raw pointers. The `Cell`s (current spans,
// owned lists, free stacks, counters, the arena hint) are used by one thread at a time: the
// thread whose thread-local slots hold the cache, or, for the shared cache, the holder of the
// root's `shared` lock; a record changes thread only through the heap lock (`new_cache`,
// `release_cache`), whose Acquire and Release order the accesses. Other threads read only
// `root` and `next_all` (written before the record is published under the heap lock, never
// after), `next_free` (under the heap lock), the atomics (`live_bytes`, `live_objects`, the
// `class_live`, `in_use`), and compare the cache's address with a span's `owner`. The checker reads the
// rest with no other thread running.
unsafe impl Sync for MCache {}

impl MCache {
    /// Makes a fresh cache for `root` at `c`, in place: every field but the free stacks'
    /// slots, which stay uninitialised until pushed on (`FreeSlots`), so a new cache writes
    /// a few KiB rather than the whole record, and no copy of it passes through the stack.
    ///
    /// # Safety
    /// `c` is valid for writes of an `MCache` and aligned for it, and nothing else uses it.
    pub unsafe fn init_at(c: *mut MCache, root: *const Root, next_all: *mut MCache) {
        // Every field but `free_slots` is written below: a field added to `MCache` breaks
        // this pattern until it is written too.
        let _fields = |m: &MCache| {
            let MCache {
                arena_hint: _,
                last_addr: _,
                last_span: _,
                ops_left: _,
                alloc: _,
                owned: _,
                free: _,
                class_live: _,
                live_bytes: _,
                live_objects: _,
                root: _,
                next_all: _,
                next_free: _,
                in_use: _,
                refills: _,
                free_budget: _,
                decay_steps: _,
                remote_chain: _,
                free_slots: _,
            } = m;
        };
        // SAFETY: `c` is valid for writes and aligned (the caller), so each field's place is;
        // the writes initialise every field but `free_slots`, whose arrays of `MaybeUninit`
        // need none.
        unsafe {
            (&raw mut (*c).arena_hint).write(Cell::new(ptr::null()));
            (&raw mut (*c).last_addr).write(Cell::new(0));
            (&raw mut (*c).last_span).write(Cell::new(ptr::from_ref(&EMPTY_SPAN)));
            (&raw mut (*c).ops_left).write(Cell::new(OP_STEP_ALLOCS));
            (&raw mut (*c).alloc).write([const { Cell::new(ptr::from_ref(&EMPTY_SPAN)) }; SPAN_CLASS_COUNT]);
            (&raw mut (*c).owned).write([const { OwnedList::new() }; SPAN_CLASS_COUNT]);
            (&raw mut (*c).free).write(free_stacks_init());
            (&raw mut (*c).class_live).write([const { AtomicIsize::new(0) }; CLASS_COUNT]);
            (&raw mut (*c).live_bytes).write(AtomicIsize::new(0));
            (&raw mut (*c).live_objects).write(AtomicIsize::new(0));
            (&raw mut (*c).root).write(root);
            (&raw mut (*c).next_all).write(next_all);
            (&raw mut (*c).next_free).write(ptr::null_mut());
            (&raw mut (*c).in_use).write(AtomicBool::new(true));
            (&raw mut (*c).refills).write(Cell::new(0));
            (&raw mut (*c).free_budget).write(Cell::new(FREE_STEP_BYTES as isize));
            (&raw mut (*c).decay_steps).write(Cell::new(0));
            (&raw mut (*c).remote_chain).write(RemoteChain::new());
        }
    }

    // ANCHOR: hold_remote
    /// Holds back the remote free of `p`, an object of span `s` that another cache owns and
    /// whose remote bit this thread has just claimed (`Span::claim_remote`): onto the chain
    /// if it holds objects of `s`, else the chain is pushed first and starts again with `p`;
    /// a chain of [`REMOTE_CHAIN_MAX`] objects is pushed at once. Owner only.
    #[inline]
    pub fn hold_remote(&self, root: &Root, s: &Span, p: NonNull<u8>) {
        let ch = &self.remote_chain;
        if !ptr::eq(ch.span.get(), s) {
            self.flush_remote(root);
            ch.span.set(s);
            ch.tail.set(p.as_ptr());
            ch.len.set(0);
        } else {
            // SAFETY: `p` is a freed object of `s` (at least 8 bytes, 8-aligned), claimed by
            // this thread and so used by nobody else: its first word links the chain.
            unsafe { p.cast::<*mut u8>().write(ch.head.get()) };
        }
        ch.head.set(p.as_ptr());
        let n = ch.len.get() + 1;
        ch.len.set(n);
        if n >= REMOTE_CHAIN_MAX {
            self.flush_remote(root);
        }
    }

    /// Pushes the held-back remote frees, if any: onto their span's remote stack, or onto its
    /// mcentral's pending stack if the span has no owner now (as `free_not_owned` chooses
    /// for a single free). Owner only; called when the chain changes span or is full, by the
    /// bounded step of background work (`Root::free_step`), and by `release_all` (thread
    /// exit, trim), so that held objects wait at most that long.
    pub fn flush_remote(&self, root: &Root) {
        let ch = &self.remote_chain;
        // SAFETY: a non-null chain span is live: the held objects keep their alloc bits, so
        // it cannot become empty and be freed (only its holder clears them, after they are
        // pushed).
        let Some(s) = (unsafe { ch.span.get().as_ref() }) else { return };
        ch.span.set(ptr::null());
        let (Some(first), Some(last)) = (NonNull::new(ch.head.get()), NonNull::new(ch.tail.get())) else {
            return;
        };
        ch.len.set(0);
        if s.owner.load(Ordering::Relaxed).is_null() {
            // SAFETY: the chain's objects are freed objects of `s`, claimed by this thread,
            // linked from `first` to `last`, on no stack (the chain's invariant).
            unsafe { root.central[s.span_class.get() as usize].pending.push_chain(first, last) };
            root.pending_hint.store(true, Ordering::Release);
        } else {
            // SAFETY: as above. Nothing of `s` is read after the push (see "Remote frees and
            // the record" in span.rs).
            unsafe { s.remote.push_chain(first, last) };
        }
    }
    // ANCHOR_END: hold_remote

    #[inline]
    pub(super) fn as_mut_ptr(&self) -> *mut MCache {
        ptr::from_ref(self).cast_mut()
    }

    /// Counts an allocation (+) or a free (-) in this cache's statistics. Owner only.
    #[inline]
    pub fn account(&self, bytes: isize, objects: isize) {
        let b = &self.live_bytes;
        b.store(b.load(Ordering::Relaxed) + bytes, Ordering::Relaxed);
        let o = &self.live_objects;
        o.store(o.load(Ordering::Relaxed) + objects, Ordering::Relaxed);
    }

    /// Counts `bytes` freed through this cache; true (and the budget renewed) when a
    /// bounded step of background work is due. Owner only.
    #[inline]
    pub fn note_free(&self, bytes: usize) -> bool {
        let left = self.free_budget.get() - bytes as isize;
        self.free_budget.set(if left < 0 { FREE_STEP_BYTES as isize } else { left });
        left < 0
    }

    /// Counts one fast-path allocation; true when a bounded step of background work is due
    /// (the caller renews the count on its cold path). Owner only.
    #[inline(always)]
    pub fn count_op(&self) -> bool {
        let n = self.ops_left.get().wrapping_sub(1);
        self.ops_left.set(n);
        n == 0
    }

    /// Counts an allocation (+1) or a free (-1) of an object of size class `class` (below
    /// `CLASS_COUNT`) in this cache's statistics: the fast paths' `account`, one count in the
    /// class's `class_live`. Owner only.
    #[inline(always)]
    pub fn account_class(&self, class: usize, objects: isize) {
        debug_assert!(class < CLASS_COUNT);
        // SAFETY: `class < CLASS_COUNT` (the callers: the class of a small span or
        // `class_of` of a small size, as for `free_stack`).
        let l = unsafe { self.class_live.get_unchecked(class) };
        l.store(l.load(Ordering::Relaxed) + objects, Ordering::Relaxed);
    }

    /// Live bytes and objects this cache counted and has not flushed: `live_bytes` and
    /// `live_objects`, plus the classes' counts (`account_class`). Any thread (a reader
    /// other than the owner may see a flush half done, as `Tiered::stats` allows).
    pub fn unflushed(&self) -> (isize, isize) {
        let (mut b, mut o) =
            (self.live_bytes.load(Ordering::Relaxed), self.live_objects.load(Ordering::Relaxed));
        for (l, &size) in self.class_live.iter().zip(&CLASS_BYTES) {
            let n = l.load(Ordering::Relaxed);
            b += n * size as isize;
            o += n;
        }
        (b, o)
    }

    /// Moves this cache's statistics into the root's and updates the peak.
    pub fn flush_stats(&self, root: &Root) {
        let mut b = self.live_bytes.swap(0, Ordering::Relaxed);
        let mut o = self.live_objects.swap(0, Ordering::Relaxed);
        for (l, &size) in self.class_live.iter().zip(&CLASS_BYTES) {
            // Owner only: a load and a store, no read-modify-write.
            let n = l.load(Ordering::Relaxed);
            if n != 0 {
                l.store(0, Ordering::Relaxed);
                b += n * size as isize;
                o += n;
            }
        }
        root.add_live(b, o);
    }

    /// `next_free_fast` in the current span of span class `spc` (no refill).
    #[inline(always)]
    pub fn alloc_small_fast(&self, spc: usize) -> Option<NonNull<u8>> {
        debug_assert!(spc < SPAN_CLASS_COUNT);
        // SAFETY: (1) `spc < SPAN_CLASS_COUNT`: the caller passes `span_class(class_of(size))`
        // of a small size; (2) `alloc[spc]` always points at a live span owned by this cache
        // (or at the static empty span).
        unsafe { &*self.alloc.get_unchecked(spc).get() }.next_free_fast()
    }

    // ANCHOR: alloc_small
    /// An object of span class `spc`: the fast path, no lock, no atomics.
    #[inline(always)]
    pub fn alloc_small<P: PageSource>(&self, root: &Root, src: &P, spc: usize) -> Option<NonNull<u8>> {
        debug_assert!(spc < SPAN_CLASS_COUNT);
        // SAFETY: (1) `spc < SPAN_CLASS_COUNT`: callers pass `span_class(class)` of a class
        // from `class_for` (below CLASS_COUNT); (2) `alloc[spc]` always
        // points at a live span owned by this cache (or at the static empty span).
        let s = unsafe { &*self.alloc.get_unchecked(spc).get() };
        match s.next_free_fast() {
            Some(p) => Some(p),
            None => self.refill(root, src, spc),
        }
    }
    // ANCHOR_END: alloc_small

    // ANCHOR: refill
    /// Go's `mcache.refill`: finish the current span's scan; at its end sweep the span
    /// (collect its remote frees) and rewind it if enough of it is free, else switch to an
    /// owned span worth a refill, or to one from mcentral (see "Refill policy").
    #[cold]
    #[inline(never)]
    fn refill<P: PageSource>(&self, root: &Root, src: &P, spc: usize) -> Option<NonNull<u8>> {
        let cur = self.alloc[spc].get();
        if !ptr::eq(cur, &EMPTY_SPAN) {
            // SAFETY: a current span is live and owned by this cache.
            let s = unsafe { &*cur };
            if let Some(p) = s.refill_current() {
                return Some(p);
            }
            self.alloc[spc].set(&EMPTY_SPAN);
            self.owned[spc].push_tail(s);
        }
        if let Some(t) = self.take_owned(spc) {
            self.alloc[spc].set(t);
            t.rewind();
            return t.next_free();
        }
        let old = self.over_budget(spc);
        self.refill_central(root, src, spc, old)
    }

    /// An owned span worth a refill, off the owned list: the head if it is one, else the
    /// first of the next [`TAKE_OWNED_LOOK_SPANS`] that is once its remote frees are
    /// collected; those passed over go to the tail (a bounded walk: a heap that only grows
    /// would otherwise pay a walk of the whole list for every refill).
    fn take_owned(&self, spc: usize) -> Option<&Span> {
        let l = &self.owned[spc];
        // SAFETY: owned spans are live and owned by this cache.
        let head = unsafe { l.head.get().as_ref() }?;
        if head.worth_refill() {
            l.remove(head);
            return Some(head);
        }
        for _ in 0..TAKE_OWNED_LOOK_SPANS.min(l.len.get() as usize) {
            // SAFETY: the list has at least one member left (the loop runs at most `len`
            // times and each round puts back or returns the one it removes), so the head is
            // a live span owned by this cache.
            let s = unsafe { &*l.head.get() };
            l.remove(s);
            s.collect_remote();
            if s.worth_refill() {
                return Some(s);
            }
            l.push_tail(s);
        }
        None
    }

    /// The owned span at the tail (the one least recently worth a refill) if the class's
    /// owned spans exceed [`OWNED_PAGES`], off the list, for mcentral.
    fn over_budget(&self, spc: usize) -> Option<&Span> {
        let l = &self.owned[spc];
        // SAFETY: owned spans are live and owned by this cache.
        let tail = unsafe { l.tail.get().as_ref() }?;
        if (l.len.get() as usize) * tail.npages.get() <= OWNED_PAGES {
            return None;
        }
        l.remove(tail);
        // Its objects on this cache's free stack go back into it first: a span leaves its
        // owner with none stacked (see "Free stacks" in freestack.rs).
        self.flush_span(tail);
        Some(tail)
    }

    // ANCHOR: on_refillable
    /// The owner's free of object `i` of small span `s` (this cache owns `s`): a bit clear
    /// and a count, and [`Self::on_refillable`] when that makes `s` worth a refill or empty.
    #[inline(always)]
    pub fn free_owned(&self, s: &Span, i: usize) {
        let n = s.free_local(i);
        if n == s.refill_count.get() || n == 0 {
            self.on_refillable(s);
        }
    }

    /// An owner's free brought span `s` to [`Span::refill_min`] free objects, or emptied
    /// it: if it is on the owned list, it moves to the head, where the next refill takes
    /// it; but a wholly empty span when the class already keeps one goes to mcentral (its
    /// spare, or the heap, where the scavenger reaches it).
    #[cold]
    #[inline(never)]
    pub fn on_refillable(&self, s: &Span) {
        if s.list.get() != SpanList::Owned {
            return;
        }
        let spc = s.span_class.get() as usize;
        let l = &self.owned[spc];
        let npages = s.npages.get() as u32;
        let empty = s.alloc_count.get() == 0;
        if empty {
            // Counted from now: `remove` uncounts it.
            l.empty_pages.set(l.empty_pages.get() + npages);
        }
        l.remove(s);
        if empty {
            let kept = l.empty_pages.get();
            if kept > 0 && (kept + npages) as usize > EMPTY_OWNED_PAGES {
                // SAFETY: a cache's root outlives it.
                let root = unsafe { &*self.root };
                root.central[spc].uncache_span(&root.heap, s);
                // Pages on their way back to the heap pace the scavenger like the frees
                // off the fast path; this free cannot run the step (no page source here),
                // so the next allocation does.
                if self.note_free(npages as usize * PAGE_BYTES) {
                    self.ops_left.set(1);
                }
                return;
            }
            l.empty_pages.set(kept + npages);
        }
        l.push_head(s);
    }
    // ANCHOR_END: on_refillable

    // ANCHOR: decay_empty
    /// A decay step (see "Empty spans leave"): in every class whose owned list holds more
    /// than [`DECAY_KEEP_SPANS`] wholly empty spans, the empty spans among the first
    /// [`DECAY_LOOK_SPANS`] from the head, past the first `DECAY_KEEP_SPANS`, go to mcentral
    /// (its spare, or the page heap, where the scavenger reaches them). Owner only; called
    /// by the bounded background step the cache's work pays for (`Root::free_step`).
    #[cold]
    pub fn decay_empty(&self, root: &Root) {
        let n = self.decay_steps.get().wrapping_add(1);
        self.decay_steps.set(n);
        if n.is_multiple_of(DECAY_COLLECT_EVERY_STEPS) {
            self.collect_owned_remote(root);
        }
        for spc in 0..SPAN_CLASS_COUNT {
            let l = &self.owned[spc];
            let empty = l.empty_pages.get() as usize;
            // SAFETY: owned spans are live and owned by this cache.
            let Some(head) = (unsafe { l.head.get().as_ref() }) else { continue };
            if empty <= DECAY_KEEP_SPANS * head.npages.get() {
                continue;
            }
            self.decay_class(root, spc);
        }
    }

    /// Collects the remote frees waiting on every owned span (every
    /// [`DECAY_COLLECT_EVERY_STEPS`]th decay step: a walk of the owned lists, so that spans
    /// other threads' frees emptied leave too, while the owner never refills from them). A
    /// span they emptied goes to mcentral if its class already keeps an empty owned span,
    /// else to the head as that one; a span they made worth a refill goes to the head; any
    /// other stays where it was. Owner only.
    fn collect_owned_remote(&self, root: &Root) {
        for spc in 0..SPAN_CLASS_COUNT {
            let l = &self.owned[spc];
            let mut p = l.head.get();
            // SAFETY: `p` is null or a member of this cache's owned list: a live span.
            while let Some(s) = unsafe { p.as_ref() } {
                p = s.next.get();
                if s.remote.is_empty() {
                    continue;
                }
                // Objects on the remote stack keep their alloc bits: `s` is not empty, and
                // `remove` uncounts nothing.
                let prev = s.prev.get();
                l.remove(s);
                s.collect_remote();
                if s.alloc_count.get() == 0 {
                    if l.empty_pages.get() > 0 {
                        root.central[spc].uncache_span(&root.heap, s);
                        continue;
                    }
                    l.empty_pages.set(s.npages.get() as u32);
                    l.push_head(s);
                } else if s.worth_refill() {
                    l.push_head(s);
                } else {
                    l.link(s, prev, p);
                }
            }
        }
    }

    /// `decay_empty` for span class `spc`.
    fn decay_class(&self, root: &Root, spc: usize) {
        let l = &self.owned[spc];
        let (mut kept, mut p) = (0, l.head.get());
        for _ in 0..DECAY_LOOK_SPANS {
            // SAFETY: `p` is null or a member of this cache's owned list: a live span.
            let Some(s) = (unsafe { p.as_ref() }) else { return };
            p = s.next.get();
            if s.alloc_count.get() != 0 {
                continue;
            }
            if kept < DECAY_KEEP_SPANS {
                kept += 1;
                continue;
            }
            // Wholly empty: no object of it is on a free stack (a stacked object keeps its
            // alloc bit), so it leaves with nothing to flush.
            l.remove(s);
            root.central[spc].uncache_span(&root.heap, s);
        }
    }
    // ANCHOR_END: decay_empty

    /// The part of refill that goes to mcentral (giving `old` back in the same lock hold).
    fn refill_central<P: PageSource>(
        &self,
        root: &Root,
        src: &P,
        spc: usize,
        old: Option<&Span>,
    ) -> Option<NonNull<u8>> {
        let n = self.refills.get().wrapping_add(1);
        self.refills.set(n);
        if n.is_multiple_of(FLUSH_EVERY_REFILLS)
            || self.live_bytes.load(Ordering::Relaxed).unsigned_abs() > FLUSH_BYTES
        {
            self.flush_stats(root);
        }
        let s = root.central[spc].cache_span(&root.heap, src, spc, self.as_mut_ptr(), old, root.index)?;
        self.alloc[spc].set(s);
        if n.is_multiple_of(BACKGROUND_EVERY_REFILLS) {
            root.background(src);
        }
        s.next_free()
    }
    // ANCHOR_END: refill

    /// Whether the cache holds nothing of its heap: no current or owned span, empty free
    /// stacks (so giving it back changes nothing but the slot).
    pub fn holds_nothing(&self) -> bool {
        self.remote_chain.span.get().is_null()
            && self.alloc.iter().all(|a| ptr::eq(a.get(), &EMPTY_SPAN))
            && self.owned.iter().all(|l| l.len.get() == 0)
            && self.free.iter().all(|f| f.len() == 0)
    }

    // ANCHOR: release_all
    /// Go's `releaseAll`: gives every current span back to mcentral, flushes the
    /// statistics. Needs no page source, so it can run at thread exit.
    pub fn release_all(&self, root: &Root) {
        self.flush_remote(root);
        self.flush_free_stacks();
        for spc in 0..SPAN_CLASS_COUNT {
            let cur = self.alloc[spc].get();
            if ptr::eq(cur, &EMPTY_SPAN) {
                continue;
            }
            self.alloc[spc].set(&EMPTY_SPAN);
            // SAFETY: a current span is live and owned by this cache.
            root.central[spc].uncache_span(&root.heap, unsafe { &*cur });
        }
        for spc in 0..SPAN_CLASS_COUNT {
            let l = &self.owned[spc];
            // SAFETY: owned spans are live and owned by this cache.
            while let Some(s) = unsafe { l.head.get().as_ref() } {
                l.remove(s);
                root.central[spc].uncache_span(&root.heap, s);
            }
        }
        self.flush_stats(root);
    }
    // ANCHOR_END: release_all
}
