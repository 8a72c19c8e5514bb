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
//! - A free of a small object (16 B to 32 KiB, alignment up to 8) by a thread that has a
//!   cache for this heap pushes it, whoever allocated it: the layout gives the class, so
//!   no span is read. The object's alloc bit stays set: to its span, whose owner may be
//!   another thread, it is still allocated, now to this cache. Nothing else can hand it
//!   out, and nothing in the span changes.
//! - A full stack sends the free down the span path below.
//! - The layout a free passes may be smaller than the block's class (an in-place `realloc`
//!   that shrank it), never larger, so a stacked object always has room for its stack's
//!   class. `realloc` never keeps a large object in place at a small size, so stacks hold
//!   objects of small spans only.
//! - `release_all` (thread exit, `trim`) first frees every stacked object into its span
//!   as this cache would (`flush_free_stacks`).
//! - Memory held: at most 16 objects and 16 KiB per class and thread (one object over
//!   16 KiB; 721 KiB per thread if every class's stack is full), and the spans they keep
//!   from emptying.
//! - A thread without a cache (before its first allocation, during its exit) and the
//!   shared cache never stack.

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use super::mcache::MCache;
use super::sizeclass::{CLASS_BYTES, CLASS_COUNT};
use super::tiny::TINY_BLOCK_BYTES;
use super::{Root, arena};

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
            slots: [const { Cell::new(NonNull::dangling()) }; FREE_STACK_SLOTS],
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
    /// Room: `min(FREE_STACK_SLOTS, FREE_STACK_BYTES / size)`, at least 1; 0 for the
    /// classes that never use a stack (large, and 8 B: those are tiny requests).
    pub cap: u32,
    /// The objects (`slots[..len]`), as the freeing caller's pointers: a pop hands out the
    /// pointer the free was given, provenance and all.
    pub slots: [Cell<NonNull<u8>>; FREE_STACK_SLOTS],
}

impl FreeStack {
    const fn new(class: usize) -> FreeStack {
        let size = CLASS_BYTES[class] as usize;
        let cap = if size < TINY_BLOCK_BYTES {
            0
        } else {
            let n = FREE_STACK_BYTES / size;
            if n == 0 {
                1
            } else if n > FREE_STACK_SLOTS {
                FREE_STACK_SLOTS
            } else {
                n
            }
        };
        FreeStack {
            len: Cell::new(0),
            cap: cap as u32,
            slots: [const { Cell::new(NonNull::dangling()) }; FREE_STACK_SLOTS],
        }
    }

    /// The objects on the stack, bottom first.
    pub fn iter(&self) -> impl Iterator<Item = NonNull<u8>> + '_ {
        self.slots[..self.len.get() as usize].iter().map(Cell::get)
    }
}
// ANCHOR_END: free_stack

/// Who runs `Root::can_stack`, which decides whether it may read a span's alloc bits.
#[derive(Copy, Clone)]
pub(super) enum Reader {
    /// The checker: no other thread uses the heap.
    Alone,
    /// A free on the thread whose cache this is.
    Cache(*const MCache),
}

impl MCache {
    // ANCHOR: free_stack_ops
    /// Puts freed object `p` of size class `class` on its free stack; false if the stack is
    /// full (the caller frees it into its span). Owner only; `p` is a live small object of
    /// `class` (a span of span class `span_class(class)`), whose alloc bit stays set.
    #[inline(always)]
    pub fn push_free(&self, class: usize, p: NonNull<u8>) -> bool {
        debug_assert!(class < CLASS_COUNT);
        // SAFETY: `class < CLASS_COUNT`: callers pass `class_of(size)` of a small size.
        let st = unsafe { self.free.get_unchecked(class) };
        let n = st.len.get();
        if n >= st.cap {
            return false;
        }
        debug_assert!(st.iter().all(|q| q != p), "double free of {p:p} (already on the free stack)");
        // SAFETY: `n < cap <= FREE_STACK_SLOTS`.
        unsafe { st.slots.get_unchecked(n as usize) }.set(p);
        st.len.set(n + 1);
        true
    }

    /// The object on top of size class `class`'s free stack, off it. Owner only.
    #[inline(always)]
    pub fn pop_free(&self, class: usize) -> Option<NonNull<u8>> {
        debug_assert!(class < CLASS_COUNT);
        // SAFETY: `class < CLASS_COUNT`: callers pass `class_of(size)` of a small size, or a
        // class of the loop over `0..CLASS_COUNT`.
        let st = unsafe { self.free.get_unchecked(class) };
        let n = st.len.get().checked_sub(1)?;
        st.len.set(n);
        // SAFETY: `n < len <= cap <= FREE_STACK_SLOTS`.
        Some(unsafe { st.slots.get_unchecked(n as usize) }.get())
    }

    /// Frees every object of this cache's free stacks into its span, as this cache (the
    /// owner's bit clear, or a remote free), so that their spans can empty. Owner only.
    pub fn flush_free_stacks(&self, root: &Root) {
        for class in 0..CLASS_COUNT {
            while let Some(p) = self.pop_free(class) {
                let s = root.span_of(p.as_ptr().addr());
                super::malloc::free_small(root, self.as_mut_ptr(), s, p);
            }
        }
    }
    // ANCHOR_END: free_stack_ops
}

impl Root {
    /// Whether address `p` may be on a free stack of size class `class`: an object of a
    /// small span of this heap (at an object boundary, alloc bit set) with room for a
    /// `class` object (see "Free stacks" above). For debug checks and the checker: it
    /// looks the span up, which the free stack exists to avoid.
    ///
    /// The alloc bit belongs to the span's holder (see `unsafe impl Sync for Span`), so it
    /// is read only when `reader` may: the checker, with no other thread running, or the
    /// cache that owns the span. A free on another thread checks the rest, which is fixed
    /// while the span lives, and leaves the bit alone.
    pub(super) fn can_stack(&self, p: usize, class: usize, reader: Reader) -> bool {
        // SAFETY: the index is published with the root; `span_of` checks the range, and the
        // entry of any address in a registered arena is in a Ready page.
        let s = unsafe { arena::span_of(self.index, p) };
        // SAFETY: non-null entries of the span map point at live spans.
        let Some(s) = (unsafe { s.as_ref() }) else { return false };
        let room = CLASS_BYTES[class] as usize;
        // Small spans only (odd span classes): a large object's layout is never small
        // (`realloc` keeps it large), and tiny objects (under 16 B) never reach a stack.
        if s.span_class.get() & 1 == 0 || p < s.base_addr() || p >= s.end() {
            return false;
        }
        let i = s.object_index(p);
        let object = s.base_addr() + i * s.elem_bytes.get() == p
            && i < s.nelems.get() as usize
            && s.elem_bytes.get() >= room;
        let may_read_bits = match reader {
            Reader::Alone => true,
            Reader::Cache(c) => ptr::eq(s.owner.load(Ordering::Relaxed), c),
        };
        object && (!may_read_bits || s.bit(i))
    }
}
