//! The walker behind `Tiered::check`: every invariant written in the other files, checked
//! over every structure of a heap. Slow; for tests, with no other thread using the heap.

use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use super::arena::{self, ARENA_BYTES, ARENA_PAGES, Arena, HEAD_GROUP_SLOTS, index_entry, index_of, span_of};
use super::freestack::stack_room;
use super::mcache::REMOTE_CHAIN_MAX;
use super::mheap::{HeapInner, MAX_ARENAS};
use super::remote::RemoteStack;
use super::scavenger::HOLD_STEPS;
use super::sizeclass;
use super::span::{BITMAP_WORDS, Span, SpanList};
use super::{EMPTY_SPAN, MCache, PAGE_BYTES, Root, SPAN_CLASS_COUNT};
use crate::strategy::CheckError;

fn fail(what: &'static str, addr: usize, detail: usize) -> Result<(), CheckError> {
    Err(CheckError { what, addr, detail })
}

/// What `ensure!` reports as an address or a detail: an integer, or a pointer's address.
trait Report {
    fn report(self) -> usize;
}

macro_rules! report_int {
    ($($t:ty),*) => {$(
        impl Report for $t {
            fn report(self) -> usize {
                self as usize
            }
        }
    )*};
}
report_int!(usize, u32, u8, i32);

impl<T> Report for *const T {
    fn report(self) -> usize {
        self.addr()
    }
}

impl<T> Report for *mut T {
    fn report(self) -> usize {
        self.addr()
    }
}

impl<T> Report for NonNull<T> {
    fn report(self) -> usize {
        self.as_ptr().addr()
    }
}

macro_rules! ensure {
    ($cond:expr, $what:expr, $addr:expr, $detail:expr) => {
        if !$cond {
            return fail($what, Report::report($addr), Report::report($detail));
        }
    };
}

/// Checks the whole heap.
pub fn check(root: &Root) -> Result<(), CheckError> {
    let h = root.heap.lock.lock();
    check_pages(root, &h)?;
    check_free_arena_records(&h)?;
    for spc in 0..SPAN_CLASS_COUNT {
        check_central(root, spc)?;
    }
    check_caches(&h)
}

/// The free list of arena records (see "Reuse of arena records" in arena.rs): every record
/// on it retired (no base, no usable pages, an all-null span map), none registered, and no
/// more records in all than arenas a heap can hold (a record is made only when the list is
/// empty, so there are never more than arenas registered at once).
fn check_free_arena_records(h: &HeapInner) -> Result<(), CheckError> {
    let mut n = 0usize;
    let mut rec = h.free_arena_recs;
    while !rec.is_null() {
        ensure!(h.narenas + n < MAX_ARENAS, "more arena records than arenas", rec.addr(), n);
        // SAFETY: the free list (heap lock held, `h`) holds retired records of this heap,
        // initialised and mapped while it lives; a shared reference only.
        let a = unsafe { &*rec };
        ensure!(a.base_addr() == 0 && a.usable_pages() == 0, "free arena record not retired", rec.addr(), n);
        ensure!(
            !h.arenas[..h.narenas].iter().any(|&r| ptr::eq(r, rec)),
            "free arena record registered",
            rec.addr(),
            n
        );
        let mapped = (0..ARENA_PAGES).find(|&p| !a.span_at(p).is_null());
        ensure!(mapped.is_none(), "free arena record maps a span", rec.addr(), mapped.unwrap_or(0));
        check_heads(a)?;
        n += 1;
        rec = a.next_free.load(Ordering::Relaxed);
    }
    Ok(())
}

/// Whether registered arena `i` of `h` is dedicated.
fn arena_dedicated(h: &HeapInner, i: usize) -> bool {
    // SAFETY: `i < narenas` (callers): a registered arena, initialised, live as long as the
    // heap; a shared reference only.
    unsafe { (*h.arenas[i]).dedicated() }
}

