//! First and next fit's default index: the address space cut into regions, a short sorted
//! list per region, and a flat 16-way tree of the regions' largest sizes.
//!
//! # Design
//! First fit asks for the lowest-address free block that fits; next fit for the lowest at
//! or above an address. [`AddrTree`] answers both by descending a treap whose nodes live in
//! the free blocks themselves, so every level of the descent is a load from another block
//! of a multi-MiB heap: a dependent cache miss and a branch the processor cannot predict,
//! about ten of each per replacement in the churn of `benches/freelist.rs`.
//!
//! `AddrRegions` takes the part of the index that a search descends out of the blocks and
//! into a few compact arrays inside the heap. A *window* of [`REGION_COUNT`] regions of
//! [`REGION_BYTES`] each (32 MiB in all) covers the heap. Each region has
//! - a [`Linear`] list of the free blocks that start in it, in address order (the links
//!   stay in the blocks' node areas), usually zero to three blocks, and
//! - an entry in `sizes.leaf`: an upper bound on the sizes of those blocks, in `BLOCK_ALIGN`
//!   units (a `u16`, saturating at 512 KiB), 0 exactly when the region has no free block;
//! - an entry in `aligned.leaf`: an upper bound on what those blocks offer to a request
//!   aligned for [`ALIGNED`] (64 bytes), in the same units: a block's size less the gap
//!   below the first 64-aligned start `fit_start` would take ([`aligned_units`]), 0 when the
//!   region has no free block. A start aligned for more is aligned for 64 too, so this also
//!   bounds what requests aligned for more can use.
//!
//! Above each kind of leaf ([`Bounds`]) sit two levels of maxima, each entry the largest of
//! 16 below it (`mid`: 512 entries, `top`: 32). A request aligned for 64 or more searches
//! the aligned bounds, any other the sizes: without them, a burst of 64-aligned requests
//! walked every region holding a block of the right size at the wrong address. (For a
//! request aligned for 32, the sizes remain the bound.) The aligned bounds are computed by
//! the first request aligned for 64 or more, one pass over the blocks, and kept from then
//! on: a heap that never sees one pays one predictable branch per insert for them. A search for `need` bytes from some region finds the
//! first region at or above it whose bound admits `need` by comparing 16 entries at a time
//! with the request ([`ge_mask`]: two vector comparisons and a mask, no branch): up through
//! the rest of the region's group of 16, the group's `mid` line, the `top` lines, then
//! down, in 17 KiB that stays in the caches. Then it walks that region's list for the first
//! block that fits. If none does (the bound was stale, or an over-aligned request's start
//! lies too high), the walk has read every block's size, so the region's bound becomes
//! exact (an over-aligned search, which computes what each block offers at 64 as well,
//! makes both exact), and the search goes on from the next region. The answer is therefore the lowest-address fitting
//! block, the walk's, and the equivalence tests check it.
//!
//! Bounds are lazy: a block entering a region raises its bound (and the levels above, which
//! only rise) if it is larger; a block leaving it lowers nothing unless the region becomes
//! empty. Recomputing the bound on every removal would read the headers of the region's
//! other blocks, cache misses that a search pays only when it meets a stale bound.
//!
//! Blocks that start outside the window go to an [`AddrTree`], the *spill*. A search asks
//! both and keeps the lower address; with an empty spill, the usual case, that is one
//! comparison. The spill's nodes keep the largest [`aligned_bytes`] of their subtree, so an
//! over-aligned search skips its misaligned blocks too. Which of the two holds a block depends only on its address and the window,
//! and the window moves only when every block changes places with it:
//! - an empty index places it around the next block, three quarters of it below (Linux's
//!   `mmap` puts the chunks that follow below the first; the spill catches the rest);
//! - when the spill has grown past 64 blocks and a quarter of the window's, and at least
//!   doubled since the last move, the index *rewindows*: every block goes to the spill,
//!   the window is centred on the densest span of blocks (of the windows that start at a
//!   block, the one holding the most: all of them when they fit), and the blocks inside it
//!   come back. O(n log n), at most once per doubling of the spill, so
//!   O(log n) amortized per operation, and never while the blocks stay between 24 MiB
//!   below and 8 MiB above the first one. The densest span, not the whole: under per-thread
//!   arenas, one arena's first chunk may lie tens of MiB above the rest, beyond the stacks
//!   of the threads started after it, and a window that started at the lowest block left
//!   every chunk mapped later (below it) in the spill. (Three quarters of the room below,
//!   as for the first block, put more blocks in the spill in the harness's single-threaded
//!   next-fit runs, whose blocks also lie above.)
//!
//! The index is about 162 KiB (a list head and length per region, the two kinds of bounds
//! and their maxima, the spill's root), so a `static` `Heap<FirstFit>` is that much larger;
//! nothing is allocated.
//!
//! Invariants (checked by `check`), with `base(k) = lo + k * REGION_BYTES`:
//! - when `placed` is false, no block is in a region list; otherwise every block of list
//!   `k` starts in `base(k)..base(k + 1)`, and every block of the spill starts outside the
//!   window;
//! - each list is a valid sorted [`Linear`] list, and `in_window` is the sum of their
//!   lengths;
//! - `sizes.leaf[k]` is at least the largest `units(size)` of list `k`'s blocks, and 0
//!   exactly when the list is empty; `aligned.leaf[k]` is 0 when the list is empty or
//!   `aligned_on` is false, and otherwise at least the largest `aligned_units` of list `k`'s
//!   blocks; in both, each `mid`
//!   entry is the largest of its 16 leaves, each `top` entry the largest of its 16 `mid`
//!   entries;
//! - the spill is a valid [`AddrTree`].

