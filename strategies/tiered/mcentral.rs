//! Central lists: one per span class, the spans no thread cache owns.
//!
//! Go original: `mcentral` in `runtime/mcentral.go` (`cacheSpan`, `uncacheSpan`, `grow`).
//! Go keeps lock-free span sets swept by the GC; here each mcentral is a short spin lock over
//! two intrusive lists (explicit free needs no sweep generations), and the lock is held only
//! for a few pointer moves.
//!
//! # Glossary
//! - *partial*: spans with at least one free object (Go's `partial` span set).
//! - *full*: spans with every object handed out (Go's `full` span set).
//! - *spare*: at most one empty span kept back from the heap, so that a class whose last
//!   span empties and refills at once does not go through the heap lock and the page
//!   allocator each time (Go's per-P page cache plays a similar role one level down).
//!   `trim` gives spares back.
//! - *unowned span*: a span on one of these lists (`owner == null`). Its bits belong to whoever
//!   holds this mcentral's lock.
//!
//! # cacheSpan (refill of an mcache)
//! 1. Lock; drain the pending frees; uncache the span the mcache gives back, if any; pop
//!    partial spans (at most [`TAKE_LOOK_SPANS`]), collecting each one's remote frees, until
//!    one is worth a refill (`Span::refill_min` free objects: the mcache's policy, see
//!    mcache.rs); those that are not go back to the tail. Set its owner to the mcache,
//!    rewind its scan to object 0. Unlock.
//! 2. None worth it: the spare, if any. Else `grow`, i.e. ask the heap for `class_pages`
//!    pages and make a fresh span owned by the mcache (outside this lock). If the heap
//!    cannot grow, any partial span with a free object.
//!
//! # uncacheSpan (the mcache lets a span go)
//! Lock; drop the span's alloc cache (its claimed objects go back to the bitmap); clear the
//! owner; collect remote frees; then an empty span becomes the spare or goes back to the
//! heap (after unlocking), a full one on `full`, any other on `partial`.
//!
//! # Free into an unowned span (`free_unowned`, `drain`)
//! One CAS: the object goes on this mcentral's *pending* stack, no lock. Whoever next holds
//! the lock for cacheSpan, sweep or the background step drains it: a span that got an owner
//! meanwhile gets the object on its remote stack; an unowned one has the object's bit
//! cleared; a full span becomes partial; an empty span leaves its list and becomes the spare
//! or goes back to the heap, as Go's sweeper frees a span whose objects are all dead. So the
//! frees of many threads into one class never wait for each other, and cacheSpan sees them
//! before it chooses a span.
//!
//! # A free that races with uncacheSpan
//! A thread that saw an owner pushes on `remote`; if the owner lets the span go after that
//! push, uncacheSpan collects it; if just before, the object waits on `remote` of an unowned
//! span and is collected by cacheSpan or by `sweep` (a few spans per call on the heap's slow
//! paths, every span on `trim`).
//!
//! # Invariants (checked by `Tiered::check`)
//! - every span on `partial` or `full` has `owner == null`, this span class, and
//!   `list` naming the list; `len` of each list is its length;
//! - on `full`: `alloc_count == nelems`; on `partial`: `0 < alloc_count` (an empty unowned
//!   span is the spare or goes back to the heap) and `alloc_count - remote_len < nelems`;
//! - the spare: `owner == null`, `alloc_count == 0`, `list == Spare`;
//! - every pending object lies in a span of this class, with its bit set.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use super::arena::{Index, span_of};
use super::remote::RemoteStack;

use super::mcache::MCache;
use super::mheap::MHeap;
use super::sizeclass::{class_of_span_class, class_pages, class_span_align_pages};
use super::span::{Span, SpanList};
use crate::source::PageSource;
use crate::sync::SpinLock;

/// Partial spans cacheSpan looks at for one worth a refill before it takes the spare or
/// grows.
const TAKE_LOOK_SPANS: usize = 4;

/// An intrusive doubly-linked list of spans.
pub struct List {
    /// First span, or null.
    pub head: *const Span,
    /// Last span, or null.
    pub tail: *const Span,
    /// Number of spans.
    pub len: usize,
}

impl List {
    const EMPTY: List = List { head: ptr::null(), tail: ptr::null(), len: 0 };

