//! The live-start map: one bit per `BLOCK_ALIGN` granule of address space, set exactly at the
//! payload of every used block, found through a radix index keyed by address (Go's arena index
//! behind `spanOf`). It is what lets a pointer be checked without reading memory it names.
//!
//! ```text
//! address bits: | 47..39 L1 | 38..30 L2 | 29..20 L3 | 19..10 word | 9..4 bit | 3..0 |
//! root (L1) -> L2 table -> L3 table -> leaf (1 MiB of address space, 1024 words)
//! ```
//! Tables and leaves come from *pools*: ranges taken from the page source (never the global
//! allocator) and cut by a bump pointer; they live until [`LiveMap::release`] gives every pool
//! back. Leaves are never freed one by one: a leaf covers address space the heap once held,
//! so the map's size is bounded by the address space the heap has ever used (1/128 of it).
//!
//! Invariants (checked by `Core::check`):
//! - every byte of every chunk lies in a leaf (`cover` runs before a chunk, or the range
//!   that extends one, is used);
//! - a bit is set iff its granule is the payload of a used block;
//! - each entry of `cache` holds a key and that key's leaf, or `NO_KEY`;
//! - `bytes == Σ pool bytes`, all of them Ready.

use core::ptr::{self, NonNull};

use crate::source::{PageSource, align_up};

/// Bits of address below a granule (`BLOCK_ALIGN` bytes per bit).
const GRANULE_SHIFT: u32 = 4;
/// Address bits a leaf covers: 1 MiB.
const LEAF_SHIFT: u32 = 20;
/// Words of a leaf: one bit per granule of its 1 MiB.
const LEAF_WORDS: usize = 1 << (LEAF_SHIFT - GRANULE_SHIFT - 6);
/// Bits of the key (address >> `LEAF_SHIFT`) each table level resolves, lowest level first.
const L3_BITS: u32 = 10;
const L2_BITS: u32 = 9;
const L1_BITS: u32 = 9;
/// Addresses at or above `1 << ADDR_BITS` are in no leaf (and never in a chunk: `cover`
/// refuses them).
const ADDR_BITS: u32 = LEAF_SHIFT + L3_BITS + L2_BITS + L1_BITS;
const _: () = assert!(ADDR_BITS == 48, "the tables resolve the 48 bits of user addresses");
/// Bytes of the first pool, taken before the first chunk so that, from a source that hands
/// out neighbouring ranges, later chunks still land next to the first one.
pub(in super::super) const POOL_BYTES: usize = 64 * 1024;
/// Entries of the leaf cache, direct-mapped by the low bits of the key: a heap within this
/// many MiB of contiguous address space finds every leaf there.
const CACHE_ENTRIES: usize = 64;
/// No key: a cache entry's key when it holds nothing (keys are below `1 << (ADDR_BITS -
/// LEAF_SHIFT)`).
const NO_KEY: usize = usize::MAX;

type Leaf = [u64; LEAF_WORDS];
type L3 = [*mut Leaf; 1 << L3_BITS];
type L2 = [*mut L3; 1 << L2_BITS];
type L1 = [*mut L2; 1 << L1_BITS];

/// The head of a pool (its first bytes): the next older pool and this pool's bytes.
#[repr(C)]
struct PoolHead {
    next: *mut PoolHead,
    bytes: usize,
}

/// A leaf-cache entry: a key and its leaf.
#[derive(Copy, Clone)]
struct CacheEntry {
    key: usize,
    leaf: *mut u64,
}

/// The live-start map of one heap (see the module docs for the layout and invariants).
pub(super) struct LiveMap {
    root: *mut L1,
    /// Recently used leaves, direct-mapped by `key % CACHE_ENTRIES`.
    cache: [CacheEntry; CACHE_ENTRIES],
    /// The newest pool (null before the first); older pools follow through `next`.
    pool: *mut PoolHead,
    /// Offset of the first unused byte of the newest pool.
    bump: usize,
    /// Bytes of all pools.
    pub(super) bytes: usize,
}