use super::block::{BLOCK_ALIGN, Block, HEADER_BYTES, MIN_BLOCK_BYTES};
use super::engine::{FreeIndex, fit_start};
use super::linear::Linear;
use super::policy::AddrSearch;
use super::tree::AddrTree;
use crate::strategy::CheckError;

/// Entries per node of the tree of maxima (32 bytes of `u16`s).
const FAN: usize = 16;
/// log2 of [`REGION_BYTES`].
const REGION_SHIFT: u32 = 12;
/// Bytes of address space per region.
pub const REGION_BYTES: usize = 1 << REGION_SHIFT;
/// Regions in the window: `TOPS` times `FAN` cubed, so the tree above the leaves has two
/// levels (`mid`, then `top`).
pub const REGION_COUNT: usize = TOPS * FAN * FAN * FAN;
/// Groups of 16 entries at the top level.
const TOPS: usize = 2;
/// The spill's size from which the window may move (see [`AddrRegions::rewindow`]).
const REWINDOW_MIN: usize = 64;
/// Bytes of address space the window covers.
const WINDOW_BYTES: usize = REGION_COUNT * REGION_BYTES;

/// First and next fit's default index: regions of the address space, each a sorted list,
/// under flat trees of their largest sizes and of what their blocks offer at 64-byte
/// alignment; blocks outside the window in an [`AddrTree`].
/// See the module docs (`strategies/freelist/regions.rs`).
pub struct AddrRegions {
    /// Address of region 0 (a multiple of `REGION_BYTES`); meaningful when `placed`.
    lo: usize,
    /// Whether the window is placed; it is placed by the first insert into an empty index.
    placed: bool,
    /// Blocks in the region lists.
    in_window: usize,
    /// The spill's size after the last move of the window.
    spill_mark: usize,
    /// Blocks that start outside the window.
    spill: AddrTree,
    /// Per region, an upper bound on `units(size)` of its blocks (see [`Bounds`]).
    sizes: Bounds,
    /// Per region, an upper bound on [`aligned_units`] of its blocks: what requests aligned
    /// for `ALIGNED` or more search. All 0, and not kept, until the first such request.
    aligned: Bounds,
    /// Whether `aligned` is kept (since the first request aligned for `ALIGNED` or more).
    aligned_on: bool,
    /// `lists[k]`: the free blocks starting in region `k`, in address order.
    lists: [Linear; REGION_COUNT],
}

/// A bound per region and the flat tree of maxima above the bounds.
struct Bounds {
    /// `top[t][i]`: the largest of `mid[t * FAN + i]`.
    top: [[Units; FAN]; TOPS],
    /// `mid[h][j]`: the largest of `leaf[h * FAN + j]`.
    mid: [[Units; FAN]; TOPS * FAN],
    /// `leaf[g][i]`: region `g * FAN + i`'s bound, 0 when it has no block.
    leaf: [[Units; FAN]; REGION_COUNT / FAN],
}

/// An entry of the tree of maxima: a size in `BLOCK_ALIGN` units.
type Units = u16;

/// The largest value of an entry: `i16::MAX` (512 KiB), so that entries also compare as
/// signed integers (SSE2 has no unsigned comparison).
const UNITS_MAX: Units = i16::MAX as Units;

/// A block size in `BLOCK_ALIGN` units, saturating at `UNITS_MAX`: larger sizes count as
/// the largest, which keeps "`units(size) >= need_units(need)` whenever `size >= need`"
/// (a search for more than 512 KiB visits every region holding a block of 512 KiB or more,
/// and finds the answer among them).
#[inline(always)]
fn units(size: usize) -> Units {
    (size / BLOCK_ALIGN).min(UNITS_MAX as usize) as Units
}

/// A request in `BLOCK_ALIGN` units, rounded up, so that a block of `size >= need` bytes
/// (a multiple of `BLOCK_ALIGN`) has `units(size) >= need_units(need)`.
#[inline(always)]
fn need_units(need: usize) -> Units {
    need.div_ceil(BLOCK_ALIGN).min(UNITS_MAX as usize) as Units
}

/// The alignment from which a search uses the bounds of `aligned_units` instead of sizes.
/// The threaded C++ program of the preload tests asks for `alignas(64)` objects in bursts,
/// and the blocks of their size at the other residues would be walked one by one.
pub(super) const ALIGNED: usize = 64;

/// `units` of the bytes a free block at `start` of `size` bytes offers from the lowest
/// start `fit_start` would take for a request aligned for `ALIGNED` (0 if none): so
/// `fit_start(b, need, align)` with `align >= ALIGNED` is `Some` only if this is at least
/// `need_units(need)`, because a start aligned for more is also aligned for `ALIGNED`, and
/// `fit_start` takes the lowest acceptable one. For `align == ALIGNED` the two are the same
/// condition (sizes and these bytes are multiples of `BLOCK_ALIGN`).
#[inline(always)]
fn aligned_units(start: usize, size: usize) -> Units {
    units(aligned_bytes(start, size))
}

/// The bytes a free block at `start` of `size` bytes (a multiple of `BLOCK_ALIGN`) offers
/// from the lowest start `fit_start` would take for a request aligned for `ALIGNED` (0 if
/// none): `fit_start(b, need, align)` with `align >= ALIGNED` is `Some` only if this is at
/// least `need`, and for `align == ALIGNED` exactly then. [`aligned_units`] in bytes, also
/// kept by the address treap ([`AddrTree`]) for its over-aligned search.
#[inline(always)]
pub(super) fn aligned_bytes(start: usize, size: usize) -> usize {
    // The gap depends only on the payload's residue modulo `ALIGNED`: one table load.
    let gap = GAP_UNITS[(start.wrapping_add(HEADER_BYTES) / BLOCK_ALIGN) % GAP_UNITS.len()];
    size.saturating_sub(gap * BLOCK_ALIGN)
}