/// Arena index and list, page bitmaps vs summaries vs the span map, every span.
fn check_pages(root: &Root, h: &HeapInner) -> Result<(), CheckError> {
    let (mut inuse, mut free_ready) = (0usize, 0usize);
    let mut prev_base = 0usize;
    let mut prev_usable = ARENA_PAGES;
    for i in 0..h.narenas {
        // SAFETY: registered arenas are initialised and live as long as the heap; shared
        // references only (see "Sharing" in arena.rs).
        let a = unsafe { &*h.arenas[i] };
        // SAFETY: the caller holds the heap lock (`h`), for as long as `pages` is used.
        let pages = unsafe { a.pages() };
        let base = a.base_addr();
        ensure!(i == 0 || base > prev_base, "arena list not sorted by address", base, i);
        // An arena joins only the one right below it, registered (same reservation).
        ensure!(
            !a.joins_prev() || (i > 0 && prev_base + ARENA_BYTES == base && prev_usable == ARENA_PAGES),
            "arena joins a previous arena that is not its neighbour",
            base,
            i
        );
        prev_base = base;
        prev_usable = a.usable_pages();
        // SAFETY: `root.index` is the heap's L1 table; its L2 tables live as long as it.
        let entry = unsafe { index_entry(root.index, index_of(base)) }
            .map_or(ptr::null_mut(), |e| e.load(Ordering::Relaxed));
        ensure!(ptr::eq(entry, a), "arena index entry does not name its arena", base, i);
        let (chunks, sum) = pages.recomputed();
        ensure!(chunks == pages.chunk_sum, "chunk summaries differ from the bitmap", base, 0usize);
        ensure!(sum == pages.sum, "arena summary differs from its chunks", base, sum.max);
        ensure!(a.usable_pages() <= ARENA_PAGES, "arena larger than an arena", base, a.usable_pages());
        ensure!(
            a.usable_pages() == ARENA_PAGES || !a.joins_prev(),
            "partial arena joins another",
            base,
            a.usable_pages()
        );
        // An arena of one reservation is dedicated (over-aligned) iff its first one is.
        ensure!(
            !a.joins_prev() || i == 0 || arena_dedicated(h, i - 1) == a.dedicated(),
            "dedicated and shared arenas in one reservation",
            base,
            i
        );
        // An arena without a span is one the background step may give back: the hint that
        // sends it to look is set (see `MHeap::release_empty_arenas`).
        ensure!(
            (pages.sum.start as usize) < a.usable_pages() || h.empty_arena_hint,
            "arena without a span but the empty-arena hint clear",
            base,
            i
        );
        for p in 0..ARENA_PAGES {
            let addr = base + p * PAGE_BYTES;
            let used = pages.is_used(p);
            let sp = a.span_at(p);
            if p >= a.usable_pages() {
                // A partial arena's tail (see arena.rs): not reserved, in use for good.
                ensure!(used && sp.is_null(), "partial arena's tail free or in a span", addr, 0usize);
                continue;
            }
            let fl = h.scav_inflight;
            if fl.addr() <= addr && addr < fl.addr() + fl.npages * PAGE_BYTES {
                // The scavenger's in-flight run: taken out of the page allocator, no span.
                ensure!(used && sp.is_null(), "in-flight scavenger run not marked in use", addr, 0usize);
                ensure!(!pages.is_scav(p), "in-flight scavenger run already scavenged", addr, 0usize);
                continue;
            }
            if ptr::eq(h.pcache.arena, a) && p / 64 == h.pcache.word && h.pcache.free >> (p % 64) & 1 == 1 {
                // A free page of the page cache (see "Page cache" in mheap.rs): marked in use,
                // no span, Ready, counted in `inuse_pages`.
                ensure!(used && sp.is_null(), "page cache's free page not in use or in a span", addr, 0usize);
                ensure!(!pages.is_scav(p), "page cache's free page scavenged", addr, 0usize);
                inuse += 1;
                continue;
            }
            ensure!(used != sp.is_null(), "page bitmap and span map disagree", addr, used as usize);
            if used {
                ensure!(!pages.is_scav(p), "an in-use page is scavenged", addr, 0usize);
                inuse += 1;
            } else if !pages.is_scav(p) {
                free_ready += 1;
            }
            if sp.is_null() {
                continue;
            }
            // SAFETY: the span map points at live spans.
            let s = unsafe { &*sp };
            ensure!(
                s.base_addr() <= addr && addr < s.end(),
                "span map points at a span not covering the page",
                addr,
                s.base.get()
            );
            if s.base_addr() == addr {
                check_span(s)?;
            }
            // A span may run on into this arena only from the same reservation (see
            // "Reservations" in pagealloc.rs): its pointers derive from where it starts.
            ensure!(
                p != 0 || s.base_addr() == addr || a.joins_prev(),
                "span crosses from one reservation into another",
                addr,
                s.base.get()
            );
        }
    }
    for i in 0..h.narenas {
        // SAFETY: as above.
        check_heads(unsafe { &*h.arenas[i] })?;
    }
    // The page cache: a registered arena's block, or empty.
    let c = h.pcache;
    ensure!(
        c.arena.is_null() && c.free == 0
            || h.arenas[..h.narenas].iter().any(|&a| ptr::eq(a, c.arena))
                && c.word < ARENA_PAGES / 64
                && (c.free == 0
                    || (64 - c.free.leading_zeros() as usize) + c.word * 64 <= {
                        // SAFETY: a registered arena of this heap.
                        unsafe { &*c.arena }.usable_pages()
                    }),
        "page cache outside a registered arena's usable pages",
        c.word,
        c.free as usize
    );
    ensure!(inuse == h.inuse_pages, "inuse_pages differs from the bitmaps", 0, inuse);
    ensure!(free_ready == h.free_ready_pages, "free_ready_pages differs from the bitmaps", 0, free_ready);
    // The scavenger's hold (scavenger.rs): the held peak is never below the pages in use.
    ensure!(h.inuse_pages <= h.hold_peak_pages, "held peak below the pages in use", 0, h.hold_peak_pages);
    ensure!(h.hold_steps_left <= HOLD_STEPS, "hold longer than HOLD_STEPS", 0, h.hold_steps_left);
    Ok(())
}

