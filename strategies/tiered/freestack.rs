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
//!   16 KiB), 128 objects for the classes up to 64 B (8 KiB at most: 742 KiB per thread if
//!   every class's stack is full), and the spans they keep from emptying: a stacked object
//!   keeps its span, so the room counts objects, not only bytes (with 128 objects in every
//!   class up to 1 KiB, `tests/tiered_return.rs` kept 30 MiB Ready after freeing 128 MiB
//!   in random order, against 22 MiB allowed). 128 for the smallest classes so that a run
//!   of a hundred frees of one class (glibc's malloc benchmark frees 16, 32 and 64 B blocks
//!   a hundred at a time) goes onto the stack and comes back from it, a push and a pop
//!   instead of an alloc-bit clear and a scan; the slots are laid out per class's room
//!   ([`FreeSlots`]).
//! - A thread without a cache (before its first allocation, during its exit) and the
//!   shared cache never stack.

use core::cell::Cell;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

use super::mcache::MCache;
use super::sizeclass::{CLASS_BYTES, CLASS_COUNT};
use super::span::Span;

/// Objects a class's free stack holds at most (see "Free stacks"), for classes over
/// [`FREE_STACK_SMALL_OBJECT`].
pub const FREE_STACK_SLOTS: usize = 16;

/// Objects the free stack of a class up to [`FREE_STACK_SMALL_OBJECT`] holds.
pub const FREE_STACK_SMALL_SLOTS: usize = 128;

/// The largest object size whose class's stack has [`FREE_STACK_SMALL_SLOTS`].
pub const FREE_STACK_SMALL_OBJECT: usize = 64;

/// Bytes a class's free stack holds at most (but always room for one object).
pub const FREE_STACK_BYTES: usize = 16 << 10;

/// The room of size class `class`'s free stack: [`FREE_STACK_SMALL_SLOTS`] up to
/// [`FREE_STACK_SMALL_OBJECT`], else `min(FREE_STACK_SLOTS, FREE_STACK_BYTES / size)`, at
/// least 1; 0 for class 0 (large objects never use a stack).
pub const fn stack_room(class: usize) -> usize {
    let size = CLASS_BYTES[class] as usize;
    if size != 0 && size <= FREE_STACK_SMALL_OBJECT {
        return FREE_STACK_SMALL_SLOTS;
    }
    match FREE_STACK_BYTES.checked_div(size) {
        None => 0,
        Some(0) => 1,
        Some(n) if n > FREE_STACK_SLOTS => FREE_STACK_SLOTS,
        Some(n) => n,
    }
}

/// The first slot of each class's stack in a cache's slot arrays ([`FreeSlots`]): the
/// classes' rooms laid end to end, class 0 first; entry `CLASS_COUNT` is the total.
const STACK_BASE: [usize; CLASS_COUNT + 1] = {
    let mut a = [0; CLASS_COUNT + 1];
    let mut c = 0;
    while c < CLASS_COUNT {
        a[c + 1] = a[c] + stack_room(c);
        c += 1;
    }
    a
};

/// Slots of every class's stack together: the length of a cache's slot arrays.
pub const FREE_SLOTS: usize = STACK_BASE[CLASS_COUNT];

// The stacks' bounds are kept in 16 bits (`FreeStack`).
const _: () = assert!(FREE_SLOTS <= u16::MAX as usize);

/// The free stacks of a fresh cache (empty, each with its class's room).
pub(super) const fn free_stacks_init() -> [FreeStack; CLASS_COUNT] {
    let mut a = [const { FreeStack { top: Cell::new(0), limit: 0, base: 0, _pad: 0 } }; CLASS_COUNT];
    let mut c = 0;
    while c < CLASS_COUNT {
        let base = STACK_BASE[c] as u16;
        a[c] = FreeStack { top: Cell::new(base), limit: STACK_BASE[c + 1] as u16, base, _pad: 0 };
        c += 1;
    }
    a
}