/// Word index and bit mask of `addr` in its leaf.
#[inline(always)]
fn slot(addr: usize) -> (usize, u64) {
    ((addr >> (GRANULE_SHIFT + 6)) & (LEAF_WORDS - 1), 1 << ((addr >> GRANULE_SHIFT) & 63))
}

/// The indexes of `key` (an address >> `LEAF_SHIFT`) in L1, L2 and L3; `None` past
/// `ADDR_BITS`.
#[inline]
fn split(key: usize) -> Option<(usize, usize, usize)> {
    let i1 = key >> (L3_BITS + L2_BITS);
    (i1 < 1 << L1_BITS).then_some((i1, (key >> L3_BITS) & ((1 << L2_BITS) - 1), key & ((1 << L3_BITS) - 1)))
}

impl LiveMap {
    /// An empty map (no pool, no memory).
    pub(super) const EMPTY: Self = LiveMap {
        root: ptr::null_mut(),
        cache: [CacheEntry { key: NO_KEY, leaf: ptr::null_mut() }; CACHE_ENTRIES],
        pool: ptr::null_mut(),
        bump: 0,
        bytes: 0,
    };

    /// The leaf of `key`, or null if none covers it (reads only the map's tables).
    fn leaf_walk(&self, key: usize) -> *mut u64 {
        let Some((i1, i2, i3)) = split(key) else { return ptr::null_mut() };
        if self.root.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: `root` and every non-null entry point to tables of this map, which live in
        // its pools (Ready until `release`); the indexes are in range by `split`.
        unsafe {
            let l2 = self.root.cast::<*mut L2>().add(i1).read();
            if l2.is_null() {
                return ptr::null_mut();
            }
            let l3 = l2.cast::<*mut L3>().add(i2).read();
            if l3.is_null() {
                return ptr::null_mut();
            }
            l3.cast::<*mut Leaf>().add(i3).read().cast()
        }
    }

    /// The leaf of `addr` or null, through the one-entry cache.
    #[inline(always)]
    fn leaf_of(&mut self, addr: usize) -> *mut u64 {
        let key = addr >> LEAF_SHIFT;
        let e = self.cache[key % CACHE_ENTRIES];
        if e.key == key { e.leaf } else { self.leaf_miss(key) }
    }

    /// [`leaf_of`](Self::leaf_of) past the cache: walks the tables and caches a leaf found.
    #[cold]
    #[inline(never)]
    fn leaf_miss(&mut self, key: usize) -> *mut u64 {
        let leaf = self.leaf_walk(key);
        if !leaf.is_null() {
            self.cache[key % CACHE_ENTRIES] = CacheEntry { key, leaf };
        }
        leaf
    }

    // ANCHOR: live_bits
    /// Sets the bit of `addr`, the payload of a block just handed out.
    ///
    /// # Safety
    /// `addr` lies in a chunk of this heap (so a leaf covers it) and is `BLOCK_ALIGN`-aligned.
    #[inline(always)]
    pub(super) unsafe fn mark(&mut self, addr: usize) {
        let leaf = self.leaf_of(addr);
        debug_assert!(!leaf.is_null(), "no leaf covers payload {addr:#x}");
        let (w, bit) = slot(addr);
        // SAFETY: every chunk byte lies in a leaf (the map's invariant; caller: `addr` is in a
        // chunk), and `w < LEAF_WORDS`.
        unsafe { *leaf.add(w) |= bit };
    }

    /// If `addr` is the payload of a used block (its bit is set), clears the bit and returns
    /// `true`; otherwise changes nothing. Safe for any address: reads only the map.
    #[inline(always)]
    pub(super) fn take(&mut self, addr: usize) -> bool {
        let leaf = self.leaf_of(addr);
        if leaf.is_null() || addr & ((1 << GRANULE_SHIFT) - 1) != 0 {
            return false;
        }
        let (w, bit) = slot(addr);
        // SAFETY: `leaf` is a leaf of this map, `w < LEAF_WORDS`.
        unsafe {
            let word = leaf.add(w);
            if *word & bit == 0 {
                return false;
            }
            *word &= !bit;
        }
        true
    }
    // ANCHOR_END: live_bits