/// The head slots of arena record `a`, registered or retired (see "head slots" in
/// arena.rs): in a Ready group, slot `p` is the record of a live span iff the span map
/// names it at page `p`, and then the span is small and begins there; every other slot of
/// a Ready group has a null `owner` (what lets `find_mine` read any of them). A retired
/// record maps no span, so all its Ready slots have a null `owner`. Groups that are not
/// Ready are not touched (their pages are Prepared); no span map entry names one of their
/// slots.
fn check_heads(a: &Arena) -> Result<(), CheckError> {
    let heads = a.heads();
    let ready = a.heads_ready();
    ensure!(
        !heads.is_null() || ready == 0,
        "head slot groups Ready without slots",
        a.base_addr(),
        ready as usize
    );
    if heads.is_null() {
        return Ok(());
    }
    for p in 0..ARENA_PAGES {
        let slot = heads.wrapping_add(p);
        let sp = a.span_at(p);
        let addr = a.base_addr() + p * PAGE_BYTES;
        if ready >> (p / HEAD_GROUP_SLOTS) & 1 == 0 {
            ensure!(!ptr::eq(sp, slot), "span record in a head slot not Ready", addr, sp);
            continue;
        }
        if ptr::eq(sp, slot) {
            // SAFETY: the span map names live span records.
            let s = unsafe { &*sp };
            ensure!(
                s.base_addr() == addr,
                "head slot names a span that begins elsewhere",
                addr,
                s.base.get()
            );
            ensure!(s.class.get() != 0, "head slot holds a large span", addr, s.npages.get());
            continue;
        }
        // SAFETY: a Ready group's slots are initialised span records, kept while the heap
        // lives; a shared reference only.
        let owner = unsafe { &*slot }.owner.load(Ordering::Relaxed);
        ensure!(owner.is_null(), "head slot of no live span has an owner", addr, owner);
    }
    Ok(())
}