    /// Appends `s` at the tail: spans wait in FIFO order, so the one cacheSpan takes (the
    /// head) has had the longest time to collect frees.
    fn push(&mut self, s: &Span, which: SpanList) {
        s.next.set(ptr::null());
        s.prev.set(self.tail);
        if self.tail.is_null() {
            self.head = s;
        } else {
            // SAFETY: list members are live spans, reached under the mcentral lock.
            unsafe { (*self.tail).next.set(s) };
        }
        self.tail = s;
        s.list.set(which);
        self.len += 1;
    }

    fn remove(&mut self, s: &Span) {
        let (p, n) = (s.prev.get(), s.next.get());
        if p.is_null() {
            self.head = n;
        } else {
            // SAFETY: list members are live spans, reached under the mcentral lock.
            unsafe { (*p).next.set(n) };
        }
        if n.is_null() {
            self.tail = p;
        } else {
            // SAFETY: `n`, the member after `s`, is a live span, reached under the mcentral
            // lock.
            unsafe { (*n).prev.set(p) };
        }
        s.list.set(SpanList::None);
        self.len -= 1;
    }

    fn pop(&mut self) -> Option<&'static Span> {
        // SAFETY: list members are live spans; the `'static` stands for "as long as the heap",
        // and the caller holds the lock while it uses the span's list fields.
        let s = unsafe { self.head.as_ref() }?;
        self.remove(s);
        Some(s)
    }

    /// Iterates the spans (under the lock).
    pub fn iter(&self) -> impl Iterator<Item = &Span> {
        let mut p = self.head;
        core::iter::from_fn(move || {
            // SAFETY: list members are live spans; the caller holds the lock.
            let s = unsafe { p.as_ref() }?;
            p = s.next.get();
            Some(s)
        })
    }
}

/// The two lists of one span class.
pub struct Lists {
    /// Spans with free objects.
    pub partial: List,
    /// Spans with none.
    pub full: List,
    /// One empty span kept back from the heap, or null.
    pub spare: *const Span,
}

// SAFETY: `Lists` is `!Send` only for its raw span pointers. The spans live in heap metadata,
// tied to no thread, and the lists sit in their mcentral's `SpinLock` and are only reached
// through it, so moving them to another thread (what a lock holder there does) leaves
// nothing that the previous holder still uses.
unsafe impl Send for Lists {}

impl Lists {
    fn list(&mut self, which: SpanList) -> &mut List {
        match which {
            SpanList::Full => &mut self.full,
            _ => &mut self.partial,
        }
    }

    /// Keeps an empty unowned span as the spare if there is none; else returns it (for the
    /// heap).
    fn keep_spare(&mut self, s: &Span) -> bool {
        if self.spare.is_null() {
            s.list.set(SpanList::Spare);
            self.spare = s;
            return true;
        }
        false
    }

    /// Puts an unowned span on the list its counts call for.
    fn file(&mut self, s: &Span) {
        if s.is_full() { self.full.push(s, SpanList::Full) } else { self.partial.push(s, SpanList::Partial) }
    }
}

/// One central list per span class (Go's `mcentral`).
pub struct MCentral {
    /// The lists, under a spin lock.
    pub lock: SpinLock<Lists>,
    /// Frees into unowned spans, waiting to be drained (lock-free, see `free_unowned`).
    pub pending: RemoteStack,
}

impl MCentral {
    /// Empty.
    pub const fn new() -> MCentral {
        MCentral {
            lock: SpinLock::new(Lists { partial: List::EMPTY, full: List::EMPTY, spare: ptr::null() }),
            pending: RemoteStack::from_atomic(AtomicPtr::new(ptr::null_mut())),
        }
    }