/// `GAP_UNITS[r]`: the gap, in `BLOCK_ALIGN` units, below the first start `fit_start` takes
/// for an `ALIGNED` request in a block whose payload lies `r * BLOCK_ALIGN` bytes past a
/// multiple of `ALIGNED` (as `aligned_start`: the next aligned payload, pushed up by at
/// least a smallest block when the gap is not empty but too small to stay a free block).
const GAP_UNITS: [usize; ALIGNED / BLOCK_ALIGN] = {
    let mut t = [0; ALIGNED / BLOCK_ALIGN];
    let mut r = 0;
    while r < t.len() {
        let payload = r * BLOCK_ALIGN;
        let mut gap = (ALIGNED - payload) % ALIGNED;
        if gap != 0 && gap < MIN_BLOCK_BYTES {
            gap = MIN_BLOCK_BYTES + (ALIGNED - (payload + MIN_BLOCK_BYTES) % ALIGNED) % ALIGNED;
        }
        t[r] = gap / BLOCK_ALIGN;
        r += 1;
    }
    t
};

// ANCHOR: ge_mask
/// Bit `i` set ⇔ `group[i] >= v` (entries and `v` at most `UNITS_MAX`), with no branch: on
/// x86-64 two SSE2 comparisons of eight entries each, packed to 16 bytes and gathered into
/// a mask; elsewhere sixteen scalar comparisons.
#[inline(always)]
fn ge_mask(group: &[Units; FAN], v: Units) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{
            __m128i, _mm_cmpgt_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16, _mm_set1_epi16,
        };
        let p = group.as_ptr().cast::<__m128i>();
        // SAFETY: the two unaligned loads read the group's 32 bytes; SSE2, the only feature
        // the intrinsics need, is part of x86-64 itself.
        unsafe {
            // Entries and `v` are at most `i16::MAX`, so a signed comparison is exact.
            let vv = _mm_set1_epi16(v as i16);
            // Lanes where `v > x`: the entry is too small. The saturating pack keeps the
            // all-ones / all-zeros lanes as they are, in order.
            let lo = _mm_cmpgt_epi16(vv, _mm_loadu_si128(p));
            let hi = _mm_cmpgt_epi16(vv, _mm_loadu_si128(p.add(1)));
            !(_mm_movemask_epi8(_mm_packs_epi16(lo, hi)) as u32) & 0xffff
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut m = 0;
        for (i, &x) in group.iter().enumerate() {
            m |= u32::from(x >= v) << i;
        }
        m
    }
}
// ANCHOR_END: ge_mask

/// A failed check.
fn err<T>(what: &'static str, addr: usize, detail: usize) -> Result<T, CheckError> {
    Err(CheckError { what, addr, detail })
}

/// The largest entry of a group.
#[inline(always)]
fn max_of(group: &[Units; FAN]) -> Units {
    group.iter().fold(0, |a, &x| a.max(x))
}

/// The lowest set bit of `m` at or above bit `from` (`from <= 32`), if any.
#[inline(always)]
fn lowest_from(m: u32, from: usize) -> Option<usize> {
    let m = m.checked_shr(from as u32).unwrap_or(0) << from.min(31);
    (m != 0).then(|| m.trailing_zeros() as usize)
}

impl Bounds {
    /// No region has a block.
    const EMPTY: Bounds =
        Bounds { top: [[0; FAN]; TOPS], mid: [[0; FAN]; TOPS * FAN], leaf: [[0; FAN]; REGION_COUNT / FAN] };

    #[inline(always)]
    fn leaf(&self, k: usize) -> Units {
        self.leaf[k / FAN][k % FAN]
    }

    // ANCHOR: next_region
    /// The first region at or above `p` whose bound is at least `v` units: the rest of
    /// `p`'s group of 16 leaves, else the next group whose `mid` entry admits `v` (among
    /// the 16 of `p`'s `mid` line, else through the `top` lines) and its first such leaf.
    #[inline]
    fn next_region(&self, p: usize, v: Units) -> Option<usize> {
        if p >= REGION_COUNT {
            return None;
        }
        let (g, h) = (p / FAN, p / (FAN * FAN));
        if let Some(i) = lowest_from(ge_mask(&self.leaf[g], v), p % FAN) {
            return Some(g * FAN + i);
        }
        let g = match lowest_from(ge_mask(&self.mid[h], v), g % FAN + 1) {
            Some(j) => h * FAN + j,
            None => {
                let (mut t, mut from) = (h / FAN, h % FAN + 1);
                let h = loop {
                    if let Some(i) = lowest_from(ge_mask(self.top.get(t)?, v), from) {
                        break t * FAN + i;
                    }
                    (t, from) = (t + 1, 0);
                };
                h * FAN + lowest_from(ge_mask(&self.mid[h], v), 0)?
            }
        };
        Some(g * FAN + lowest_from(ge_mask(&self.leaf[g], v), 0)?)
    }
    // ANCHOR_END: next_region