/// One span: bitmap vs counts, alloc cache, remote stack.
fn check_span(s: &Span) -> Result<(), CheckError> {
    ensure!(s.alloc_base.get() == s.base.get(), "alloc_base != base", s.base.get(), s.alloc_base.get());
    if s.class.get() == 0 {
        ensure!(
            s.nelems.get() == 1 && s.owner.load(Ordering::Relaxed).is_null(),
            "large span malformed",
            s.base.get(),
            s.nelems.get()
        );
        ensure!(s.is_live(0), "large span without its live object", s.base.get(), 0usize);
        return Ok(());
    }
    let align = sizeclass::class_span_align_pages(s.class.get() as usize) * PAGE_BYTES;
    ensure!(s.base_addr().is_multiple_of(align), "span not aligned as its class needs", s.base.get(), align);
    check_liveness(s)?;
    let ones: u32 = s.alloc_bits.iter().map(|w| w.get().count_ones()).sum();
    ensure!(
        ones - s.padding() == s.alloc_count.get(),
        "alloc_count != popcount(alloc_bits) - padding",
        s.base.get(),
        ones
    );
    ensure!(s.alloc_count.get() <= s.nelems.get(), "alloc_count > nelems", s.base.get(), s.alloc_count.get());
    ensure!(
        s.refill_count.get() == s.nelems.get() - s.refill_min(),
        "refill_count != nelems - refill_min",
        s.base.get(),
        s.refill_count.get()
    );
    ensure!(
        s.div_mul.get() == sizeclass::div_mul(s.class.get() as usize),
        "span div_mul is not its class's",
        s.base.get(),
        s.div_mul.get()
    );
    for i in s.nelems.get() as usize..BITMAP_WORDS * 64 {
        ensure!(s.bit(i), "padding bit clear", s.base.get(), i);
    }
    let (cache, fi) = (s.alloc_cache.get(), s.freeindex.get() as usize);
    for k in 0..64 {
        if cache >> k & 1 == 1 {
            let i = fi + k;
            ensure!(
                i < s.nelems.get() as usize && s.bit(i),
                "alloc cache holds an unclaimed object",
                s.base.get(),
                i
            );
            ensure!(i / 64 == fi / 64, "alloc cache spans two words", s.base.get(), i);
        }
    }
    let mut next = s.remote.peek();
    let mut n = 0u32;
    while let Some(q) = NonNull::new(next) {
        let p = q.as_ptr().addr();
        ensure!(p >= s.base_addr() && p < s.end(), "remote free outside its span", p, s.base.get());
        let i = s.object_index(p);
        ensure!(
            s.base_addr() + i * s.elem_bytes.get() == p && s.bit(i),
            "remote free not a marked object",
            p,
            i
        );
        ensure!(remote_bit(s, i), "remote free without its remote bit", p, i);
        n += 1;
        ensure!(n <= s.alloc_count.get(), "remote stack longer than alloc_count", s.base.get(), n);
        // SAFETY: remote entries are freed objects holding the next link; no thread pushes
        // while the checker runs.
        next = unsafe { RemoteStack::next(q) };
    }
    Ok(())
}

/// A span's live and remote bits (span.rs, "Liveness"): live ⊆ alloc bits, no live bit
/// past `nelems` or on an object of the alloc cache, remote ⊆ live.
fn check_liveness(s: &Span) -> Result<(), CheckError> {
    for w in 0..BITMAP_WORDS {
        let live = s.liveness[w].live.load(Ordering::Relaxed);
        let remote = s.liveness[w].remote.load(Ordering::Relaxed);
        ensure!(live & !s.alloc_bits[w].get() == 0, "live object with its alloc bit clear", s.base.get(), w);
        ensure!(remote & !live == 0, "remote-freed object not live", s.base.get(), w);
    }
    for i in s.nelems.get() as usize..BITMAP_WORDS * 64 {
        ensure!(!s.is_live(i), "live bit past nelems", s.base.get(), i);
    }
    let (cache, fi) = (s.alloc_cache.get(), s.freeindex.get() as usize);
    for k in 0..64 {
        if cache >> k & 1 == 1 {
            ensure!(!s.is_live(fi + k), "object both live and in the alloc cache", s.base.get(), fi + k);
        }
    }
    Ok(())
}

/// Whether object `i` of `s` has its remote bit set (a free waiting for the holder).
fn remote_bit(s: &Span, i: usize) -> bool {
    s.liveness[i / 64].remote.load(Ordering::Relaxed) >> (i % 64) & 1 == 1
}

