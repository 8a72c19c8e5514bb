//! The span: a run of 8 KiB pages cut into objects of one size class.
//!
//! Go original: `mspan` in `runtime/mheap.go`, with `nextFreeFast` (malloc.go) and
//! `nextFreeIndex` / `refillAllocCache` (mbitmap.go).
//!
//! # Glossary
//! - `alloc_bits`: one bit per object, 1 = handed out and not yet freed *as far as the span
//!   knows* (a free from a non-owner thread waits on `remote` until collected), or *claimed*
//!   by the alloc cache. Bits past `nelems` in the last word are set for good ("padding"),
//!   so a scan never hands them out.
//! - `freeindex`: objects below it have been looked at by the current scan (Go's meaning).
//! - `alloc_cache`: the objects of `freeindex`'s 64-bit word from `freeindex` on that were
//!   free when the word was loaded, shifted so that bit 0 is object `freeindex` (Go's
//!   `allocCache`, the inverted alloc bits). Loading a word *claims* them: their alloc bits
//!   are set and `alloc_count` counts them at once, so that handing one out touches only
//!   the cache and `freeindex` (as in Go, whose allocation never writes `allocBits`).
//!   Dropping a non-empty cache (`drop_alloc_cache`) gives the unclaimed ones back.
//! - `remote`: a lock-free stack (Treiber) of objects freed by threads that do not own the
//!   span, linked through each object's first word (every object is at least 8 bytes).
//! - `owner`: the mcache whose current or owned span this is, or null (in mcentral, or a
//!   large span).
//!
//! # Alloc path (owner only)
//! 1. `next_free_fast`: `t = ctz(alloc_cache)`; object `freeindex + t` is ours (claimed);
//!    shift the cache by `t + 1`, `freeindex` past the object. No atomics, no bitmap write.
//! 2. Cache empty: `next_free` reloads it from the next word with a free bit (Go's
//!    `nextFreeIndex`) and claims that word's free objects from `freeindex` on; at the end
//!    of the span the scan is over.
//! 3. Explicit free replaces Go's sweep: a freed object clears its bit at once (owner) or is
//!    collected from `remote` later. When a scan ends, the owner collects `remote` and, if
//!    enough objects are free ([`Span::refill_min`]), starts the scan again from object 0
//!    (`rewind`): the explicit-free counterpart of Go's sweep resetting `freeindex` to 0.
//!
//! # Free path
//! - Owner (or whoever holds the span's mcentral lock when it has no owner): `free_local`
//!   clears the bit (`object_index` divides by multiply and shift with the span's own
//!   `div_mul`) and returns the new `alloc_count`; the owner compares it with
//!   `refill_count` to see the span become worth a refill (mcache.rs).
//! - Anyone else: `push_remote` (one CAS).
//!
//! # Invariants (checked by `Tiered::check`)
//! - `alloc_count == popcount(alloc_bits) - padding <= nelems`;
//! - `refill_count == nelems - refill_min()`, `div_mul == ceil(2^32 / elem_bytes)`,
//!   `alloc_base == base`;
//! - every bit of `alloc_cache` set ⇒ that object is below `nelems` with its alloc bit set
//!   (claimed), and the cache covers only objects of `freeindex`'s word;
//! - every object on `remote` lies in the span, at an object boundary, with its bit set
//!   and its remote bit set;
//! - `live ⊆ alloc_bits`, no live bit past `nelems` or on an object of the alloc cache,
//!   `remote_bits ⊆ live`; a large span's one object is live.
//!
//! # Liveness (issue 22: a block known from its address)
//! `alloc_bits` cannot say whether the program holds an object: an object on a free stack,
//! in the alloc cache or on its way to the holder (a remote free) has its bit set too. So
//! each span keeps two more bitmaps, atomics that any thread may read with relaxed loads:
//! - `live`: 1 = handed out to the program and not freed by its holder. Written only by the
//!   span's holder, with a plain (relaxed) load and store, no read-modify-write: set when an
//!   object is handed out (`next_free_fast`, a free stack's pop, a large allocation), cleared
//!   when the holder frees it (`take_live`, before the free stack or the bit clear) or
//!   collects another thread's free of it (`collect_one`).
//! - `remote_bits`: 1 = freed by a thread that does not hold the span, not yet collected.
//!   Set by that thread with one `fetch_or` (`claim_remote`), whose old value refuses a
//!   second free; cleared by the holder when it collects the object (live bit first, then
//!   this bit with Release; the alloc bit before or after: `collect_one` clears it last,
//!   `collect_remote` with the live bit, before the remote bits of a whole word).
//!
//! An object is live iff its live bit is set and its remote bit clear (`is_live`): what
//! `block_of` answers and every free checks (`free_addr` in malloc.rs).
//!
//! # Reuse of span records
//! A span record is metadata from the heap's `FixAlloc`: when the span is freed
//! (`MHeap::free_span`) the record goes on the free list, whose link is written into its
//! first word, and the next `alloc_span` rewrites it as a new span (`Span::init`), possibly at
//! once (`grow` and `cache_span` run in the same call chains as frees). Threads still hold
//! `&Span` to it then: the caller chains that free a span take it as `&Span`
//! (`dealloc_slow` → `free_large`, `free_owned` → `on_refillable` → `uncache_span`,
//! `refill_central(old)` → `cache_span`), and another thread's free that pushed the
//! span's last object is still inside its `&Span` call while the owner collects, empties
//! and frees the span (see "Remote frees and the record" below).
//!
//! So no byte of a `Span` is immutable to the language: every field is a [`Cell`], an
//! atomic, an `Init` field ([`InitPtr`], [`InitU32`], ...: an atomic read and written with
//! relaxed loads and stores, written only by [`Span::init`]) or padding in an [`Init`] cell,
//! and the struct has no implicit padding (asserted below). A `&Span` then asserts nothing
//! about the record's contents, and the rewrite of a freed record (the free list's link in
//! its first word, then `Span::init`, field by field) does not contradict any reference that
//! is still live (Stacked Borrows: no frozen byte under a protected `&Span`). It costs
//! nothing: a relaxed load is a plain load, and a `&Span` was already never `noalias` (the
//! struct has cells). That the `Init` fields do not change while the span is live is the
//! protocol's promise (only `Span::init` writes them), not the type's.
//!
//! The `Init` fields and the live and remote bits are atomics for one more reader: a thread
//! that checks a pointer which is not a live block (`block_of`, a bad free; see "Bad input"
//! in mod.rs) may find, through the span map, a span that another thread frees and whose
//! record is reused meanwhile. It reads only those fields, so its reads race with no plain
//! write; its answer may be stale, which the contract allows for such a pointer. A fresh
//! record (never named by a span map) is written whole (`Span::empty`) before `init`.
//!
//! # Remote frees and the record
//! A thread that frees an object of a span it does not own touches the span record only
//! before the push that hands the object over: it reads `owner`, `span_class`, `div_mul`
//! and `base` (fixed while the span lives), then one CAS on `remote` (`push_remote`) or on
//! the mcentral's pending stack (`free_unowned`, which takes no span field). Until that CAS
//! the object's alloc bit is set and counted in `alloc_count`, so the span cannot become
//! empty and be freed (`free_span` needs `alloc_count == 0`, and only the holder, after
//! collecting the object, can bring it there); after the CAS the pusher reads nothing of
//! the record, though its `&Span` argument lives until it returns. A record reused under a returning pusher is therefore never read by it again, and
//! its still-live `&Span` asserts nothing about the contents (above).
//! A thread that holds remote frees back (`RemoteChain` in mcache.rs) keeps the span's
//! address between its frees and reads `owner` and `span_class` again when it pushes the
//! chain: the held objects keep their alloc bits until the push, so the span is as live
//! then as at the first free, and after the push the thread forgets the span.

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::remote::RemoteStack;