    /// Raises `leaf[k]` to `v` if it is below: the levels above only rise.
    #[inline(always)]
    fn raise(&mut self, k: usize, v: Units) {
        let (g, h) = (k / FAN, k / (FAN * FAN));
        let leaf = &mut self.leaf[g][k % FAN];
        if *leaf >= v {
            return;
        }
        *leaf = v;
        let m = &mut self.mid[h][g % FAN];
        if *m < v {
            *m = v;
            let t = &mut self.top[h / FAN][h % FAN];
            *t = (*t).max(v);
        }
    }

    /// Sets `leaf[k]` to `v`, at most its old value. A level above changes only if the
    /// entry below it held its largest value; then it is recomputed from its 16 entries.
    #[inline]
    fn lower(&mut self, k: usize, v: Units) {
        let (g, h) = (k / FAN, k / (FAN * FAN));
        let old = core::mem::replace(&mut self.leaf[g][k % FAN], v);
        let mid = self.mid[h][g % FAN];
        if old < mid {
            return;
        }
        let m = max_of(&self.leaf[g]);
        if m == mid {
            return;
        }
        self.mid[h][g % FAN] = m;
        let top = &mut self.top[h / FAN][h % FAN];
        if mid == *top {
            *top = max_of(&self.mid[h]);
        }
    }

    /// Checks that each `mid` and `top` entry is the largest of the 16 below it.
    fn check_levels(&self, what: &'static str) -> Result<(), CheckError> {
        for (g, leaves) in self.leaf.iter().enumerate() {
            if self.mid[g / FAN][g % FAN] != max_of(leaves) {
                return err(what, g, max_of(leaves) as usize);
            }
        }
        for (h, mids) in self.mid.iter().enumerate() {
            if self.top[h / FAN][h % FAN] != max_of(mids) {
                return err(what, REGION_COUNT + h, max_of(mids) as usize);
            }
        }
        Ok(())
    }
}

impl AddrRegions {
    /// The region of the window in which address `a` lies, if the window is placed and
    /// holds it.
    #[inline(always)]
    fn region_of(&self, a: usize) -> Option<usize> {
        let k = a.wrapping_sub(self.lo) >> REGION_SHIFT;
        (self.placed && k < REGION_COUNT).then_some(k)
    }

    /// The lowest address of region `k`.
    #[inline(always)]
    fn base(&self, k: usize) -> usize {
        self.lo.wrapping_add(k << REGION_SHIFT)
    }

    /// Links `b` into region `k`'s list and raises the region's largest size if needed.
    ///
    /// # Safety
    /// `b` is a free block not in the index, starting in region `k`; `hint` is `None` or
    /// `b`'s predecessor in list `k`.
    #[inline(always)]
    unsafe fn insert_in_region(&mut self, k: usize, b: Block, size: usize, hint: Option<Block>) {
        // SAFETY: forwarded.
        unsafe { self.lists[k].insert(b, size, hint) };
        self.in_window += 1;
        self.sizes.raise(k, units(size));
        if self.aligned_on {
            self.aligned.raise(k, aligned_units(b.addr(), size));
        }
    }

    /// Moves the window to where the blocks are: every region block goes to the spill, the
    /// window is centred on the densest span of blocks ([`densest_span`](Self::densest_span):
    /// all of them when they fit), and the spill's blocks inside it move to their regions.
    /// O(n log n) for n indexed blocks. It runs only when the spill holds more than a fifth
    /// of the blocks and at least twice `spill_mark` (its size after the last move), so at
    /// least n/10 blocks entered the spill since: O(log n) amortized per operation.
    ///
    /// # Safety
    /// The index holds only live free blocks.
    #[cold]
    unsafe fn rewindow(&mut self) {
        // SAFETY: every block moved is a live free block of the index; each leaves one
        // structure before it enters the other.
        unsafe {
            for k in 0..REGION_COUNT {
                while !self.lists[k].first().is_null() {
                    let b = Block::at(self.lists[k].first());
                    let size = b.size();
                    self.lists[k].remove(b, size);
                    self.spill.insert(b, size, None);
                }
            }
            (self.sizes, self.aligned, self.in_window) = (Bounds::EMPTY, Bounds::EMPTY, 0);
            let (lo, hi) = self.densest_span();
            // Room left in the window beyond the span's regions: half of it below.
            let room = (WINDOW_BYTES - REGION_BYTES).saturating_sub(hi - lo);
            self.lo = lo.saturating_sub(room / 2) & !(REGION_BYTES - 1);
            loop {
                let t = self.spill.at_or_above(self.lo);
                if t.is_null() {
                    break;
                }
                let Some(k) = self.region_of(t.addr()) else { break };
                let b = Block::at(t);
                let size = b.size();
                self.spill.remove(b, size);
                self.insert_in_region(k, b, size, None);
            }
            self.spill_mark = self.spill.len();
        }
    }

    /// The first and last block start of the densest span: among the windows that start
    /// at a block, the one holding the most block starts (the lowest on ties), as the
    /// addresses of its first and last block (`hi - lo < WINDOW_BYTES`). One sweep of two
    /// cursors over the spill in address order, O(n).
    ///
    /// # Safety
    /// The spill holds only live free blocks, at least one.
    unsafe fn densest_span(&self) -> (usize, usize) {
        // SAFETY: the cursors are blocks of the spill or null (forwarded).
        unsafe {
            let next = |b: *mut u8| self.spill.successor(b);
            let (mut i, mut j) = (self.spill.at_or_above(0), self.spill.at_or_above(0));
            // `n` blocks start in `i.addr()..j.addr()`, the last of them `last`.
            let (mut n, mut last) = (0, i);
            let (mut best, mut best_n) = ((i.addr(), i.addr()), 0);
            while !i.is_null() {
                while !j.is_null() && j.addr() - i.addr() < WINDOW_BYTES {
                    (n, last, j) = (n + 1, j, next(j));
                }
                if n > best_n {
                    (best, best_n) = ((i.addr(), last.addr()), n);
                }
                (n, i) = (n - 1, next(i));
            }
            best
        }
    }