/// mcentral lists vs span states.
fn check_central(root: &Root, spc: usize) -> Result<(), CheckError> {
    let l = root.central[spc].lock.lock();
    for (which, list) in [(SpanList::Partial, &l.partial), (SpanList::Full, &l.full)] {
        let mut n = 0;
        for s in list.iter() {
            n += 1;
            ensure!(
                s.owner.load(Ordering::Relaxed).is_null(),
                "span on a central list has an owner",
                s.base.get(),
                spc
            );
            ensure!(
                s.span_class.get() as usize == spc,
                "span on the wrong central",
                s.base.get(),
                s.span_class.get()
            );
            ensure!(s.list.get() == which, "span list tag wrong", s.base.get(), s.list.get() as u8);
            ensure!(s.alloc_count.get() > 0, "empty span kept on a central list", s.base.get(), spc);
            let remote = s.remote_len() as u32;
            if which == SpanList::Full {
                ensure!(s.is_full(), "span on full list has free objects", s.base.get(), s.alloc_count.get());
            } else {
                ensure!(
                    s.alloc_count.get() - remote < s.nelems.get(),
                    "span on partial list is full",
                    s.base.get(),
                    spc
                );
            }
        }
        ensure!(n == list.len, "central list length wrong", spc, n);
    }
    let mut next = root.central[spc].pending.peek();
    while let Some(q) = NonNull::new(next) {
        let p = q.as_ptr().addr();
        // SAFETY: the index is the root's; `span_of` checks the range, and pending objects
        // belong to live spans of registered arenas, whose index entries are Ready.
        let s = unsafe { span_of(root.index, p).as_ref() };
        let Some(s) = s else { return fail("pending free outside the heap", p, spc) };
        ensure!(
            s.span_class.get() as usize == spc,
            "pending free in a span of another class",
            p,
            s.span_class.get()
        );
        let i = s.object_index(p);
        ensure!(
            s.base_addr() + i * s.elem_bytes.get() == p && s.bit(i),
            "pending free not a marked object",
            p,
            i
        );
        ensure!(remote_bit(s, i), "pending free without its remote bit", p, i);
        // SAFETY: pending entries are freed objects holding the next link (no thread runs).
        next = unsafe { RemoteStack::next(q) };
    }
    // SAFETY: the spare is a live span.
    if let Some(s) = unsafe { l.spare.as_ref() } {
        ensure!(s.owner.load(Ordering::Relaxed).is_null(), "spare span has an owner", s.base.get(), spc);
        ensure!(
            s.span_class.get() as usize == spc,
            "spare span of another class",
            s.base.get(),
            s.span_class.get()
        );
        ensure!(
            s.list.get() == SpanList::Spare,
            "spare span list tag wrong",
            s.base.get(),
            s.list.get() as u8
        );
        ensure!(s.alloc_count.get() == 0 && s.remote.is_empty(), "spare span not empty", s.base.get(), spc);
    }
    Ok(())
}