use super::mcache::MCache;
use super::sizeclass::{
    self, CLASS_BYTES, CLASS_BYTES_BY_U8, CLASS_RECIP_BY_U8, MAX_OBJECTS_PER_SPAN, PAGE_BYTES,
};

/// Words of an alloc bitmap (1024 objects at most).
pub const BITMAP_WORDS: usize = MAX_OBJECTS_PER_SPAN / 64;

/// A span is worth a refill when at least `nelems / REFILL_MIN_DIVISOR` of its objects are
/// free (see [`Span::refill_min`]).
pub const REFILL_MIN_DIVISOR: u32 = 4;
/// ... and at least this many (at most half the span), so that a span of few large
/// objects is not visited for one object at a time.
pub const REFILL_MIN_OBJECTS: u32 = 8;

/// Which list (if any) a span is on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SpanList {
    /// Not on a list: cached by an mcache, a large span, or being moved.
    None = 0,
    /// mcentral's partial list.
    Partial = 1,
    /// mcentral's full list.
    Full = 2,
    /// mcentral's one spare empty span.
    Spare = 3,
    /// An mcache's list of owned spans that are not current (see mcache.rs).
    Owned = 4,
}

// ANCHOR: span_struct
/// One span (Go's `mspan`). Lives in metadata from the page source; shared between threads
/// as `&Span`, with owner-mutable fields in `Cell`s and the fields set once per use of the
/// record in [`Init`]s (see the module docs for who may write, and "Reuse of span records"
/// for why no field is plain).
///
/// Layout by cache line (offsets asserted below). A free is a random access: the span it
/// lands in is seldom in the cache, so what it reads and writes is packed into one line.
/// - Line 0: what a free reads (base, owner, class, object count) and the live and remote
///   bits of objects 0-127 (`liveness[0..2]`), which it reads and writes: spans of up to 128
///   objects, the classes from 64 B up, keep all their live bits there, so that the owner's
///   free into its free stack reads and writes this one line of the record. Other threads'
///   frees read it too and set remote bits in it; the owner's writes make it move between
///   cores then.
/// - Lines 1-4: the rest of the live and remote bits, then, in line 4's last 32 bytes, what
///   an allocation reads and writes (alloc cache, `freeindex`, object size and a copy of
///   `base`), so an allocation reads one line besides the live word it sets.
/// - Lines 5-6: the alloc bits, which a free touches only when its free stack is full
///   (`free_local`) and an allocation only when it reloads its alloc cache.
/// - Line 7: what only slow paths use (list links, list, page count).
/// - Line 8: the remote stack, which other threads write.
#[repr(C, align(64))]
pub struct Span {
    // Line 0 (bytes 0-63) holds all that a free by the span's owner reads and writes when
    // its free stack has room, for spans of up to 128 objects: the span's identity, the
    // object count, `alloc_count` and the first two live words (the object size comes from
    // the class's table, `small_class`). Such a free then misses in the cache at most once
    // on the record, not once on its fields and once on its live word.
    /// The first object (the first page), with the provenance of the arena's reservation:
    /// every object pointer of the span is derived from it.
    pub base: InitPtr,
    /// The mcache whose current (or owned) span this is, or null.
    pub owner: AtomicPtr<MCache>,
    /// `ceil(2^32 / elem_bytes)` for small spans (Go's `mspan.divMul`): object index by
    /// multiply and shift, with no table lookup on the free path.
    pub div_mul: InitU32,
    /// Objects whose alloc bit is set.
    pub alloc_count: Cell<u32>,
    /// `nelems - refill_min()`: when an owner's free brings `alloc_count` down to this, the
    /// span has just become worth a refill (see "Owned spans" in mcache.rs).
    pub refill_count: InitU16,
    /// Objects in the span (1 for a large span; at most 1024). In line 0, which is all a
    /// free reads of the span record for a span of up to 128 objects.
    pub nelems: InitU16,
    /// Size class (0 = large).
    pub class: InitU8,
    /// Span class (`class << 1 | noscan`, see sizeclass.rs).
    pub span_class: InitU8,
    /// Whether the pages may hold old data (false: fresh from a zeroing source).
    pub needzero: Cell<bool>,
    _pad0: Init<u8>,
    /// From byte 32 (lines 0-4): the live and remote bits of objects `64 w ..64 w + 64` in
    /// `liveness[w]` (see "Liveness"); words 0 and 1 in line 0.
    pub liveness: [LiveWord; BITMAP_WORDS],
    // From byte 288 (line 4's last 32 bytes): the owner's allocation state.
    /// Inverted alloc bits from `freeindex` to the end of its word.
    pub alloc_cache: Cell<u64>,
    /// Next object the scan looks at.
    pub freeindex: Cell<u32>,
    /// Unused (keeps line 4's layout).
    _pad4: Init<u32>,
    /// Object size (bytes); for a large span, the span's bytes.
    pub elem_bytes: InitUsize,
    /// A copy of `base` beside the alloc cache, so that an allocation reads one line of the
    /// span besides its live word (`alloc_base == base`, set once, checked).
    pub alloc_base: InitPtr,
    /// Lines 5-6: 1 = allocated (or freed remotely and not yet collected).
    pub alloc_bits: [Cell<u64>; BITMAP_WORDS],
    // Line 7: what only slow paths use.
    /// Runtime pages.
    pub npages: InitUsize,
    /// Unused (keeps line 7's layout).
    _pad3: Init<usize>,
    /// List links (mcentral's lists, the owner's `owned` list).
    pub next: Cell<*const Span>,
    /// List links.
    pub prev: Cell<*const Span>,
    /// Which list the span is on (an mcentral's, or its owner's `owned` list).
    pub list: Cell<SpanList>,
    _pad1: Init<[u8; 31]>,
    /// Line 8: objects freed by non-owners, linked through their first word (its own line:
    /// other threads write it).
    pub remote: RemoteStack,
    /// The rest of line 8, explicit so that no byte of the record lies outside a cell (see
    /// "Reuse of span records").
    _pad2: Init<[u8; 56]>,
}