    /// Computes the aligned bounds of every region (exact) and keeps them from now on: the
    /// first request aligned for `ALIGNED` or more does this, so that a heap that never sees
    /// one does not pay their upkeep on every insert.
    ///
    /// # Safety
    /// The lists hold only live free blocks.
    #[cold]
    unsafe fn start_aligned(&mut self) {
        for k in 0..REGION_COUNT {
            let mut largest = 0;
            for b in self.lists[k].iter() {
                // SAFETY: list `k`'s blocks are live free blocks.
                largest = largest.max(aligned_units(b.addr(), unsafe { b.size() }));
            }
            self.aligned.raise(k, largest);
        }
        self.aligned_on = true;
    }

    /// The lowest-address block of the region lists at or above `from` that fits.
    ///
    /// # Safety
    /// The lists hold only live free blocks.
    #[inline]
    unsafe fn window_first_fit(&mut self, from: usize, need: usize, align: usize) -> Option<Block> {
        if self.in_window == 0 {
            return None;
        }
        if align >= ALIGNED {
            // SAFETY: forwarded.
            return unsafe { self.window_first_fit_aligned(from, need, align) };
        }
        let v = need_units(need);
        let mut p = from.saturating_sub(self.lo) >> REGION_SHIFT;
        while let Some(k) = self.sizes.next_region(p, v) {
            // ANCHOR: tighten
            // Region `k`'s list in address order: the first block at or above `from` that
            // fits is the answer. Else, if the walk saw every block, their largest size is
            // now known: the bound becomes exact.
            let mut largest = 0;
            for b in self.lists[k].iter() {
                // SAFETY: list `k`'s blocks are live free blocks.
                let size = unsafe { b.size() };
                // SAFETY: list `k`'s blocks are live free blocks.
                if b.addr() >= from && size >= need && unsafe { fit_start(b, need, align) }.is_some() {
                    return Some(b);
                }
                largest = largest.max(units(size));
            }
            if from <= self.base(k) {
                self.sizes.lower(k, largest);
            }
            // ANCHOR_END: tighten
            p = k + 1;
        }
        None
    }

    /// [`window_first_fit`](Self::window_first_fit) for a request aligned for `ALIGNED` or
    /// more: it visits only the regions whose aligned bound admits the request (a necessary
    /// condition, like size), and a walk that saw every block of a region makes both of its
    /// bounds exact. Kept apart so that the plain search stays as short as before.
    ///
    /// # Safety
    /// The lists hold only live free blocks; `align >= ALIGNED`.
    #[inline(never)]
    unsafe fn window_first_fit_aligned(&mut self, from: usize, need: usize, align: usize) -> Option<Block> {
        if !self.aligned_on {
            // SAFETY: forwarded.
            unsafe { self.start_aligned() };
        }
        let v = need_units(need);
        let mut p = from.saturating_sub(self.lo) >> REGION_SHIFT;
        while let Some(k) = self.aligned.next_region(p, v) {
            let (mut largest, mut largest_aligned) = (0, 0);
            for b in self.lists[k].iter() {
                // SAFETY: list `k`'s blocks are live free blocks.
                let size = unsafe { b.size() };
                // SAFETY: list `k`'s blocks are live free blocks.
                if b.addr() >= from && size >= need && unsafe { fit_start(b, need, align) }.is_some() {
                    return Some(b);
                }
                largest = largest.max(units(size));
                largest_aligned = largest_aligned.max(aligned_units(b.addr(), size));
            }
            if from <= self.base(k) {
                self.sizes.lower(k, largest);
                self.aligned.lower(k, largest_aligned);
            }
            p = k + 1;
        }
        None
    }
}

// SAFETY: a block is in exactly one place (its region's list, or the spill), chosen by its
// address alone, so `remove`, `replace` and `resized` find it where `insert` put it; only
// node memory of indexed blocks is written (by `Linear` and `AddrTree`).
unsafe impl FreeIndex for AddrRegions {
    const EMPTY: Self = AddrRegions {
        lo: 0,
        placed: false,
        in_window: 0,
        spill_mark: 0,
        spill: <AddrTree as FreeIndex>::EMPTY,
        sizes: Bounds::EMPTY,
        aligned: Bounds::EMPTY,
        aligned_on: false,
        lists: [const { <Linear as FreeIndex>::EMPTY }; REGION_COUNT],
    };

    #[inline]
    unsafe fn insert(&mut self, b: Block, size: usize, hint: Option<Block>) {
        let mut k = self.region_of(b.addr());
        if k.is_none() && self.in_window == 0 && self.spill.len() == 0 {
            // An empty index may move its window (no block's place changes): to cover `b`,
            // three quarters of it below `b`, where `mmap` puts the chunks that follow.
            self.lo = (b.addr() & !(REGION_BYTES - 1)).saturating_sub(WINDOW_BYTES / 4 * 3);
            self.placed = true;
            self.spill_mark = 0;
            k = self.region_of(b.addr());
        }
        // The hint is `b`'s predecessor among all indexed blocks, so also within its
        // region or the spill when it lies there.
        let hint = hint.filter(|h| self.region_of(h.addr()) == k);
        match k {
            // SAFETY: forwarded (`b` is a free block not in the index).
            Some(k) => unsafe { self.insert_in_region(k, b, size, hint) },
            None => {
                // SAFETY: forwarded.
                unsafe { self.spill.insert(b, size, hint) };
                let n = self.spill.len();
                if n >= REWINDOW_MIN && n * 4 > self.in_window && n >= 2 * self.spill_mark {
                    // SAFETY: the index holds live free blocks only.
                    unsafe { self.rewindow() };
                }
            }
        }
    }