/// Every cache in use owns its current spans.
fn check_caches(h: &HeapInner) -> Result<(), CheckError> {
    let mut c = h.all_caches;
    while !c.is_null() {
        // SAFETY: cache records live as long as the heap.
        let cache: &MCache = unsafe { &*c };
        let hint = cache.arena_hint.get();
        ensure!(
            hint.is_null() || is_arena_record(h, hint),
            "cache's arena hint is no arena record of this heap",
            c,
            hint.addr()
        );
        let last = cache.last_span.get();
        ensure!(
            ptr::eq(last, &EMPTY_SPAN) || is_span_record(h, last),
            "cache's last span is no span record of this heap",
            c,
            last.addr()
        );
        if cache.in_use.load(Ordering::Relaxed) {
            for spc in 0..SPAN_CLASS_COUNT {
                let sp = cache.alloc[spc].get();
                if ptr::eq(sp, &EMPTY_SPAN) {
                    continue;
                }
                // SAFETY: current spans are live.
                let s = unsafe { &*sp };
                ensure!(
                    ptr::eq(s.owner.load(Ordering::Relaxed), c),
                    "cached span not owned by its cache",
                    s.base.get(),
                    spc
                );
                ensure!(
                    s.span_class.get() as usize == spc,
                    "cached span of another class",
                    s.base.get(),
                    spc
                );
                ensure!(
                    s.list.get() == SpanList::None,
                    "cached span also on a central list",
                    s.base.get(),
                    spc
                );
            }
            for spc in 0..SPAN_CLASS_COUNT {
                check_owned(cache, c, spc)?;
            }
            check_free_stacks(cache, c)?;
            check_remote_chain(cache)?;
        } else {
            for spc in 0..SPAN_CLASS_COUNT {
                ensure!(
                    ptr::eq(cache.alloc[spc].get(), &EMPTY_SPAN),
                    "released cache still holds a span",
                    c,
                    spc
                );
                let l = &cache.owned[spc];
                ensure!(
                    l.head.get().is_null() && l.tail.get().is_null() && l.len.get() == 0,
                    "released cache still owns a span",
                    c,
                    spc
                );
            }
            for (class, st) in cache.free.iter().enumerate() {
                ensure!(st.len() == 0, "released cache still holds objects on a free stack", c, class);
            }
            ensure!(cache.remote_chain.span.get().is_null(), "released cache still holds remote frees", c, 0);
        }
        c = cache.next_all;
    }
    Ok(())
}

/// Whether `s` is a span record of this heap: a live span's (the span map of its base's
/// arena names it at its base page) or a freed one on the span records' free list.
fn is_span_record(h: &HeapInner, s: *const Span) -> bool {
    if h.spans.is_free(s.cast()) || is_head_slot(h, s) {
        return true;
    }
    // SAFETY: not a free record, so either a live span record (read with no other thread
    // using the heap) or, if the invariant is broken, a record of this heap's metadata all the
    // same (a cache's `last_span` is only ever set from a span map); its `base` is an atomic.
    let base = unsafe { &*s }.base_addr();
    h.arenas[..h.narenas]
        .iter()
        // SAFETY: registered arena records live as long as the heap.
        .map(|&a| unsafe { &*a })
        .any(|a| a.holds(base) && ptr::eq(a.span_at(arena::page_in_arena(base)), s))
}

/// Whether `s` is a head slot (see arena.rs) of an arena record of this heap, registered or
/// retired: a span record, live or not (a freed or unused slot has a null `owner`).
fn is_head_slot(h: &HeapInner, s: *const Span) -> bool {
    let mut r = h.free_arena_recs;
    while !r.is_null() {
        // SAFETY: retired records on the free list live as long as the heap.
        let a = unsafe { &*r };
        if a.is_head_slot(s) {
            return true;
        }
        r = a.next_free.load(Ordering::Relaxed);
    }
    // SAFETY: registered arena records live as long as the heap.
    h.arenas[..h.narenas].iter().any(|&a| unsafe { &*a }.is_head_slot(s))
}

/// Whether `rec` is an arena record of this heap: a registered arena's or a retired one on
/// the free list.
fn is_arena_record(h: &HeapInner, rec: *const Arena) -> bool {
    if h.arenas[..h.narenas].iter().any(|&a| ptr::eq(a, rec)) {
        return true;
    }
    let mut r = h.free_arena_recs;
    while !r.is_null() {
        if ptr::eq(r, rec) {
            return true;
        }
        // SAFETY: retired records on the free list live as long as the heap.
        r = unsafe { (*r).next_free.load(Ordering::Relaxed) };
    }
    false
}

