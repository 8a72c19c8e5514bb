//! One span outside any heap, for the book's step-through pictures of a span
//! (`book/book-examples/reports/span_frames.rs`): the real `Span` record, made by
//! `Span::init` over memory the caller lends, driven one call at a time through the real
//! methods the thread cache uses (`Span::next_free_fast`, `Span::refill_current`,
//! `Span::take_live` + `Span::free_local`, `Span::claim_remote` +
//! `Span::push_remote`), and read back field by field (`SpanLab::state`).
//!
//! Not part of the allocator: `Tiered` never uses it, and it adds no code to any path the
//! allocator runs. Hidden from the docs; its interface may change with the book.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::sizeclass::{self, CLASS_COUNT, PAGE_BYTES};
use super::span::{BITMAP_WORDS, Span};

/// Words of a span's bitmaps (64 objects each).
pub const WORDS: usize = BITMAP_WORDS;

/// A span of one size class over borrowed memory, held by the calling thread as its owner.
pub struct SpanLab<'m> {
    /// The span record (in a heap it lives in metadata from the page source).
    span: Span,
    /// The span's pages, borrowed for the lab's life.
    _pages: PhantomData<&'m mut [u64]>,
    /// Not `Sync`: the span's owner-only fields are `Cell`s, which one thread at a time may
    /// touch (the lab's thread is the span's owner). `Span` itself is `Sync` for the heap's
    /// protocol, which the lab does not follow.
    _one_thread: PhantomData<core::cell::Cell<()>>,
}

/// A span's state, read from its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanState {
    /// Size class.
    pub class: usize,
    /// Object size in bytes.
    pub elem_bytes: usize,
    /// Objects in the span.
    pub nelems: usize,
    /// `allocBits`: 1 = handed out, claimed by the alloc cache, freed remotely and not yet
    /// collected, or padding past `nelems`.
    pub alloc_bits: [u64; WORDS],
    /// Live bits: 1 = handed out to the program and not freed.
    pub live: [u64; WORDS],
    /// Remote bits: 1 = freed by another thread, waiting on the remote stack.
    pub remote: [u64; WORDS],
    /// `allocCache`: bit `k` set = object `freeindex + k` is claimed and free to hand out.
    pub alloc_cache: u64,
    /// `freeindex`: the next object the scan looks at.
    pub freeindex: usize,
    /// `allocCount`: objects whose alloc bit is set, padding excluded.
    pub alloc_count: usize,
    /// Free objects that make the span worth a refill (`Span::refill_min`).
    pub refill_min: usize,
    /// Objects on the remote stack.
    pub remote_len: usize,
}

impl SpanState {
    /// Bit `i` of a bitmap.
    pub fn bit(map: &[u64; WORDS], i: usize) -> bool {
        map[i / 64] >> (i % 64) & 1 == 1
    }
}