/// The live and remote bits of 64 objects of a span, side by side (one cache line holds
/// both; see "Liveness").
#[repr(C)]
pub struct LiveWord {
    /// 1 = object handed out to the program and not freed (see "Liveness"): written by the
    /// span's holder only (relaxed load and store), read by anyone.
    pub live: AtomicU64,
    /// 1 = object freed by a thread that does not hold the span, on its way to the holder
    /// (the remote stack or the mcentral's pending stack; see "Liveness"). Set by the freer
    /// (`fetch_or`), cleared by the holder when it collects the object.
    pub remote: AtomicU64,
}

impl LiveWord {
    /// No object live or remote-freed.
    const fn empty() -> LiveWord {
        LiveWord { live: AtomicU64::new(0), remote: AtomicU64::new(0) }
    }
}
// ANCHOR_END: span_struct

/// Bytes of a record that nobody reads: a [`Cell`] with no accessor, so that no byte of the
/// record lies outside a cell (see "Reuse of span records").
#[repr(transparent)]
pub struct Init<T>(Cell<T>);

impl<T: Copy> Init<T> {
    /// Bytes holding `v`.
    #[inline(always)]
    pub const fn new(v: T) -> Init<T> {
        Init(Cell::new(v))
    }
}

/// Defines a span field set when the record is (re)made (`Span::init`) and only read while
/// the span lives. An atomic, read and written with relaxed loads and stores (plain moves),
/// because a thread that checks a pointer which is not a live block (`block_of`, a bad
/// free) may read the record of a span being freed or reused by another thread meanwhile:
/// the answer is then stale, but the read is no data race (see "Reuse of span records").
macro_rules! init_field {
    ($(#[$doc:meta])* $name:ident, $t:ty, $atomic:ty) => {
        $(#[$doc])*
        #[repr(transparent)]
        pub struct $name($atomic);

        impl $name {
            /// A field holding `v`.
            #[inline(always)]
            pub const fn new(v: $t) -> $name {
                $name(<$atomic>::new(v))
            }

            /// The value.
            #[inline(always)]
            pub fn get(&self) -> $t {
                self.0.load(Ordering::Relaxed)
            }

            /// Sets the value (`Span::init`, the record's holder).
            #[inline(always)]
            fn set(&self, v: $t) {
                self.0.store(v, Ordering::Relaxed)
            }
        }
    };
}

init_field!(
    /// An `Init` field of type `u8`.
    InitU8, u8, AtomicU8
);
init_field!(
    /// An `Init` field of type `u32`.
    InitU32, u32, AtomicU32
);
/// An `Init` field of a count below 2^16, stored in 16 bits and read and written as a `u32`.
#[repr(transparent)]
pub struct InitU16(AtomicU16);

impl InitU16 {
    /// A field holding `v`.
    #[inline(always)]
    pub const fn new(v: u16) -> InitU16 {
        InitU16(AtomicU16::new(v))
    }

    /// The value (relaxed: see "Reuse of span records").
    #[inline(always)]
    pub fn get(&self) -> u32 {
        u32::from(self.0.load(Ordering::Relaxed))
    }

    /// Sets the value, which fits 16 bits (a span's object count or less).
    #[inline(always)]
    fn set(&self, v: u32) {
        debug_assert!(v <= u32::from(u16::MAX));
        self.0.store(v as u16, Ordering::Relaxed)
    }
}

init_field!(
    /// An `Init` field of type `usize`.
    InitUsize, usize, AtomicUsize
);

/// An `Init` field holding a span's base pointer (never null once the span is made; the
/// static empty span holds a dangling one).
#[repr(transparent)]
pub struct InitPtr(AtomicPtr<u8>);

impl InitPtr {
    /// A field holding `v`.
    #[inline(always)]
    pub const fn new(v: NonNull<u8>) -> InitPtr {
        InitPtr(AtomicPtr::new(v.as_ptr()))
    }

    /// The pointer.
    #[inline(always)]
    pub fn get(&self) -> NonNull<u8> {
        // A span's base is never null: `new` and `set` take a `NonNull`, and the only other
        // writer of the record's first word, `FixAlloc::free`'s link, writes a freed
        // record, which no reader of a live span reaches; a stale reader (see above) gets a
        // dangling pointer instead of null, which it only compares.
        NonNull::new(self.0.load(Ordering::Relaxed)).unwrap_or(NonNull::dangling())
    }

    /// The pointer's address (comparisons and arithmetic only; no null test).
    #[inline(always)]
    pub fn addr(&self) -> usize {
        self.0.load(Ordering::Relaxed).addr()
    }

    /// The pointer, without the null test of [`Self::get`] (the allocation fast path).
    ///
    /// # Safety
    /// The span is live and the caller holds it or one of its live objects (so the record
    /// is not being reused, and `init` stored a non-null pointer).
    #[inline(always)]
    pub unsafe fn get_live(&self) -> NonNull<u8> {
        // SAFETY: a live span's base was stored by `init` from a `NonNull` (the caller's
        // contract), and nothing else writes it while the span lives.
        unsafe { NonNull::new_unchecked(self.0.load(Ordering::Relaxed)) }
    }

    /// Sets the pointer (`Span::init`).
    #[inline(always)]
    fn set(&self, v: NonNull<u8>) {
        self.0.store(v.as_ptr(), Ordering::Relaxed)
    }
}

/// One past the bytes of the field at `offset` whose projection is `_field` (for the
/// layout assertions below).
const fn field_end<T>(offset: usize, _field: fn(&Span) -> &T) -> usize {
    offset + core::mem::size_of::<T>()
}

/// Asserts that the fields, in declaration order, leave no byte between them and none after
/// the last: every byte of a record is inside a field, hence inside a cell or an atomic
/// (see "Reuse of span records").
macro_rules! assert_no_padding {
    ($first:ident $(, $f:ident)*) => {
        let end = field_end(core::mem::offset_of!(Span, $first), |s| &s.$first);
        $(
            assert!(end == core::mem::offset_of!(Span, $f), "implicit padding in Span");
            let end = field_end(core::mem::offset_of!(Span, $f), |s| &s.$f);
        )*
        assert!(end == core::mem::size_of::<Span>(), "implicit padding at the end of Span");
    };
}

const _: () = {
    assert_no_padding!(
        base,
        owner,
        div_mul,
        alloc_count,
        refill_count,
        nelems,
        class,
        span_class,
        needzero,
        _pad0,
        liveness,
        alloc_cache,
        freeindex,
        _pad4,
        elem_bytes,
        alloc_base,
        alloc_bits,
        npages,
        _pad3,
        next,
        prev,
        list,
        _pad1,
        remote,
        _pad2
    );
    assert!(core::mem::offset_of!(Span, liveness) == 32);
    assert!(core::mem::offset_of!(Span, alloc_cache) == 32 + 16 * BITMAP_WORDS);
    assert!(core::mem::offset_of!(Span, alloc_cache) % 64 == 32, "allocation state in one line");
    assert!(core::mem::offset_of!(Span, alloc_bits) == 320);
    assert!(core::mem::offset_of!(Span, npages) == 448);
    assert!(core::mem::offset_of!(Span, remote) == 512);
    assert!(core::mem::size_of::<LiveWord>() == 16);
    assert!(core::mem::size_of::<Span>() == 576);
};

// SAFETY: `Span` is `!Sync` for its `Cell`s (the `Init` padding included); spans are shared
// between threads as `&Span`. Every `Cell` (alloc bits and count, alloc cache, `freeindex`,
// `needzero`, list links and tag) is read and written by one party at a time, the span's
// holder: the thread of the mcache that `owner` names, else the holder of the span's
// mcentral lock (a span on its lists, or being filed there), else, for a large span, the heap
// lock holder and the thread that holds its object (and `Span::init`, under the heap lock,
// for a record no one holds). A span changes holder only under the mcentral lock (cacheSpan,
// uncacheSpan) or the heap lock (`alloc_span`, `free_span`), whose Acquire and Release order
// the old holder's accesses before the new one's. Any other thread reads only atomics: the
// `Init` fields (`base`, `alloc_base`, `div_mul`, `refill_count`, `class`, `span_class`,
// `nelems`, `elem_bytes`, `npages`, written by `Span::init` before the span was handed out,
// ordered by the locks that handed the span and its objects out), `owner`, `remote`, and
// the live and remote bits (see "Liveness"). The padding cells are never read. `EMPTY_SPAN`
// is never written.
unsafe impl Sync for Span {}

impl Span {
    /// A span with no objects: the initial current span of every mcache class (Go's
    /// `emptymspan`), so that the first allocation goes straight to refill.
    pub const fn empty() -> Span {
        Span {
            alloc_cache: Cell::new(0),
            freeindex: Cell::new(0),
            alloc_count: Cell::new(0),
            base: InitPtr::new(NonNull::dangling()),
            alloc_base: InitPtr::new(NonNull::dangling()),
            elem_bytes: InitUsize::new(0),
            nelems: InitU16::new(0),
            _pad4: Init::new(0),
            class: InitU8::new(0),
            span_class: InitU8::new(0),
            list: Cell::new(SpanList::None),
            needzero: Cell::new(false),
            npages: InitUsize::new(0),
            owner: AtomicPtr::new(ptr::null_mut()),
            remote: RemoteStack::from_atomic(AtomicPtr::new(ptr::null_mut())),
            next: Cell::new(ptr::null()),
            prev: Cell::new(ptr::null()),
            _pad3: Init::new(0),
            liveness: [const { LiveWord::empty() }; BITMAP_WORDS],
            alloc_bits: [const { Cell::new(0) }; BITMAP_WORDS],
            refill_count: InitU16::new(0),
            div_mul: InitU32::new(0),
            _pad0: Init::new(0),
            _pad1: Init::new([0; 31]),
            _pad2: Init::new([0; 56]),
        }
    }

    /// A fresh span of `npages` pages at `base` for span class `spc` (0 = large).
    #[cfg(test)]
    pub fn new(base: NonNull<u8>, npages: usize, spc: usize, needzero: bool) -> Span {
        let s = Span::empty();
        s.init(base, npages, spc, needzero);
        s
    }

    /// Makes this record (an empty span, or one freed by `MHeap::free_span`) a fresh span of
    /// `npages` pages at `base` for span class `spc`, field by field: the `Init` fields with
    /// relaxed stores, so that a stale reader of the old span (see `InitPtr`) races with no
    /// plain write. The caller holds the record (the heap lock, for a record of the span
    /// free list) and nobody else holds the span.
    pub fn init(&self, base: NonNull<u8>, npages: usize, spc: usize, needzero: bool) {
        let class = sizeclass::class_of_span_class(spc);
        let (elem_bytes, nelems) = if class == 0 {
            (npages * PAGE_BYTES, 1)
        } else {
            let size = CLASS_BYTES[class] as usize;
            (size, npages * PAGE_BYTES / size)
        };
        self.base.set(base);
        self.alloc_base.set(base);
        self.elem_bytes.set(elem_bytes);
        self.nelems.set(nelems as u32);
        self.class.set(class as u8);
        self.span_class.set(spc as u8);
        self.npages.set(npages);
        self.div_mul.set(sizeclass::div_mul(class));
        self.refill_count.set(nelems as u32 - self.refill_min());
        self.owner.store(ptr::null_mut(), Ordering::Relaxed);
        self.alloc_count.set(0);
        self.alloc_cache.set(0);
        self.freeindex.set(0);
        self.needzero.set(needzero);
        self.next.set(ptr::null());
        self.prev.set(ptr::null());
        self.list.set(SpanList::None);
        self.remote.reset();
        for w in 0..BITMAP_WORDS {
            self.liveness[w].live.store(0, Ordering::Relaxed);
            self.liveness[w].remote.store(0, Ordering::Relaxed);
            self.alloc_bits[w].set(0);
        }
        if class != 0 {
            // Padding bits past nelems are set for good.
            let (w, b) = (nelems / 64, nelems % 64);
            if b != 0 {
                self.alloc_bits[w].set(!0 << b);
            }
            let first_full = nelems.div_ceil(64);
            for word in &self.alloc_bits[first_full..] {
                word.set(!0);
            }
        }
    }

    /// Number of padding bits.
    #[inline]
    pub fn padding(&self) -> u32 {
        if self.class.get() == 0 { 0 } else { (BITMAP_WORDS * 64) as u32 - self.nelems.get() }
    }

    /// The bitmap word of object `i` (`i < nelems <= 1024`; the mask, a no-op then, lets
    /// the compiler drop the bounds check).
    #[inline(always)]
    fn word(&self, i: usize) -> &Cell<u64> {
        &self.alloc_bits[(i / 64) % BITMAP_WORDS]
    }

    /// Whether object `i` is in the alloc cache (claimed, not handed out yet).
    pub fn in_alloc_cache(&self, i: usize) -> bool {
        let fi = self.freeindex.get() as usize;
        i >= fi && i - fi < 64 && self.alloc_cache.get() >> (i - fi) & 1 == 1
    }

    /// Whether object `i`'s alloc bit is set.
    #[inline]
    pub fn bit(&self, i: usize) -> bool {
        self.alloc_bits[i / 64].get() >> (i % 64) & 1 == 1
    }

    // ANCHOR: next_free_fast
    /// Go's `nextFreeFast`: the next free object from the cache, or `None` when the cache is
    /// empty. Owner only.
    #[inline(always)]
    pub fn next_free_fast(&self) -> Option<NonNull<u8>> {
        let c = self.alloc_cache.get();
        if c == 0 {
            return None;
        }
        let t = c.trailing_zeros();
        let i = self.freeindex.get() + t;
        self.alloc_cache.set((c >> t) >> 1);
        self.freeindex.set(i + 1);
        self.set_live(i as usize);
        // SAFETY: (1) a non-empty alloc cache belongs to a live span that the calling owner
        // holds (the static empty span's is always empty), as `get_live` requires; (2) a set
        // bit of the alloc cache is an object below `nelems` (invariant), so its offset
        // `i * elem_bytes` lies inside the span's pages, which `alloc_base`'s provenance
        // covers.
        Some(unsafe { self.alloc_base.get_live().add(i as usize * self.elem_bytes.get()) })
    }
    // ANCHOR_END: next_free_fast

    // ANCHOR: next_free
    /// Go's `nextFreeIndex`: reloads the cache from the first word past `freeindex` with a
    /// free bit, claims that word's free objects from `freeindex` on, and allocates from
    /// it; `None` at the end of the span. Owner only.
    #[cold]
    pub fn next_free(&self) -> Option<NonNull<u8>> {
        loop {
            let fi = self.freeindex.get() as usize;
            if fi >= self.nelems.get() as usize {
                return None;
            }
            let w = self.word(fi);
            let inv = !w.get() >> (fi % 64);
            if inv != 0 {
                w.set(w.get() | !0 << (fi % 64));
                self.alloc_count.set(self.alloc_count.get() + inv.count_ones());
                self.alloc_cache.set(inv);
                return self.next_free_fast();
            }
            self.freeindex.set(((fi / 64 + 1) * 64) as u32);
        }
    }
    // ANCHOR_END: next_free

    // ANCHOR: rewind
    /// Starts the scan again from object 0 (after frees; see the module docs).
    #[inline]
    pub fn rewind(&self) {
        self.drop_alloc_cache();
        self.freeindex.set(0);
    }

    /// Gives the objects the alloc cache claimed and did not hand out back to the bitmap
    /// (before the span changes hands or its scan restarts). Owner only.
    #[inline]
    pub fn drop_alloc_cache(&self) {
        let c = self.alloc_cache.replace(0);
        if c != 0 {
            let fi = self.freeindex.get() as usize;
            let w = self.word(fi);
            w.set(w.get() & !(c << (fi % 64)));
            self.alloc_count.set(self.alloc_count.get() - c.count_ones());
        }
    }
    // ANCHOR_END: rewind

    // ANCHOR: refill_current
    /// The current span's part of a refill (`MCache::refill`): the rest of the scan, else,
    /// at its end, the span's sweep (collect its remote frees) and, if enough of it is free
    /// ([`Self::worth_refill`]), a rewind and a new scan from object 0. `None`: the span is
    /// not worth a refill now, and the cache switches to another. Owner only.
    #[inline(always)]
    pub fn refill_current(&self) -> Option<NonNull<u8>> {
        // A full span has nothing ahead of the scan: skip straight to its remote frees.
        if !self.is_full()
            && let Some(p) = self.next_free()
        {
            return Some(p);
        }
        self.collect_remote();
        if self.worth_refill() {
            self.rewind();
            return self.next_free();
        }
        None
    }
    // ANCHOR_END: refill_current

    /// Object index of address `addr` (in the span), without a division (Go's `divMul`).
    #[inline]
    pub fn object_index(&self, addr: usize) -> usize {
        sizeclass::div_by_mul(addr - self.base_addr(), self.div_mul.get())
    }

    /// The first byte, as an address (arithmetic and keys only).
    #[inline]
    pub fn base_addr(&self) -> usize {
        self.base.addr()
    }

    // ANCHOR: free_local
    /// Frees object `i` (owner, or mcentral lock holder for an unowned span); returns the
    /// new `alloc_count`.
    #[inline]
    pub fn free_local(&self, i: usize) -> u32 {
        let w = self.word(i);
        debug_assert!(
            w.get() >> (i % 64) & 1 == 1,
            "double free of object {i} in span {:p}",
            self.base.get()
        );
        w.set(w.get() & !(1 << (i % 64)));
        let n = self.alloc_count.get() - 1;
        self.alloc_count.set(n);
        n
    }
    // ANCHOR_END: free_local

    // ANCHOR: liveness
    /// The live and remote words holding object `i`'s bits, and the bits' mask.
    #[inline(always)]
    fn live_word(&self, i: usize) -> (&LiveWord, u64) {
        (&self.liveness[(i / 64) % BITMAP_WORDS], 1 << (i % 64))
    }

    /// Whether object `i` (`i < nelems`) is live: handed out and not freed by anyone (see
    /// "Liveness"). Any thread; an answer about an object another thread frees or takes
    /// meanwhile may be either.
    #[inline]
    pub fn is_live(&self, i: usize) -> bool {
        let (lw, m) = self.live_word(i);
        let r = &lw.remote;
        // Acquire: a holder's collection clears the live bit before the remote bit
        // (Release), so a reader that sees the remote bit clear after it sees the live bit
        // clear too.
        if r.load(Ordering::Acquire) & m != 0 {
            return false;
        }
        lw.live.load(Ordering::Relaxed) & m != 0
    }

    /// Marks object `i` live (it is being handed out). Holder only: a relaxed load and
    /// store, no read-modify-write.
    #[inline(always)]
    pub fn set_live(&self, i: usize) {
        let w = &self.liveness[(i / 64) % BITMAP_WORDS].live;
        w.store(bit_set(w.load(Ordering::Relaxed), i), Ordering::Relaxed);
    }

    /// The holder frees object `i`: clears its live bit and returns true if it was live and
    /// not freed by another thread meanwhile (its remote bit clear); else false, nothing
    /// changed. Holder only: one load of each bitmap word and one store.
    #[inline(always)]
    pub fn take_live(&self, i: usize) -> bool {
        let k = (i / 64) % BITMAP_WORDS;
        let lw = &self.liveness[k];
        let v = lw.live.load(Ordering::Relaxed);
        // Live and not remote-freed, as one bit test of both words (both are read anyway:
        // one branch instead of two), and the bit flipped (it is set): `bt` and `btc` of
        // the index, no mask in a register.
        let t = v & !lw.remote.load(Ordering::Relaxed);
        #[cfg(target_arch = "x86_64")]
        {
            // The test, the flip and the store in one asm block, the store addressed from
            // the record and the word's offset the loads above used: after `bit_test`'s
            // branch (an asm label), LLVM formed the word's address again in a register (2
            // instructions).
            // SAFETY: `bt` and `btc` on registers; the `mov` stores the flipped word into
            // `liveness[k].live` of this record (`self` is a reference, `k < BITMAP_WORDS`,
            // the field's offset from `offset_of!`), an aligned 8-byte store: on x86_64 the
            // relaxed atomic store the holder makes (it alone writes the word, "Liveness").
            // No stack; the flags change.
            unsafe {
                core::arch::asm!(
                    "bt {t}, {i}",
                    "jnc {dead}",
                    "btc {v}, {i}",
                    "mov qword ptr [{s} + {o} + {live}], {v}",
                    t = in(reg) t,
                    i = in(reg) i,
                    v = inout(reg) v => _,
                    s = in(reg) ptr::from_ref(self),
                    o = in(reg) k * core::mem::size_of::<LiveWord>(),
                    live = const core::mem::offset_of!(Span, liveness),
                    dead = label { return false; },
                    options(nostack)
                );
            }
            true
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            if !bit_test(t, i) {
                return false;
            }
            lw.live.store(bit_flip(v, i), Ordering::Relaxed);
            true
        }
    }

    /// Marks object `i` not live (freed by its holder, or collected). Holder only.
    #[inline(always)]
    pub fn clear_live(&self, i: usize) {
        let (lw, m) = self.live_word(i);
        let w = &lw.live;
        w.store(w.load(Ordering::Relaxed) & !m, Ordering::Relaxed);
    }

    /// A thread that does not hold the span frees object `i`: sets its remote bit (one
    /// `fetch_or`). False, and nothing changed, if the object is not live: its remote bit
    /// was already set (a double free on its way to the holder) or its live bit is clear.
    #[inline]
    pub fn claim_remote(&self, i: usize) -> bool {
        let (lw, m) = self.live_word(i);
        let r = &lw.remote;
        // Acquire: after a holder's collection (which clears the live bit, then this bit
        // with Release), the live bit read below is the cleared one or a later one.
        if r.fetch_or(m, Ordering::AcqRel) & m != 0 {
            return false;
        }
        let (w, lm) = (&lw.live, m);
        if w.load(Ordering::Relaxed) & lm == 0 {
            r.fetch_and(!m, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// The holder collects object `i`, freed by another thread (`claim_remote`): live bit,
    /// remote bit, then alloc bit cleared; returns the new `alloc_count`.
    #[inline]
    pub fn collect_one(&self, i: usize) -> u32 {
        self.clear_live(i);
        let (lw, m) = self.live_word(i);
        let r = &lw.remote;
        r.fetch_and(!m, Ordering::Release);
        self.free_local(i)
    }

    /// Object index of `addr` if it is the start of an object of this span (small or
    /// large), else `None` (an interior pointer, or one past the last object). Reads only
    /// fields fixed while the span lives.
    #[inline]
    pub fn object_at(&self, addr: usize) -> Option<usize> {
        let off = addr.checked_sub(self.base_addr())?;
        if self.class.get() == 0 {
            return (off == 0).then_some(0);
        }
        self.small_object_at(off)
    }

    /// [`Self::object_at`] for a small span, given the offset from `base` (the free path,
    /// which knows the span is small).
    #[inline(always)]
    pub fn small_object_at(&self, off: usize) -> Option<usize> {
        self.small_object_in(off, self.small_class().1)
    }

    /// [`Self::small_object_at`] given the span's object size (`small_class().1`).
    #[inline(always)]
    pub fn small_object_in(&self, off: usize, bytes: usize) -> Option<usize> {
        let i = sizeclass::div_by_mul(off, self.div_mul.get());
        (i < self.nelems.get() as usize && i * bytes == off).then_some(i)
    }

    /// The index of the object that starts at offset `off` from `base` (any `usize`, a
    /// wrapped difference included) of this span, given its size class `class` as read from
    /// `self.class`; `None` if no object starts there (inside an object, past the last one,
    /// below the base) or the span is large (class 0). One 128-bit multiply by the class's
    /// `ceil(2^64 / size)` and two compares ([`sizeclass::exact_index`]): the owner's free
    /// path (`find_mine`), which reads no object size.
    #[inline(always)]
    pub fn small_object_start(&self, off: usize, class: u8) -> Option<usize> {
        sizeclass::exact_index(off, CLASS_RECIP_BY_U8[usize::from(class)], self.nelems.get())
    }

    /// The size class of a small span and its object size (`elem_bytes`), the size from the
    /// class's table rather than the record, so that the free path reads line 0 of the
    /// record only (and, for a span of more than 128 objects, the object's live word). Read
    /// once per free and passed on.
    #[inline(always)]
    pub fn small_class(&self) -> (usize, usize) {
        let class = self.class.get();
        let bytes = CLASS_BYTES_BY_U8[usize::from(class)] as usize;
        debug_assert!(class == 0 || bytes == self.elem_bytes.get());
        (usize::from(class), bytes)
    }
    // ANCHOR_END: liveness

    // ANCHOR: push_remote
    /// Pushes a freed object on the remote stack (any thread). One CAS.
    #[inline]
    pub fn push_remote(&self, obj: NonNull<u8>) {
        // SAFETY: the callers pass a freed object of this span (every object is at least 8
        // bytes and 8-aligned) with a pointer valid for it; nobody uses it until it is
        // collected.
        unsafe { self.remote.push(obj) }
    }
    // ANCHOR_END: push_remote

    // ANCHOR: collect_remote
    /// Takes every object on the remote stack and frees it locally; returns how many. Owner
    /// (or mcentral lock holder for an unowned span).
    ///
    /// As `collect_one` for each object, with the remote bits cleared once per bitmap word
    /// at the end (one `fetch_and` per word holding taken objects, not one per object):
    /// every object's live and alloc bits are cleared first, so the order `collect_one`
    /// keeps (live bit, then remote bit with Release) holds for each object, and nothing
    /// hands a taken object out before this returns (only the holder, the caller, does).
    pub fn collect_remote(&self) -> usize {
        let mut p = self.remote.take();
        if p.is_null() {
            return 0;
        }
        let mut masks = [0u64; BITMAP_WORDS];
        let mut words = 0u32;
        let mut n = 0;
        while let Some(q) = NonNull::new(p) {
            // SAFETY: `q` is a node of the list just taken.
            p = unsafe { RemoteStack::next(q) };
            let i = self.object_index(q.as_ptr().addr());
            self.clear_live(i);
            self.free_local(i);
            let w = (i / 64) % BITMAP_WORDS;
            masks[w] |= 1 << (i % 64);
            words |= 1 << w;
            n += 1;
        }
        while words != 0 {
            let w = words.trailing_zeros() as usize;
            words &= words - 1;
            self.liveness[w].remote.fetch_and(!masks[w], Ordering::Release);
        }
        n
    }
    // ANCHOR_END: collect_remote

    /// Objects waiting on the remote stack (for the checker; no other thread may run).
    pub fn remote_len(&self) -> usize {
        let mut p = self.remote.peek();
        let mut n = 0;
        while let Some(q) = NonNull::new(p) {
            // SAFETY: no concurrent push (the checker runs alone); nodes hold their links.
            p = unsafe { RemoteStack::next(q) };
            n += 1;
        }
        n
    }

    /// Whether every object is handed out.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.alloc_count.get() == self.nelems.get()
    }

    /// Whether at least [`Self::refill_min`] objects are free (`nelems - alloc_count >=
    /// refill_min()`), read from line 0 alone: `alloc_count <= refill_count`.
    #[inline]
    pub fn worth_refill(&self) -> bool {
        self.alloc_count.get() <= self.refill_count.get()
    }

    // ANCHOR: refill_min
    /// Free objects that make the span worth a refill: a scan of it then hands out at
    /// least this many objects (`nelems / REFILL_MIN_DIVISOR`, at least 1). A span with
    /// fewer is left to collect more frees (see "Refill policy" in mcache.rs).
    #[inline]
    pub fn refill_min(&self) -> u32 {
        let n = self.nelems.get();
        (n / REFILL_MIN_DIVISOR).max((n / 2).min(REFILL_MIN_OBJECTS)).max(1)
    }
    // ANCHOR_END: refill_min

    /// One past the last byte.
    #[inline]
    pub fn end(&self) -> usize {
        self.base_addr() + self.npages.get() * PAGE_BYTES
    }
}

/// `v` with bit `i % 64` set. On x86_64 one `bts` of the index in a register (which takes the
/// index modulo 64 itself): no mask is formed, so the allocation's fast path needs no extra
/// register (LLVM forms `1 << i` in a register of its own for `v | 1 << (i % 64)`).
#[inline(always)]
fn bit_set(v: u64, i: usize) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut v = v;
        // SAFETY: `bts` on two registers: it reads and writes `v` and the flags only (no
        // memory, no stack; the flags are not preserved, which the options leave unsaid).
        unsafe {
            core::arch::asm!("bts {v}, {i}", v = inout(reg) v, i = in(reg) i, options(pure, nomem, nostack));
        }
        v
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        v | 1 << (i % 64)
    }
}

/// Whether bit `i % 64` of `v` is set. On x86_64 a `bt` of the index and the branch on its
/// carry (LLVM forms `1 << i` in a register for `v >> (i % 64) & 1` of an `and` of two
/// words, and then needs one more register on the free's fast path). `take_live` on x86_64
/// makes the same test inside its own asm block.
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn bit_test(v: u64, i: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `bt` on two registers and a jump to the label on a clear bit: no memory,
        // no stack, only the flags change.
        unsafe {
            core::arch::asm!(
                "bt {v}, {i}",
                "jnc {clear}",
                v = in(reg) v,
                i = in(reg) i,
                clear = label { return false; },
                options(nomem, nostack)
            );
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        v >> (i % 64) & 1 != 0
    }
}

/// `v` with bit `i % 64` flipped: one `btc` on x86_64, as [`bit_set`] (`take_live` on
/// x86_64 flips inside its own asm block).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn bit_flip(v: u64, i: usize) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut v = v;
        // SAFETY: as in `bit_set`: registers and flags only.
        unsafe {
            core::arch::asm!("btc {v}, {i}", v = inout(reg) v, i = in(reg) i, options(pure, nomem, nostack));
        }
        v
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        v ^ 1 << (i % 64)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// The bit helpers (inline asm on x86_64) agree with the plain expressions they
    /// replace, for every bit index, indexes past 63 included (taken modulo 64 as `bts`,
    /// `bt` and `btc` take a register index).
    #[test]
    fn bit_helpers_agree_with_the_plain_expressions() {
        let words = [0u64, u64::MAX, 0x8000_0000_0000_0001, 0x5555_aaaa_0f0f_f0f0, 1 << 37];
        for &v in &words {
            for i in 0..200usize {
                let b = i % 64;
                assert_eq!(bit_set(v, i), v | 1 << b, "bit_set({v:#x}, {i})");
                assert_eq!(bit_flip(v, i), v ^ 1 << b, "bit_flip({v:#x}, {i})");
                assert_eq!(bit_test(v, i), v >> b & 1 != 0, "bit_test({v:#x}, {i})");
            }
        }
    }

    /// `take_live` (one asm block on x86_64) against the rule it implements, for every
    /// combination of an object's live and remote bits, in every live word, with other bits
    /// of both words set and clear: true and the live bit cleared exactly when the object
    /// was live and not remote-freed; otherwise false and both words unchanged.
    #[test]
    fn take_live_takes_only_a_live_object_and_changes_nothing_else() {
        let s = Span::empty();
        let others = [0u64, u64::MAX, 0x5555_aaaa_0f0f_f0f0];
        for w in 0..BITMAP_WORDS {
            for b in [0usize, 1, 31, 62, 63] {
                let i = w * 64 + b;
                let m = 1u64 << b;
                for &lo in &others {
                    for &ro in &others {
                        for (live, remote) in [(false, false), (true, false), (false, true), (true, true)] {
                            let lv = if live { lo | m } else { lo & !m };
                            let rv = if remote { ro | m } else { ro & !m };
                            for (k, lw) in s.liveness.iter().enumerate() {
                                lw.live.store(if k == w { lv } else { !lv }, Ordering::Relaxed);
                                lw.remote.store(if k == w { rv } else { !rv }, Ordering::Relaxed);
                            }
                            let taken = s.take_live(i);
                            assert_eq!(taken, live && !remote, "object {i}: {live} {remote}");
                            let want = if taken { lv & !m } else { lv };
                            for (k, lw) in s.liveness.iter().enumerate() {
                                let (l, r) = if k == w { (want, rv) } else { (!lv, !rv) };
                                assert_eq!(lw.live.load(Ordering::Relaxed), l, "word {k}, object {i}");
                                assert_eq!(lw.remote.load(Ordering::Relaxed), r, "word {k}, object {i}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The layout's promise: a span of a class of 64 B or more keeps all its live and
    /// remote bits in line 0, beside the fields a free reads.
    #[test]
    fn classes_from_64_bytes_keep_their_live_bits_in_line_0() {
        let line0_words = (64 - core::mem::offset_of!(Span, liveness)) / core::mem::size_of::<LiveWord>();
        assert_eq!(line0_words, 2);
        for (class, &bytes) in CLASS_BYTES.iter().enumerate().skip(1) {
            let objects = sizeclass::class_objects(class);
            if bytes >= 64 {
                assert!(objects <= line0_words * 64, "class {class}: {objects} objects");
            }
        }
        assert_eq!(CLASS_BYTES[5], 48);
        assert!(sizeclass::class_objects(5) > line0_words * 64, "48 B spans need line 1");
    }

    #[test]
    fn scan_hands_out_every_object_once_then_rewinds() {
        let mut mem = std::vec![0u64; PAGE_BYTES / 8];
        let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
        let s = Span::new(base, 1, sizeclass::span_class(3), false);
        assert_eq!(s.nelems.get(), 341);
        let mut got = Vec::new();
        while let Some(p) = s.next_free_fast().or_else(|| s.next_free()) {
            got.push(p);
        }
        assert_eq!(got.len(), 341);
        assert!(s.is_full());
        s.free_local(s.object_index(got[7].as_ptr().addr()));
        s.push_remote(got[100]);
        assert_eq!(s.collect_remote(), 1);
        assert_eq!(s.alloc_count.get(), 339);
        assert!(s.next_free_fast().or_else(|| s.next_free()).is_none(), "scan is over until rewind");
        s.rewind();
        let a = s.next_free_fast().or_else(|| s.next_free()).unwrap();
        let b = s.next_free_fast().or_else(|| s.next_free()).unwrap();
        assert_eq!((a, b), (got[7], got[100]));
        assert!(s.is_full());
    }
}