// ANCHOR: free_stack
/// The free stack of one size class (see "Free stacks"): the objects of that class this
/// thread freed last, newest on top, in slots `base..top` of the cache's slot arrays
/// ([`FreeSlots`], where each class has `stack_room(class)` slots from `base`). Owner only.
///
/// Invariant: `base <= top <= limit`, `base == STACK_BASE[class]`, `limit - base ==
/// stack_room(class)`; `base` and `limit` never change.
///
/// 8 bytes, so that the allocation fast path addresses a class's stack from the cache and
/// the class with one scaled index (as it does the class's count, `MCache::class_live`).
#[repr(C)]
pub struct FreeStack {
    /// One past the top object: the stack holds slots `base..top`.
    pub top: Cell<u16>,
    /// One past the class's last slot: the stack is full at `top == limit`.
    pub limit: u16,
    /// The class's first slot: the stack is empty at `top == base`.
    pub base: u16,
    _pad: u16,
}

const _: () = assert!(core::mem::size_of::<FreeStack>() == 8);

/// The slots of every class's free stack, one array per field, indexed by slot (class
/// `c`'s stack has `stack_room(c)` slots from `STACK_BASE[c]`): each slot holds an object,
/// its span and its index. The rooms differ (at most [`FREE_STACK_SLOTS`] objects and
/// [`FREE_STACK_BYTES`] per class), so the slots are laid end to end rather than in arrays
/// of the largest room per class; a push or pop addresses its slot from the cache with the
/// absolute index `top`, as it would within a class's own array.
///
/// Uninitialised until written: only slots `base..top` of each stack are read, and each was
/// written by the push that filled it (or by `flush_stack`, which moves kept slots down), so
/// a fresh cache writes none of its 46 KiB of slots (`MCache::init_at`).
#[repr(C)]
pub struct FreeSlots {
    /// The objects, as the freeing caller's pointers: a pop hands out the pointer the free
    /// was given, provenance and all.
    pub slots: [Cell<MaybeUninit<NonNull<u8>>>; FREE_SLOTS],
    /// The span of each object (owned by this cache).
    pub spans: [Cell<MaybeUninit<*const Span>>; FREE_SLOTS],
    /// The index of each object in its span.
    pub index: [Cell<MaybeUninit<u16>>; FREE_SLOTS],
}

impl FreeStack {
    /// Whether a push may be made (the stack is not full).
    #[inline(always)]
    pub fn has_room(&self) -> bool {
        self.top.get() < self.limit
    }

    /// Objects on the stack.
    pub fn len(&self) -> usize {
        usize::from(self.top.get() - self.base)
    }

    /// Objects the stack holds at most (`stack_room` of its class).
    pub fn room(&self) -> usize {
        usize::from(self.limit - self.base)
    }
}
// ANCHOR_END: free_stack

impl MCache {
    // ANCHOR: free_stack_ops
    /// Puts freed object `i` (at `p`) of span `s` on the stack `st` of this cache. Owner
    /// only, as for [`Self::push_free`].
    ///
    /// # Safety
    /// `st` is one of this cache's stacks and has room (`has_room` said so, with no push
    /// since): the slot written is `top`, unchecked.
    #[inline(always)]
    pub unsafe fn push_unchecked(&self, st: &FreeStack, s: &Span, i: usize, p: NonNull<u8>) {
        let t = st.top.get();
        debug_assert!(t < st.limit, "push on a full free stack");
        let k = usize::from(t);
        // SAFETY: `top < limit` (the caller's contract) and `limit <= FREE_SLOTS` (the
        // stack's invariant: `STACK_BASE`, never changed), so `k` indexes every array.
        unsafe {
            let f = &self.free_slots;
            f.slots.get_unchecked(k).set(MaybeUninit::new(p));
            f.spans.get_unchecked(k).set(MaybeUninit::new(s));
            f.index.get_unchecked(k).set(MaybeUninit::new(i as u16));
        }
        st.top.set(t + 1);
    }

    /// Puts freed object `i` (at `p`) of span `s`, of size class `class` (the span's), on
    /// that class's free stack; false if the stack is full (the caller frees it into its
    /// span). Owner only: `s` is owned by this cache, and the object was live and has had
    /// its live bit cleared; its alloc bit stays set.
    #[inline(always)]
    pub fn push_free(&self, s: &Span, class: usize, i: usize, p: NonNull<u8>) -> bool {
        debug_assert!(class == s.class.get() as usize && class < CLASS_COUNT);
        let st = self.free_stack(class);
        if !st.has_room() {
            return false;
        }
        // SAFETY: this cache's stack, with room (tested just above).
        unsafe { self.push_unchecked(st, s, i, p) };
        true
    }