    /// Whether `addr` is the payload of a used block. Safe for any address; reads only the
    /// map.
    #[inline]
    pub(super) fn is_set(&mut self, addr: usize) -> bool {
        let leaf = self.leaf_of(addr);
        // SAFETY: `leaf` is a leaf of this map when non-null, and `slot`'s word is in it.
        !leaf.is_null()
            && addr & ((1 << GRANULE_SHIFT) - 1) == 0
            && unsafe { *leaf.add(slot(addr).0) & slot(addr).1 != 0 }
    }

    /// [`is_set`](Self::is_set) without touching the cache (the checker).
    pub(super) fn is_set_walk(&self, addr: usize) -> bool {
        let leaf = self.leaf_walk(addr >> LEAF_SHIFT);
        let (w, bit) = slot(addr);
        // SAFETY: `leaf` is a leaf of this map when non-null, and `w < LEAF_WORDS`.
        !leaf.is_null() && addr & ((1 << GRANULE_SHIFT) - 1) == 0 && unsafe { *leaf.add(w) & bit != 0 }
    }

    /// The first address of `lo..hi` (non-empty) that no leaf covers, if any (the checker).
    pub(super) fn first_uncovered(&self, lo: usize, hi: usize) -> Option<usize> {
        (lo >> LEAF_SHIFT..=(hi - 1) >> LEAF_SHIFT)
            .find(|&key| self.leaf_walk(key).is_null())
            .map(|key| (key << LEAF_SHIFT).max(lo))
    }

    /// Set bits in all leaves (the checker).
    pub(super) fn count_set(&self) -> usize {
        let mut n = 0;
        if self.root.is_null() {
            return 0;
        }
        // SAFETY: non-null entries point to tables and leaves of this map, which live in its
        // pools; every index is below its table's length.
        unsafe {
            for i1 in 0..1 << L1_BITS {
                let l2 = self.root.cast::<*mut L2>().add(i1).read();
                for i2 in 0..if l2.is_null() { 0 } else { 1 << L2_BITS } {
                    let l3 = l2.cast::<*mut L3>().add(i2).read();
                    for i3 in 0..if l3.is_null() { 0 } else { 1 << L3_BITS } {
                        let leaf = l3.cast::<*mut Leaf>().add(i3).read().cast::<u64>();
                        for w in 0..if leaf.is_null() { 0 } else { LEAF_WORDS } {
                            n += leaf.add(w).read().count_ones() as usize;
                        }
                    }
                }
            }
        }
        n
    }

    /// Takes the first pool and the root, if not yet done: called before a heap's first chunk
    /// is taken, so that the chunks that follow can lie next to each other. `false` if the
    /// source refused.
    pub(super) fn prepare<P: PageSource>(&mut self, src: &P) -> bool {
        if !self.root.is_null() {
            return true;
        }
        match self.piece(src, size_of::<L1>()) {
            Some(r) => {
                self.root = r.as_ptr().cast();
                true
            }
            None => false,
        }
    }

    /// Makes sure a leaf covers every address of `lo..hi`; `false` (some leaves may have been
    /// added, which is harmless) if the source refused memory or the range lies past
    /// `ADDR_BITS`.
    pub(super) fn cover<P: PageSource>(&mut self, src: &P, lo: usize, hi: usize) -> bool {
        if !self.prepare(src) || hi.checked_sub(1).is_none_or(|last| split(last >> LEAF_SHIFT).is_none()) {
            return false;
        }
        (lo >> LEAF_SHIFT..=(hi - 1) >> LEAF_SHIFT).all(|key| self.cover_key(src, key))
    }