    #[inline]
    unsafe fn remove(&mut self, b: Block, size: usize) {
        match self.region_of(b.addr()) {
            Some(k) => {
                // SAFETY: `b` is in list `k` (it starts in region `k`); the other blocks of
                // the list are live free blocks.
                unsafe { self.lists[k].remove(b, size) };
                self.in_window -= 1;
                // The bound stays (a later search tightens it), unless nothing is left.
                if self.lists[k].len() == 0 {
                    self.sizes.lower(k, 0);
                    if self.aligned_on {
                        self.aligned.lower(k, 0);
                    }
                }
            }
            // SAFETY: `b` starts outside the window, so it is in the spill.
            None => unsafe { self.spill.remove(b, size) },
        }
    }

    #[inline]
    unsafe fn replace(&mut self, old: Block, old_size: usize, new: Block, new_size: usize) {
        let (ko, kn) = (self.region_of(old.addr()), self.region_of(new.addr()));
        // SAFETY: `old` is where its address puts it; `new` is a free block not indexed.
        unsafe {
            match (ko, kn) {
                (Some(k), Some(kn)) if k == kn => {
                    self.lists[k].replace(old, old_size, new, new_size);
                    self.sizes.raise(k, units(new_size));
                    if self.aligned_on {
                        self.aligned.raise(k, aligned_units(new.addr(), new_size));
                    }
                }
                (None, None) => self.spill.replace(old, old_size, new, new_size),
                _ => {
                    // No indexed block lies between the two, so `new` is its region's or
                    // the spill's first block above `old`'s predecessor: no hint needed.
                    self.remove(old, old_size);
                    self.insert(new, new_size, None);
                }
            }
        }
    }

    #[inline]
    unsafe fn resized(&mut self, b: Block, old_size: usize, new_size: usize) {
        match self.region_of(b.addr()) {
            Some(k) => {
                self.sizes.raise(k, units(new_size));
                if self.aligned_on {
                    self.aligned.raise(k, aligned_units(b.addr(), new_size));
                }
            }
            // SAFETY: forwarded.
            None => unsafe { self.spill.resized(b, old_size, new_size) },
        }
    }

    unsafe fn check(
        &self,
        visit: &mut dyn FnMut(Block) -> Result<(), CheckError>,
    ) -> Result<usize, CheckError> {
        let mut n = 0;
        for (k, list) in self.lists.iter().enumerate() {
            let base = self.base(k);
            if list.len() > 0 && !self.placed {
                return err("regions: a region list holds blocks but the window is not placed", base, k);
            }
            let (mut largest, mut largest_aligned) = (0, 0);
            // SAFETY: `visit` checks each block is a live free block before its size is read.
            n += unsafe {
                list.check(&mut |b| {
                    visit(b)?;
                    if b.addr().wrapping_sub(base) >= REGION_BYTES {
                        return err("regions: block outside its region", b.addr(), k);
                    }
                    largest = largest.max(units(b.size()));
                    largest_aligned = largest_aligned.max(aligned_units(b.addr(), b.size()));
                    Ok(())
                })
            }?;
            if self.sizes.leaf(k) < largest || (self.sizes.leaf(k) == 0) != (list.len() == 0) {
                return err(
                    "regions: leaf below the region's largest size, or 0 for a non-empty region (or not 0 for an empty one)",
                    base,
                    self.sizes.leaf(k) as usize,
                );
            }
            if (self.aligned_on && self.aligned.leaf(k) < largest_aligned)
                || (list.len() == 0 && self.aligned.leaf(k) != 0)
            {
                return err(
                    "regions: aligned leaf below what the region's blocks offer at ALIGNED, or not 0 for an empty region",
                    base,
                    self.aligned.leaf(k) as usize,
                );
            }
        }
        if n != self.in_window {
            return err("regions: in_window != blocks in the region lists", self.lo, n);
        }
        self.sizes.check_levels("regions: a mid or top entry of the sizes != largest of the 16 below it")?;
        self.aligned.check_levels(
            "regions: a mid or top entry of the aligned bounds != largest of the 16 below it",
        )?;
        // SAFETY: forwarded; the spill's blocks are checked by `visit` first.
        let spilled = unsafe {
            self.spill.check(&mut |b| {
                visit(b)?;
                if self.region_of(b.addr()).is_some() {
                    return err("regions: spilled block inside the window", b.addr(), self.lo);
                }
                Ok(())
            })
        }?;
        if !self.placed && spilled > 0 {
            return err("regions: spilled blocks but the window is not placed", 0, spilled);
        }
        Ok(n + spilled)
    }
}

