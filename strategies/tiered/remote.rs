//! The lock-free stack of the tiered design, kept apart so that `loom` can check
//! them (tests/loom_tiered.rs compiles this very file against loom's atomics).
//!
//! No Go original: Go's GC finds dead objects; with explicit free, a free from a thread that
//! does not own the span must reach the owner (mimalloc's `thread_free` list plays this role).
//!
//! # `RemoteStack` (a span's remote frees)
//! A Treiber stack of freed objects linked through their first word. Heads and links are
//! pointers (never integers), so each object keeps the provenance it was pushed with.
//! `push`: write the link, CAS the head (Release). `push_chain`: the same for a list linked
//! beforehand by the pushing thread (its last node's link written in the CAS loop).
//! `take`: swap the head with 0 (Acquire) and walk the detached list.
//! Only one thread takes at a time (the owner, or the mcentral lock holder), and nodes are
//! never popped one by one, so there is no ABA problem.
//!
//! # Invariants
//! - stack: every node was pushed once and is taken once.

// The atomics come from the parent module: `core`'s in the library, loom's in the loom test.
use core::ptr::{self, NonNull};

use super::remote_atomics::{AtomicPtr, Ordering};

/// A lock-free stack of freed objects (see the module docs).
pub struct RemoteStack {
    head: AtomicPtr<u8>,
}

impl RemoteStack {
    /// A stack with head `head` (pass an atomic holding null for an empty stack).
    pub const fn from_atomic(head: AtomicPtr<u8>) -> Self {
        RemoteStack { head }
    }

    /// Pushes `obj`.
    ///
    /// # Safety
    /// `obj` is valid for writes of 8 bytes, 8-aligned, and nobody else uses its first 8
    /// bytes until it is taken.
    #[inline]
    pub unsafe fn push(&self, obj: NonNull<u8>) {
        // SAFETY: a list of one node, `obj`, which the caller gives to the stack: valid for
        // writes, aligned, used by nobody else.
        unsafe { self.push_chain(obj, obj) }
    }

    /// Pushes the list from `first` to `last`, linked through the nodes' first words (each
    /// node's link names the next; `last`'s is overwritten), with one CAS: a thread's
    /// held-back remote frees of one span (`RemoteChain` in mcache.rs).
    ///
    /// # Safety
    /// Every node of the list is valid for writes of 8 bytes, 8-aligned, used by nobody else
    /// until it is taken, and not on any stack; following the links from `first` reaches
    /// `last`, each node once.
    #[inline]
    pub unsafe fn push_chain(&self, first: NonNull<u8>, last: NonNull<u8>) {
        let mut old = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller gives the nodes' first words to the stack; `last` is one.
            unsafe { last.cast::<*mut u8>().write(old) };
            // Release: the links of the whole list, written by this thread before, are seen
            // by the taker's Acquire swap.
            match self.head.compare_exchange_weak(old, first.as_ptr(), Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => old = now,
            }
        }
    }

    /// Detaches the whole stack (null if empty); walk it with [`RemoteStack::next`].
    #[inline]
    pub fn take(&self) -> *mut u8 {
        if self.head.load(Ordering::Relaxed).is_null() {
            return ptr::null_mut();
        }
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }

    /// Empties the stack's head for a record that is reused (the stack is empty then: a
    /// freed span has none waiting).
    #[inline]
    pub fn reset(&self) {
        self.head.store(ptr::null_mut(), Ordering::Relaxed);
    }

    /// Whether the stack looks empty (a hint, Relaxed).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// The head without detaching (for the checker, with no other thread running).
    pub fn peek(&self) -> *mut u8 {
        self.head.load(Ordering::Acquire)
    }

    /// The node after `p` in a detached list (null at the end).
    ///
    /// # Safety
    /// `p` is a node of a list returned by `take` (or `peek` with no concurrent push).
    #[inline]
    pub unsafe fn next(p: NonNull<u8>) -> *mut u8 {
        // SAFETY: a node holds its link in its first word, written by `push` (through the
        // same pointer, so with its provenance) before the Release CAS that the caller's
        // Acquire `take` (or `peek`) synchronises with; the node stays the taker's.
        unsafe { p.cast::<*mut u8>().read() }
    }
}