    /// Makes the path to the leaf of `key` exist.
    fn cover_key<P: PageSource>(&mut self, src: &P, key: usize) -> bool {
        let Some((i1, i2, i3)) = split(key) else { return false };
        // SAFETY: `root` is a table of this map (`prepare` succeeded), and every non-null
        // entry points to a table of the next level in its pools; indexes are in range.
        unsafe {
            let Some(l2) = self.entry(self.root.cast::<*mut L2>().add(i1), src) else { return false };
            let Some(l3) = self.entry(l2.cast::<*mut L3>().add(i2), src) else { return false };
            self.entry(l3.cast::<*mut Leaf>().add(i3), src).is_some()
        }
    }

    /// The table or leaf that slot `at` points to, made (zeroed, from a pool) if null.
    ///
    /// # Safety
    /// `at` is a slot of a table of this map.
    unsafe fn entry<T, P: PageSource>(&mut self, at: *mut *mut T, src: &P) -> Option<*mut T> {
        // SAFETY: the caller passes a slot of a live table.
        unsafe {
            if at.read().is_null() {
                at.write(self.piece(src, size_of::<T>())?.as_ptr().cast());
            }
            Some(at.read())
        }
    }

    /// `bytes` zeroed bytes (8-aligned) from the newest pool, taking a new pool if it has no
    /// room.
    fn piece<P: PageSource>(&mut self, src: &P, bytes: usize) -> Option<NonNull<u8>> {
        // SAFETY: `pool` is the newest pool, which holds its own size.
        let room = if self.pool.is_null() { 0 } else { (unsafe { (*self.pool).bytes }) - self.bump };
        if room < bytes && !self.new_pool(src, bytes) {
            return None;
        }
        // SAFETY: `bump + bytes` lies inside the newest pool, Ready memory that only this map
        // uses; nothing there was handed out yet.
        unsafe {
            let p = NonNull::new_unchecked(self.pool.cast::<u8>().add(self.bump));
            self.bump += bytes;
            if !P::FRESH_ZEROED {
                ptr::write_bytes(p.as_ptr(), 0, bytes);
            }
            Some(p)
        }
    }

    /// Takes a pool with room for `bytes` from the source: as big as all pools so far (so
    /// pools are few), at least `POOL_BYTES`, or just enough if that is refused.
    #[cold]
    fn new_pool<P: PageSource>(&mut self, src: &P, bytes: usize) -> bool {
        let page = P::PAGE_BYTES;
        let Some(min) = align_up(bytes + size_of::<PoolHead>(), page) else { return false };
        let Some(want) = align_up(self.bytes.max(POOL_BYTES), page) else { return false };
        let want = want.max(min);
        let (base, size) = match src.alloc_ready(want, page) {
            Ok(b) => (b, want),
            Err(_) if min < want => match src.alloc_ready(min, page) {
                Ok(b) => (b, min),
                Err(_) => return false,
            },
            Err(_) => return false,
        };
        let head = base.as_ptr().cast::<PoolHead>();
        // SAFETY: the source just gave `size` Ready bytes at `base`, owned by this map alone.
        unsafe { head.write(PoolHead { next: self.pool, bytes: size }) };
        self.pool = head;
        self.bump = size_of::<PoolHead>();
        self.bytes += size;
        true
    }

    /// Gives every pool back to the source and empties the map.
    ///
    /// # Safety
    /// `src` is the source the pools came from; nothing uses the map's memory afterwards.
    pub(super) unsafe fn release<P: PageSource>(&mut self, src: &P) {
        let mut p = self.pool;
        while !p.is_null() {
            // SAFETY: `p` is a pool of this map (from `src`), whose head holds the next link
            // and its size; it is read before the pool goes back.
            unsafe {
                let PoolHead { next, bytes } = p.read();
                // A source that refuses a range back keeps it: nothing else can be done.
                let _ = src.free(NonNull::new_unchecked(p.cast()), bytes);
                p = next;
            }
        }
        *self = LiveMap::EMPTY;
    }
}