// ANCHOR: regions_first_fit
// SAFETY: the window's answer is the lowest-address fitting block of the region lists at or
// above `from` (regions are searched in address order, each only if its largest block is
// big enough, a necessary condition, and each list in address order); the spill's is the
// same among its blocks (AddrTree's contract); the lower of the two is the lowest of all (when
// the spill's lowest block at or above `from` lies above the window's answer, so does its answer).
unsafe impl AddrSearch for AddrRegions {
    #[inline]
    unsafe fn first_fit(&mut self, from: usize, need: usize, align: usize) -> Option<Block> {
        // SAFETY: forwarded.
        let w = unsafe { self.window_first_fit(from, need, align) };
        if self.spill.len() == 0 {
            return w;
        }
        if let Some(w) = w {
            // The spill's answer counts only if it lies below `w`: not when the spill has
            // no block in `from..w` (one descent, stopping at the first such block, where
            // the search itself may walk many blocks, for an over-aligned request).
            // SAFETY: forwarded (the spill holds live free blocks).
            if !unsafe { self.spill.any_in(from, w.addr()) } {
                return Some(w);
            }
        }
        // SAFETY: forwarded.
        let s = unsafe { self.spill.first_fit(from, need, align) };
        match (w, s) {
            (Some(w), Some(s)) => Some(if w.addr() < s.addr() { w } else { s }),
            (w, s) => w.or(s),
        }
    }
}
// ANCHOR_END: regions_first_fit

#[cfg(test)]
mod tests {
    use super::super::block::MIN_BLOCK_BYTES as MIN_BLOCK;
    use super::*;

    #[test]
    fn ge_mask_and_lowest_from() {
        let mut g: [Units; FAN] = [0; FAN];
        g[3] = 5;
        g[9] = 7;
        g[15] = 5;
        assert_eq!(ge_mask(&g, 5), (1 << 3) | (1 << 9) | (1 << 15));
        assert_eq!(ge_mask(&g, 6), 1 << 9);
        assert_eq!(ge_mask(&g, 8), 0);
        assert_eq!(ge_mask(&g, 0), 0xffff);
        assert_eq!(lowest_from(ge_mask(&g, 5), 0), Some(3));
        assert_eq!(lowest_from(ge_mask(&g, 5), 4), Some(9));
        assert_eq!(lowest_from(ge_mask(&g, 5), 10), Some(15));
        assert_eq!(lowest_from(ge_mask(&g, 5), 16), None);
        assert_eq!(lowest_from(u32::MAX, 32), None);
    }

    #[test]
    fn units_round_the_request_up_and_saturate() {
        assert_eq!(units(48), 3);
        assert_eq!(need_units(48), 3);
        assert_eq!(need_units(49), 4);
        assert_eq!(units(usize::MAX), UNITS_MAX);
        assert_eq!(need_units(usize::MAX), UNITS_MAX);
        let mut g = [UNITS_MAX; FAN];
        g[0] = 0;
        assert_eq!(ge_mask(&g, UNITS_MAX), 0xfffe);
        assert_eq!(ge_mask(&g, 0), 0xffff);
    }

    /// `next_region` over leaves set by hand (no blocks: the tree alone), against a scan.
    #[test]
    fn next_region_is_the_first_big_enough_region() {
        let mut r = Bounds::EMPTY;
        let marks =
            [(0, 3), (17, 9), (255, 4), (256, 2), (300, 12), (4000, 30), (4095, 6), (5000, 8), (8191, 1)];
        for &(k, v) in &marks {
            r.raise(k, v);
        }
        let scan = |p: usize, v: Units| (p..REGION_COUNT).find(|&k| r.leaf(k) >= v);
        for p in [
            0, 1, 16, 17, 18, 254, 255, 256, 257, 299, 300, 301, 3999, 4000, 4001, 4095, 4096, 4097, 5000,
            5001, 8191, 8192,
        ] {
            for v in [1, 2, 3, 4, 5, 9, 10, 12, 13, 30, 31] {
                assert_eq!(r.next_region(p, v), scan(p, v), "p {p} v {v}");
            }
        }
        // Lowering recomputes the levels above: region 300 drops to 1, 4000 to 0.
        r.lower(300, 1);
        r.lower(4000, 0);
        assert_eq!(r.next_region(257, 10), None);
        assert_eq!(r.next_region(257, 5), Some(4095));
        assert_eq!(r.next_region(4096, 5), Some(5000));
        assert_eq!(r.next_region(5001, 2), None);
        assert_eq!(r.next_region(5001, 1), Some(8191));
        assert_eq!(r.mid[300 / 256][(300 / 16) % 16], 1);
        assert_eq!(r.top[0][4000 / 256], 6);
    }

