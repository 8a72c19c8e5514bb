//! The free stacks: per size class, the objects this thread freed last, handed out again
//! newest first. No Go counterpart: Go's GC finds dead objects long after, never at a free.
//!
//! # Free stacks (explicit free's answer to the question Go's GC never asks)
//! A program that frees an object has usually just used it, so its memory is likely still
//! in the processor's cache. Go's sweep cannot exploit that (it finds dead objects long
//! after), and a bitmap span hands out its lowest free slot, wherever the last free was.
//! So the cache keeps, per size class, a stack of the objects this thread freed last (at
//! most [`FREE_STACK_SLOTS`], and at most [`FREE_STACK_BYTES`] of them but always room
//! for one), and the class's next allocation takes the top one. In the churn benchmark
//! this cuts the first-level cache misses (cachegrind; figure in benches/README.md),
//! because the program's writes into its new objects land on lines it has just read.
//! - A free by the cache that owns the object's span (the owner's fast path in malloc.rs)
//!   pushes it, after the free checked that it was live and cleared its live bit (span.rs,
//!   "Liveness"): to `block_of` and to a second free it is not live any more. Its alloc bit
//!   stays set: to its span it is still allocated, now to this cache, so nothing else can
//!   hand it out. A free by any other thread takes the remote path, so a stack holds
//!   objects of this cache's own spans only, and the pop that hands one out again sets its
//!   live bit as the holder of its span.
//! - A full stack sends the free down the span path below.
//! - Each slot keeps the object's span and index beside its pointer, so that a pop sets the
//!   live bit without a lookup.
//! - A span leaves its owner only empty (no stacked object: those keep their alloc bit), at
//!   `release_all` (which flushes the stacks first), or over the owned budget
//!   (`MCache::over_budget`, which flushes that span's objects first).
//! - `release_all` (thread exit, `trim`) first frees every stacked object into its span
//!   as this cache (`flush_free_stacks`).
//! - Memory held: at most 16 objects and 16 KiB per class and thread (one object over
//!   16 KiB; 721 KiB per thread if every class's stack is full), and the spans they keep
//!   from emptying.
//! - A thread without a cache (before its first allocation, during its exit) and the
//!   shared cache never stack.

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicIsize;

use super::mcache::MCache;
use super::sizeclass::{CLASS_BYTES, CLASS_COUNT};
use super::span::Span;

/// Objects a class's free stack holds at most (see "Free stacks").
pub const FREE_STACK_SLOTS: usize = 16;

/// Bytes a class's free stack holds at most (but always room for one object).
pub const FREE_STACK_BYTES: usize = 16 << 10;

/// The free stacks of a fresh cache (empty, each with its class's room).
pub(super) const fn free_stacks_init() -> [FreeStack; CLASS_COUNT] {
    let mut a = [const {
        FreeStack {
            len: Cell::new(0),
            cap: 0,
            live: AtomicIsize::new(0),
            slots: [const { Cell::new(NonNull::dangling()) }; FREE_STACK_SLOTS],
            spans: [const { Cell::new(ptr::null()) }; FREE_STACK_SLOTS],
            index: [const { Cell::new(0) }; FREE_STACK_SLOTS],
        }
    }; CLASS_COUNT];
    let mut c = 0;
    while c < CLASS_COUNT {
        a[c] = FreeStack::new(c);
        c += 1;
    }
    a
}

// ANCHOR: free_stack
/// The free stack of one size class (see "Free stacks"): the objects of that class this
/// thread freed last, newest on top. Owner only.
#[repr(C)]
pub struct FreeStack {
    /// Objects on the stack (`slots[..len]`).
    pub len: Cell<u32>,
    /// Room: `min(FREE_STACK_SLOTS, FREE_STACK_BYTES / size)`, at least 1; 0 for class 0
    /// (large objects never use a stack).
    pub cap: u32,
    /// Objects of this class the fast paths allocated minus those they freed through this
    /// cache, not yet flushed to the root (`MCache::account_class`; the object size is the
    /// class's, so no byte count): one count beside `len`, which every fast allocation and
    /// free reads anyway, instead of the cache's two. Written only by the owner (load +
    /// store), read by `Tiered::stats`.
    pub live: AtomicIsize,
    /// The objects (`slots[..len]`), as the freeing caller's pointers: a pop hands out the
    /// pointer the free was given, provenance and all.
    pub slots: [Cell<NonNull<u8>>; FREE_STACK_SLOTS],
    /// The span of each object (owned by this cache).
    pub spans: [Cell<*const Span>; FREE_STACK_SLOTS],
    /// The index of each object in its span.
    pub index: [Cell<u16>; FREE_STACK_SLOTS],
}

impl FreeStack {
    const fn new(class: usize) -> FreeStack {
        let size = CLASS_BYTES[class] as usize;
        let cap = match FREE_STACK_BYTES.checked_div(size) {
            None => 0,
            Some(0) => 1,
            Some(n) if n > FREE_STACK_SLOTS => FREE_STACK_SLOTS,
            Some(n) => n,
        };
        FreeStack {
            len: Cell::new(0),
            cap: cap as u32,
            live: AtomicIsize::new(0),
            slots: [const { Cell::new(NonNull::dangling()) }; FREE_STACK_SLOTS],
            spans: [const { Cell::new(ptr::null()) }; FREE_STACK_SLOTS],
            index: [const { Cell::new(0) }; FREE_STACK_SLOTS],
        }
    }