    /// The free stack of size class `class` (below `CLASS_COUNT`), to test for room and push
    /// onto (`FreeStack::has_room`, `MCache::push_unchecked`) with the object's live bit
    /// cleared in between. Owner only.
    #[inline(always)]
    pub fn free_stack(&self, class: usize) -> &FreeStack {
        debug_assert!(class < CLASS_COUNT);
        // SAFETY: `class < CLASS_COUNT` (the caller: the class of a small span, which
        // `Span::init` took from a span class below `SPAN_CLASS_COUNT`, or `class_of` of a
        // small size).
        unsafe { self.free.get_unchecked(class) }
    }

    /// The object on top of size class `class`'s free stack, off it and live again. Owner
    /// only.
    #[inline(always)]
    pub fn pop_free(&self, class: usize) -> Option<NonNull<u8>> {
        self.pop_from(self.free_stack(class))
    }

    /// [`Self::pop_free`] from `st`, one of this cache's stacks (`free_stack`). Owner only.
    #[inline(always)]
    pub fn pop_from(&self, st: &FreeStack) -> Option<NonNull<u8>> {
        let t = st.top.get();
        if t == st.base {
            return None;
        }
        let t = t - 1;
        st.top.set(t);
        let k = usize::from(t);
        let f = &self.free_slots;
        // SAFETY: `base <= k < top <= limit <= FREE_SLOTS` (the stack's invariant), so `k`
        // indexes every array, and the slot was written (slots `base..top` are filled: see
        // `FreeSlots`). A stacked object's span is owned by this cache (a span leaves it
        // only with no stacked object, see "Free stacks"), so it is live and this thread
        // holds it.
        unsafe {
            let s = &*f.spans.get_unchecked(k).get().assume_init();
            s.set_live(usize::from(f.index.get_unchecked(k).get().assume_init()));
            Some(f.slots.get_unchecked(k).get().assume_init())
        }
    }

    /// Slot `k` of this cache's slot arrays: its object, span and index.
    ///
    /// # Safety
    /// `k` is in `base..top` of one of this cache's stacks (so the slot was written).
    #[inline]
    unsafe fn slot(&self, k: usize) -> (NonNull<u8>, *const Span, u16) {
        let f = &self.free_slots;
        // SAFETY: a slot of a stack's `base..top`, written by the push that filled it (or
        // by `flush_stack`'s move), as the caller promises.
        unsafe {
            (f.slots[k].get().assume_init(), f.spans[k].get().assume_init(), f.index[k].get().assume_init())
        }
    }

    /// The objects on stack `st` of this cache, bottom first, each with its span and index.
    pub fn stacked(&self, st: &FreeStack) -> impl Iterator<Item = (NonNull<u8>, *const Span, usize)> + '_ {
        let (base, top) = (usize::from(st.base), usize::from(st.top.get()));
        (base..top).map(move |k| {
            // SAFETY: `k` in `base..top` of `st`, one of this cache's stacks (the caller's).
            let (p, s, i) = unsafe { self.slot(k) };
            (p, s, usize::from(i))
        })
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
        let f = &self.free_slots;
        let mut kept = usize::from(st.base);
        for k in usize::from(st.base)..usize::from(st.top.get()) {
            // SAFETY: `k` in `base..top` of `st`, one of this cache's stacks (callers pass
            // `self.free`'s).
            let (p, s, i) = unsafe { self.slot(k) };
            if pick(s) {
                // SAFETY: a stacked object's span is live and owned by this cache.
                self.free_owned(unsafe { &*s }, usize::from(i));
            } else {
                f.slots[kept].set(MaybeUninit::new(p));
                f.spans[kept].set(MaybeUninit::new(s));
                f.index[kept].set(MaybeUninit::new(i));
                kept += 1;
            }
        }
        st.top.set(kept as u16);
    }
    // ANCHOR_END: free_stack_ops
}