    // ANCHOR: cache_span
    /// Go's `cacheSpan`: a span with a free object, now owned by `cache`; `old`, the span
    /// the cache lets go (if any), is uncached under the same lock hold. `None` when the
    /// heap cannot grow.
    pub fn cache_span<P: PageSource>(
        &self,
        heap: &MHeap,
        src: &P,
        spc: usize,
        cache: *mut MCache,
        old: Option<&Span>,
        index: Index,
    ) -> Option<&'static Span> {
        let (got, empty) = {
            let mut l = self.lock.lock();
            Self::drain(&mut l, &self.pending, heap, index);
            let empty = old.and_then(|s| Self::file_uncached(&mut l, s));
            (Self::take(&mut l, cache), empty)
        };
        if let Some(s) = empty {
            // SAFETY: no live objects, on no list, no owner; neither this function nor its
            // caller (the refill that gave `old` back, or the cache letting `s` go) reads the
            // span after this. Their `&Span`s stay live, which the record's reuse allows
            // ("Reuse of span records" in span.rs).
            unsafe { heap.lock.lock().free_span(NonNull::from(s)) };
        }
        match got {
            Some(s) => Some(s),
            None => self.grow(heap, src, spc, cache).or_else(|| self.take_any(cache)),
        }
    }

    /// A partial span worth a refill (at least [`Span::refill_min`] free objects, looking
    /// at the first [`TAKE_LOOK_SPANS`]; those passed over go to the tail), else the spare,
    /// for `cache`, under the lock.
    fn take(l: &mut Lists, cache: *mut MCache) -> Option<&'static Span> {
        for _ in 0..TAKE_LOOK_SPANS.min(l.partial.len) {
            let s = l.partial.pop()?;
            s.collect_remote();
            if !s.worth_refill() {
                l.file(s);
                continue;
            }
            return Some(Self::own(s, cache));
        }
        // SAFETY: the spare is a live span, kept under this lock.
        let s = unsafe { l.spare.as_ref() }?;
        l.spare = ptr::null();
        s.list.set(SpanList::None);
        Some(Self::own(s, cache))
    }

    /// The heap cannot grow: any partial span, even one with few free objects.
    #[cold]
    fn take_any(&self, cache: *mut MCache) -> Option<&'static Span> {
        let mut l = self.lock.lock();
        while let Some(s) = l.partial.pop() {
            s.collect_remote();
            if s.is_full() {
                // Cannot happen by the list invariant; keep the lists right regardless.
                l.full.push(s, SpanList::Full);
                continue;
            }
            return Some(Self::own(s, cache));
        }
        None
    }

    /// `s`, off every list, becomes `cache`'s, its scan rewound.
    fn own(s: &'static Span, cache: *mut MCache) -> &'static Span {
        s.owner.store(cache, Ordering::Relaxed);
        s.rewind();
        s
    }

    /// uncacheSpan's work under the lock: the span loses its owner and goes on a list or
    /// becomes the spare; returns it if it is empty and must go back to the heap.
    fn file_uncached<'s>(l: &mut Lists, s: &'s Span) -> Option<&'s Span> {
        s.drop_alloc_cache();
        s.owner.store(ptr::null_mut(), Ordering::Relaxed);
        s.collect_remote();
        if s.alloc_count.get() != 0 {
            l.file(s);
            return None;
        }
        (!l.keep_spare(s)).then_some(s)
    }
    // ANCHOR_END: cache_span

    // ANCHOR: central_grow
    /// Go's `mcentral.grow`: a fresh span from the heap, owned by `cache`.
    #[cold]
    fn grow<P: PageSource>(
        &self,
        heap: &MHeap,
        src: &P,
        spc: usize,
        cache: *mut MCache,
    ) -> Option<&'static Span> {
        let class = class_of_span_class(spc);
        let s = heap.lock.lock().alloc_span(src, class_pages(class), class_span_align_pages(class), spc)?;
        // SAFETY: a fresh span, which lives until it is given back to the heap.
        let s: &'static Span = unsafe { s.as_ref() };
        s.owner.store(cache, Ordering::Relaxed);
        Some(s)
    }
    // ANCHOR_END: central_grow

    // ANCHOR: uncache_span
    /// Go's `uncacheSpan`: the owning mcache lets `s` go.
    pub fn uncache_span(&self, heap: &MHeap, s: &Span) {
        let empty = Self::file_uncached(&mut self.lock.lock(), s);
        if let Some(s) = empty {
            // SAFETY: no live objects, on no list, no owner; neither this function nor its
            // caller (the refill that gave `old` back, or the cache letting `s` go) reads the
            // span after this. Their `&Span`s stay live, which the record's reuse allows
            // ("Reuse of span records" in span.rs).
            unsafe { heap.lock.lock().free_span(NonNull::from(s)) };
        }
    }
    // ANCHOR_END: uncache_span

    // ANCHOR: free_unowned
    /// A free into a span that had no owner when the freeing thread looked: one CAS on this
    /// mcentral's pending stack, no lock. The object is freed into its span by the next
    /// `drain` (cacheSpan, the background step, sweep).
    #[inline]
    pub fn free_unowned(&self, p: NonNull<u8>) {
        // SAFETY: the callers pass a freed object of a span of this class (at least 8 bytes,
        // 8-aligned) with a pointer valid for it; nobody uses it until it is drained.
        unsafe { self.pending.push(p) }
    }

    /// Frees every pending object into its span, under the lock: a span that got an owner
    /// since gets the object on its remote stack; an unowned one has its bit cleared, and
    /// moves from full to partial, or leaves its list when empty (to become the spare or go
    /// back to the heap; the heap lock is taken inside this lock, the only nesting of locks).
    fn drain(l: &mut Lists, pending: &RemoteStack, heap: &MHeap, index: Index) {
        let mut next = pending.take();
        while let Some(p) = NonNull::new(next) {
            // SAFETY: `p` is a node of the list just taken.
            next = unsafe { RemoteStack::next(p) };
            // SAFETY: `p` is an object of this heap, still counted in its span (its bit is
            // set until this drain clears it), so the span is live, its arena registered and
            // its index entry Ready.
            let s = unsafe { &*span_of(index, p.as_ptr().addr()) };
            if !s.owner.load(Ordering::Relaxed).is_null() {
                s.push_remote(p);
            } else {
                let was = s.list.get();
                s.collect_one(s.object_index(p.as_ptr().addr()));
                if s.alloc_count.get() == 0 {
                    l.list(was).remove(s);
                    if !l.keep_spare(s) {
                        // SAFETY: no live objects; off every list; no owner; the loop goes on
                        // to the next node and never reads `s` again.
                        unsafe { heap.lock.lock().free_span(NonNull::from(s)) };
                    }
                } else if was == SpanList::Full {
                    l.full.remove(s);
                    l.partial.push(s, SpanList::Partial);
                }
            }
        }
    }

    /// Drains the pending frees (see `drain`) if there are any.
    pub fn drain_pending(&self, heap: &MHeap, index: Index) {
        if !self.pending.is_empty() {
            Self::drain(&mut self.lock.lock(), &self.pending, heap, index);
        }
    }
    // ANCHOR_END: free_unowned

    /// Gives the spare back to the heap (trim); returns whether there was one.
    pub fn release_spare(&self, heap: &MHeap) -> bool {
        let s = core::mem::replace(&mut self.lock.lock().spare, ptr::null());
        let Some(s) = NonNull::new(s.cast_mut()) else { return false };
        // SAFETY: the spare is empty, unowned, on no list any more.
        unsafe { heap.lock.lock().free_span(s) };
        true
    }

    /// Collects remote frees that wait on unowned spans (see "A free that races with
    /// uncacheSpan"), looking at up to `max` spans; gives empty spans back to the heap.
    /// Returns the spans given back.
    pub fn sweep(&self, heap: &MHeap, index: Index, max: usize) -> usize {
        let mut freed = [ptr::null::<Span>(); 16];
        let mut nfreed = 0;
        {
            let mut l = self.lock.lock();
            Self::drain(&mut l, &self.pending, heap, index);
            let mut seen = 0;
            for which in [SpanList::Full, SpanList::Partial] {
                let mut p = l.list(which).head;
                while !p.is_null() && seen < max && nfreed < freed.len() {
                    // SAFETY: list members are live spans; we hold the lock.
                    let s = unsafe { &*p };
                    p = s.next.get();
                    seen += 1;
                    if s.remote.is_empty() || s.collect_remote() == 0 {
                        continue;
                    }
                    l.list(which).remove(s);
                    if s.alloc_count.get() == 0 {
                        if !l.keep_spare(s) {
                            freed[nfreed] = s;
                            nfreed += 1;
                        }
                    } else {
                        l.file(s);
                    }
                }
            }
        }
        if nfreed > 0 {
            let mut h = heap.lock.lock();
            for &s in &freed[..nfreed] {
                // SAFETY: each span is empty, off every list, and unowned.
                unsafe { h.free_span(NonNull::new_unchecked(s.cast_mut())) };
            }
        }
        nfreed
    }
}