    /// Whether `push` may be called (the stack is not full).
    #[inline(always)]
    pub fn has_room(&self) -> bool {
        self.len.get() < self.cap
    }

    /// Puts freed object `i` (at `p`) of span `s` on the stack. Owner only, as for
    /// `MCache::push_free`.
    ///
    /// # Safety
    /// The stack has room (`has_room` said so, with no push since): the slot written is
    /// `len`, unchecked.
    #[inline(always)]
    pub unsafe fn push(&self, s: &Span, i: usize, p: NonNull<u8>) {
        let n = self.len.get();
        debug_assert!(n < self.cap, "push on a full free stack");
        let k = n as usize;
        // SAFETY: `n < cap` (the caller's contract) and `cap <= FREE_STACK_SLOTS`
        // (`FreeStack::new`; `cap` never changes), so `k` indexes every array. Unchecked:
        // the bound `n % FREE_STACK_SLOTS` it replaces cost two instructions a push.
        unsafe {
            self.slots.get_unchecked(k).set(p);
            self.spans.get_unchecked(k).set(s);
            self.index.get_unchecked(k).set(i as u16);
        }
        self.len.set(n + 1);
    }

    /// The objects on the stack, bottom first, each with its span and index.
    pub fn iter(&self) -> impl Iterator<Item = (NonNull<u8>, *const Span, usize)> + '_ {
        (0..self.len.get() as usize)
            .map(|k| (self.slots[k].get(), self.spans[k].get(), self.index[k].get() as usize))
    }
}
// ANCHOR_END: free_stack

impl MCache {
    // ANCHOR: free_stack_ops
    /// Puts freed object `i` (at `p`) of span `s`, of size class `class` (the span's), on
    /// that class's free stack; false if the stack is full (the caller frees it into its
    /// span). Owner only: `s` is owned by this cache, and the object was live and has had
    /// its live bit cleared; its alloc bit stays set.
    #[inline(always)]
    pub fn push_free(&self, s: &Span, class: usize, i: usize, p: NonNull<u8>) -> bool {
        debug_assert!(class == s.class.get() as usize && class < CLASS_COUNT);
        // SAFETY: `class < CLASS_COUNT`: the class of `s` (caller), a small span owned by this
        // cache, whose class `Span::init` took from a span class below `SPAN_CLASS_COUNT`.
        let st = unsafe { self.free.get_unchecked(class) };
        if !st.has_room() {
            return false;
        }
        // SAFETY: the stack has room (tested just above).
        unsafe { st.push(s, i, p) };
        true
    }

    /// The free stack of size class `class` (below `CLASS_COUNT`), to test for room and push
    /// onto (`FreeStack::has_room`, `FreeStack::push`) with the object's live bit cleared in
    /// between. Owner only.
    #[inline(always)]
    pub fn free_stack(&self, class: usize) -> &FreeStack {
        debug_assert!(class < CLASS_COUNT);
        // SAFETY: `class < CLASS_COUNT` (the caller: the class of a small span, which
        // `Span::init` took from a span class below `SPAN_CLASS_COUNT`).
        unsafe { self.free.get_unchecked(class) }
    }

    /// The object on top of size class `class`'s free stack, off it and live again. Owner
    /// only.
    #[inline(always)]
    pub fn pop_free(&self, class: usize) -> Option<NonNull<u8>> {
        debug_assert!(class < CLASS_COUNT);
        // SAFETY: `class < CLASS_COUNT`: callers pass `class_of(size)` of a small size.
        let st = unsafe { self.free.get_unchecked(class) };
        let n = st.len.get().checked_sub(1)? as usize % FREE_STACK_SLOTS;
        st.len.set(n as u32);
        // SAFETY: a stacked object's span is owned by this cache (a span leaves it only with
        // no stacked object, see "Free stacks"), so it is live and this thread holds it.
        let s = unsafe { &*st.spans[n].get() };
        s.set_live(st.index[n].get() as usize);
        Some(st.slots[n].get())
    }

    /// Frees every object of this cache's free stacks into its span (the owner's bit clear),
    /// so that their spans can empty. Owner only.
    pub fn flush_free_stacks(&self) {
        for st in &self.free {
            self.flush_stack(st, |_| true);
        }
    }

    /// Frees the objects of span `s` on its class's stack into it (before `s` leaves this
    /// cache). Owner only.
    pub fn flush_span(&self, s: &Span) {
        let st = &self.free[s.class.get() as usize % CLASS_COUNT];
        self.flush_stack(st, |t| ptr::eq(t, s));
    }

    /// Frees the objects of stack `st` whose span `pick` chooses into their spans, and keeps
    /// the others in order.
    fn flush_stack(&self, st: &FreeStack, pick: impl Fn(*const Span) -> bool) {
        let mut kept = 0;
        for k in 0..st.len.get() as usize {
            let (p, s, i) = (st.slots[k].get(), st.spans[k].get(), st.index[k].get());
            if pick(s) {
                // SAFETY: a stacked object's span is live and owned by this cache.
                self.free_owned(unsafe { &*s }, i as usize);
            } else {
                st.slots[kept].set(p);
                st.spans[kept].set(s);
                st.index[kept].set(i);
                kept += 1;
            }
        }
        st.len.set(kept as u32);
    }
    // ANCHOR_END: free_stack_ops
}