/// A cache's free stacks (freestack.rs): within their room, each object object `index` of
/// its recorded span, a span of the stack's class that this cache owns, with its alloc bit
/// set, its live and remote bits clear, not in the alloc cache, and on no stack twice.
fn check_free_stacks(cache: &MCache, c: *mut MCache) -> Result<(), CheckError> {
    for (class, st) in cache.free.iter().enumerate() {
        ensure!(
            st.base <= st.top.get() && st.top.get() <= st.limit && st.room() == stack_room(class),
            "free stack outside its slots",
            class,
            st.len()
        );
        for (k, (p, sp, i)) in cache.stacked(st).enumerate() {
            // SAFETY: a stacked object's span is live and owned by this cache.
            let s = unsafe { &*sp };
            ensure!(ptr::eq(s.owner.load(Ordering::Relaxed), c), "stacked object's span not owned", p, class);
            ensure!(s.class.get() as usize == class, "stacked object of another class", p, class);
            ensure!(
                i < s.nelems.get() as usize && s.object_at(p.as_ptr().addr()) == Some(i),
                "stacked object is not its span's object",
                p,
                i
            );
            ensure!(s.bit(i) && !s.is_live(i) && !remote_bit(s, i), "stacked object's bits wrong", p, i);
            ensure!(!s.in_alloc_cache(i), "object both on a free stack and in an alloc cache", p, class);
            ensure!(
                cache.stacked(st).skip(k + 1).all(|q| q.0 != p),
                "object twice on a free stack",
                p,
                class
            );
        }
    }
    Ok(())
}

/// A cache's held-back remote frees (`RemoteChain` in mcache.rs): none, or `len` objects of
/// one live small span, at most `REMOTE_CHAIN_MAX`, linked from `head` to `tail`, each an
/// object of the span with its alloc, live and remote bits set, held once.
fn check_remote_chain(cache: &MCache) -> Result<(), CheckError> {
    let ch = &cache.remote_chain;
    // SAFETY: a chain's span is live while the chain holds objects of it (the chain's
    // invariant, checked below).
    let Some(s) = (unsafe { ch.span.get().as_ref() }) else {
        ensure!(ch.len.get() == 0, "remote chain without a span holds objects", ch.len.get(), 0);
        return Ok(());
    };
    let n = ch.len.get();
    ensure!((1..=REMOTE_CHAIN_MAX).contains(&n), "remote chain length out of range", s.base.get(), n);
    ensure!(s.class.get() != 0, "remote chain of a large span", s.base.get(), 0);
    let mut last = ptr::null_mut();
    for (k, p) in ch.iter().enumerate() {
        let i = s.object_at(p.as_ptr().addr());
        ensure!(i.is_some(), "held remote free not an object of its span", p, s.base.get());
        let i = i.unwrap_or(0);
        ensure!(s.bit(i), "held remote free without its alloc bit", p, i);
        ensure!(remote_bit(s, i) && !s.is_live(i), "held remote free without its remote bit", p, i);
        ensure!(ch.iter().skip(k + 1).all(|q| q != p), "object held twice", p, i);
        last = p.as_ptr();
    }
    ensure!(last == ch.tail.get(), "remote chain does not end at its tail", s.base.get(), n);
    Ok(())
}

/// A cache's owned list of one span class: links, tags, owner, length.
fn check_owned(cache: &MCache, c: *mut MCache, spc: usize) -> Result<(), CheckError> {
    let l = &cache.owned[spc];
    let (mut n, mut prev) = (0u32, ptr::null::<Span>());
    for s in l.iter() {
        n += 1;
        ensure!(ptr::eq(s.owner.load(Ordering::Relaxed), c), "owned span not owned", s.base.get(), spc);
        ensure!(s.span_class.get() as usize == spc, "owned span of another class", s.base.get(), spc);
        ensure!(
            s.list.get() == SpanList::Owned,
            "owned span list tag wrong",
            s.base.get(),
            s.list.get() as u8
        );
        ensure!(ptr::eq(s.prev.get(), prev), "owned list back link wrong", s.base.get(), spc);
        ensure!(!ptr::eq(s, cache.alloc[spc].get()), "owned span is also current", s.base.get(), spc);
        ensure!(n <= l.len.get(), "owned list longer than its length", s.base.get(), spc);
        prev = s;
    }
    ensure!(n == l.len.get(), "owned list length wrong", spc, n);
    let empty: usize = l.iter().filter(|s| s.alloc_count.get() == 0).map(|s| s.npages.get()).sum();
    ensure!(empty == l.empty_pages.get() as usize, "owned empty pages miscounted", spc, empty);
    ensure!(ptr::eq(l.tail.get(), prev), "owned list tail wrong", spc, n);
    Ok(())
}