impl<'m> SpanLab<'m> {
    /// A fresh span of size class `class` (1 to 67) over `pages`, which must hold the
    /// class's span (`class_pages(class)` runtime pages of 8 KiB); `None` otherwise.
    pub fn new(pages: &'m mut [u64], class: usize) -> Option<SpanLab<'m>> {
        if class == 0 || class >= CLASS_COUNT {
            return None;
        }
        let npages = sizeclass::class_pages(class);
        if core::mem::size_of_val(pages) < npages * PAGE_BYTES {
            return None;
        }
        let base = NonNull::new(pages.as_mut_ptr().cast::<u8>())?;
        let span = Span::empty();
        span.init(base, npages, sizeclass::span_class(class), true);
        Some(SpanLab { span, _pages: PhantomData, _one_thread: PhantomData })
    }

    /// The object at address `p` of this span.
    fn index(&self, p: NonNull<u8>) -> usize {
        self.span.object_index(p.as_ptr().addr())
    }

    /// The object's address (8-aligned: every class size is a multiple of 8).
    fn object(&self, i: usize) -> NonNull<u8> {
        // SAFETY: the span is live and this lab holds it; callers pass `i < nelems`, so the
        // offset stays inside the borrowed pages, whose provenance `base` carries.
        unsafe { self.span.base.get_live().add(i * self.span.elem_bytes.get()) }
    }

    /// The allocation fast path, `Span::next_free_fast`: the object it hands out, or `None`
    /// when the alloc cache is empty.
    pub fn alloc_fast(&self) -> Option<usize> {
        self.span.next_free_fast().map(|p| self.index(p))
    }

    /// What the thread cache does when the fast path finds the cache empty, as far as the
    /// current span goes (`Span::refill_current`, which `MCache::refill` calls): the next
    /// bitmap word with a free object; at the end of the scan, collect the remote frees and
    /// rewind if the span is worth it. `None`: the cache would switch to another span.
    pub fn refill(&self) -> Option<usize> {
        self.span.refill_current().map(|p| self.index(p))
    }

    /// The owner frees object `i` straight into the span (`take_live`, then `free_local`:
    /// what `Tiered`'s free does when the class's free stack is full). False, nothing
    /// changed, if the object is not live or `i` is past the span.
    pub fn free_local(&self, i: usize) -> bool {
        if i >= self.span.nelems.get() as usize || !self.span.take_live(i) {
            return false;
        }
        self.span.free_local(i);
        true
    }

    /// Another thread's free of object `i` (`claim_remote`, then `push_remote`). False,
    /// nothing changed, if the object is not live or `i` is past the span.
    pub fn free_remote(&self, i: usize) -> bool {
        if i >= self.span.nelems.get() as usize || !self.span.claim_remote(i) {
            return false;
        }
        self.span.push_remote(self.object(i));
        true
    }

    /// The span's state, field by field.
    pub fn state(&self) -> SpanState {
        let s = &self.span;
        SpanState {
            class: usize::from(s.class.get()),
            elem_bytes: s.elem_bytes.get(),
            nelems: s.nelems.get() as usize,
            alloc_bits: core::array::from_fn(|w| s.alloc_bits[w].get()),
            live: core::array::from_fn(|w| s.liveness[w].live.load(Ordering::Relaxed)),
            remote: core::array::from_fn(|w| s.liveness[w].remote.load(Ordering::Relaxed)),
            alloc_cache: s.alloc_cache.get(),
            freeindex: s.freeindex.get() as usize,
            alloc_count: s.alloc_count.get() as usize,
            refill_min: s.refill_min() as usize,
            remote_len: s.remote_len(),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// The lab's calls change the real record as the heap's would: a fresh word is claimed
    /// whole, the fast path takes `freeindex + ctz(allocCache)`, a free below `freeindex`
    /// waits for the rewind, and a remote free keeps its bit until collected.
    #[test]
    fn lab_drives_the_real_span() {
        let mut pages = std::vec![0u64; PAGE_BYTES / 8];
        assert!(SpanLab::new(&mut pages, 0).is_none(), "class 0 is large");
        let lab = SpanLab::new(&mut pages, 9).expect("class 9 fits one page");
        let s = lab.state();
        assert_eq!((s.nelems, s.elem_bytes, s.alloc_count, s.alloc_cache), (73, 112, 0, 0));
        assert_eq!(lab.alloc_fast(), None, "a fresh span's cache is empty");
        assert_eq!(lab.refill(), Some(0));
        assert_eq!(lab.state().alloc_count, 64, "the first word is claimed whole");
        assert_eq!(lab.alloc_fast(), Some(1));
        assert!(lab.free_local(0));
        assert!(!lab.free_local(0), "a second free is refused");
        assert!(lab.free_remote(1));
        assert!(!lab.free_remote(1), "a second remote free is refused");
        let s = lab.state();
        assert!(!SpanState::bit(&s.alloc_bits, 0) && SpanState::bit(&s.alloc_bits, 1));
        assert_eq!(s.remote_len, 1);
        assert_eq!(lab.alloc_fast(), Some(2), "object 0 waits below freeindex");
        assert!(!lab.free_local(100), "past the span");
    }
}