    /// Random inserts and removes of blocks spread over 48 MiB (more than the window), the
    /// first at the top: every answer of `first_fit`, at random starting addresses, sizes and
    /// alignments, is the one a scan of the blocks gives, and the checker passes after
    /// every step. The window moves, and blocks stay in the spill.
    #[test]
    fn regions_and_spill_answer_as_a_scan() {
        use super::super::engine::fit_start;
        extern crate alloc;
        use alloc::vec;
        use alloc::vec::Vec;

        const SLOT: usize = 64 << 10;
        const SLOTS: usize = 768;
        let mut buf = vec![0u8; SLOTS * SLOT + 64];
        // Header addresses `8 mod 16`, as in a chunk.
        let start = buf.as_mut_ptr();
        let base = start.addr().next_multiple_of(16) + BLOCK_ALIGN - size_of::<usize>();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as usize
        };
        let mut r = AddrRegions::EMPTY;
        let mut live: Vec<Option<(Block, usize)>> = vec![None; SLOTS];
        let (mut first_lo, mut moved, mut spilled) = (None, false, 0);
        for step in 0..4000 {
            // Early on mostly inserts from the top down (as chunks from `mmap` come), later
            // anywhere.
            let slot = if step < 400 { SLOTS - 1 - (step * 7 % 400) } else { next() % SLOTS };
            // SAFETY: blocks lie in their own slots of the buffer, which outlives the index;
            // only free blocks are in the index and their headers are written first.
            unsafe {
                match live[slot].take() {
                    Some((b, size)) => r.remove(b, size),
                    None => {
                        // Half of the blocks small, at any of the four residues modulo 64, so
                        // that aligned requests meet regions of blocks they cannot use.
                        let span = if next() % 2 == 0 { 256 } else { SLOT - MIN_BLOCK - 80 };
                        let size = (MIN_BLOCK + next() % span) & !(BLOCK_ALIGN - 1);
                        let off = next() % 4 * BLOCK_ALIGN;
                        let b = Block::at(start.with_addr(base + slot * SLOT + off));
                        b.write_free(size);
                        r.insert(b, size, None);
                        live[slot] = Some((b, size));
                    }
                }
                r.check(&mut |_| Ok(())).unwrap();
            }
            first_lo.get_or_insert(r.lo);
            moved |= first_lo != Some(r.lo);
            spilled = spilled.max(r.spill.len());
            for _ in 0..4 {
                let from = if next() % 2 == 0 { 0 } else { base + next() % (SLOTS * SLOT) };
                let need = if next() % 2 == 0 { MIN_BLOCK + next() % 128 } else { MIN_BLOCK + next() % SLOT };
                let need = need & !(BLOCK_ALIGN - 1);
                let align = [BLOCK_ALIGN, 32, 64, 128, 4096][next() % 5];
                // SAFETY: the index and `live` hold the same free blocks, laid out in their
                // slots of the buffer, which outlives them.
                let (got, want) = unsafe {
                    let want = live
                        .iter()
                        .flatten()
                        .map(|&(b, _)| b)
                        .find(|&b| b.addr() >= from && fit_start(b, need, align).is_some());
                    (r.first_fit(from, need, align), want)
                };
                assert_eq!(
                    got.map(Block::addr),
                    want.map(Block::addr),
                    "step {step} from {from:x} need {need}"
                );
            }
        }
        assert!(moved, "the window never moved");
        assert!(spilled > 64, "at most {spilled} blocks in the spill");
        assert!(r.in_window > 100, "{} blocks in the window", r.in_window);
    }

    /// One block far above the others (an arena's first chunk, above the stacks of threads
    /// started after it): when the blocks below fill the spill, the window moves over them,
    /// not over the whole span (nor from the lowest block), and leaves room below for the
    /// blocks that come later, so that only the outlier stays in the spill.
    #[test]
    fn rewindow_covers_the_densest_span() {
        extern crate alloc;
        use alloc::vec;

        const MIB: usize = 1 << 20;
        let mut buf = vec![0u8; 72 * MIB + 64];
        let start = buf.as_mut_ptr();
        let base = start.addr().next_multiple_of(16) + BLOCK_ALIGN - HEADER_BYTES;
        let mut r = AddrRegions::EMPTY;
        let mut lowest = usize::MAX;
        let mut put = |r: &mut AddrRegions, off: usize| {
            // SAFETY: `off + 256` lies inside the buffer, which outlives the index; only free
            // blocks with their headers written enter it.
            unsafe {
                let b = Block::at(start.with_addr(base + off));
                b.write_free(256);
                r.insert(b, 256, None);
            }
            lowest = lowest.min(base + off);
        };
        put(&mut r, 72 * MIB - 4096);
        // 64 KiB apart, downwards from 40 MiB below it: the spill, until the window moves.
        for i in 0..100 {
            put(&mut r, 32 * MIB - i * (64 << 10));
        }
        // Then 8 more, 1 MiB apart, below those.
        for i in 1..=8 {
            put(&mut r, 32 * MIB - 100 * (64 << 10) - i * MIB);
        }
        // SAFETY: the index holds the live free blocks written above.
        unsafe {
            r.check(&mut |_| Ok(())).unwrap();
            assert_eq!(r.first_fit(0, 256, BLOCK_ALIGN).map(Block::addr), Some(lowest));
        }
        assert_eq!((r.spill.len(), r.in_window), (1, 108));
    }

    /// `aligned_units` against `fit_start` on blocks at each residue modulo 256: a request
    /// aligned for `ALIGNED` fits exactly when the bound admits it, and one aligned for more
    /// only if it does.
    #[test]
    fn aligned_units_bound_fit_start() {
        use super::super::engine::fit_start;
        extern crate alloc;
        use alloc::vec;

        let mut buf = vec![0u8; 4096];
        let start = buf.as_mut_ptr();
        let base = start.addr().next_multiple_of(256) + BLOCK_ALIGN - HEADER_BYTES;
        for off in (0..256).step_by(BLOCK_ALIGN) {
            for size in (MIN_BLOCK..=1024).step_by(BLOCK_ALIGN) {
                // SAFETY: the block lies inside the buffer (off + size <= 1280 < 4096 - 256),
                // its header at 8 modulo 16 as in a chunk.
                let b = unsafe { Block::at(start.with_addr(base + off)) };
                // SAFETY: as above.
                unsafe { b.write_free(size) };
                let bound = aligned_units(b.addr(), size);
                assert!(bound <= units(size));
                for need in (MIN_BLOCK..=1024).step_by(BLOCK_ALIGN) {
                    for align in [ALIGNED, 128, 256] {
                        // SAFETY: `b`'s header was just written.
                        let fits = unsafe { fit_start(b, need, align) }.is_some();
                        let admitted = bound >= need_units(need);
                        assert!(!fits || admitted, "off {off} size {size} need {need} align {align}");
                        if align == ALIGNED {
                            assert_eq!(fits, admitted, "off {off} size {size} need {need}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn index_size() {
        assert!(size_of::<AddrRegions>() <= 165 * 1024, "{}", size_of::<AddrRegions>());
    }
}
