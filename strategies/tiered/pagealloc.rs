//! The page allocator: a bitmap over every runtime page plus summaries, lowest address first.
//!
//! Go original: `pageAlloc` in `runtime/mpagealloc.go` (and `mpallocbits.go`). Go keeps one
//! bitmap over the whole address space and a 5-level radix tree of summaries. Here the tree
//! has three levels that follow the arenas: a summary per arena, a summary per 512-page
//! chunk (Go's `pallocChunkPages`), and the bits. Arenas are kept sorted by address, and a run
//! may cross from one arena into the next when they are adjacent parts of one reservation
//! (see "Reservations"), so requests larger than an arena are served as well.
//!
//! # Reservations
//! A run's pointers derive from the base of the arena it starts in (mheap.rs, "Sharing and
//! provenance"), so a run may only cover memory of the allocation that base came from: one
//! `reserve` call of the page source. `grow` reserves all the arenas a request needs in one
//! call and marks each arena after the first of a reservation `joins_prev`; `find` joins a
//! free run across the boundary into an arena only when it is set. Two reservations that
//! happen to be adjacent (`Fixed` hands out ranges in order; `Mmap` may too) are never
//! joined: to the abstract machine they are two allocations, even where the source carves
//! them from one region. A request larger than what is left in one reservation then grows
//! the heap instead (with one reservation big enough for it), as Go's `grow` does for a
//! request larger than the free space at the end of the heap.
//!
//! # Glossary
//! - *summary* (Go's `pallocSum`): for a range of pages, `start` = free pages at its
//!   beginning, `end` = free pages at its end, `max` = the longest free run inside it.
//!   Summaries of neighbours merge: `max(a.max, b.max, a.end + b.start)`.
//! - `alloc` bits: 1 = page in use (by a span). `scav` bits: 1 = page is Prepared (given
//!   back to the OS, or never used); 0 = Ready.
//!
//! # Alloc path (`find`, then `mark`)
//! 1. Walk the arenas in address order, carrying the free run that ends at the previous
//!    arena's end when the next arena continues it in one reservation (`joins_prev`); stop at the first arena where the carried
//!    run plus `start` fits, or whose `max` fits.
//! 2. Inside that arena, the same walk over its 16 chunk summaries, then over the bits.
//! 3. Mark the run in use, make its scavenged pages Ready (`PageSource::used`), recompute
//!    the summaries of the touched chunks and arenas.
//!
//! # Free path
//! Clear the bits, recompute summaries. Freed pages stay Ready: reuse needs no system call
//! until the scavenger (`scavenger.rs`) gives them back.
//!
//! # Invariants (checked by `Tiered::check`)
//! - every chunk summary equals the one recomputed from the bits; every arena summary equals
//!   the merge of its chunk summaries;
//! - `free_ready_pages == #(pages with alloc = 0 and scav = 0)`,
//!   `inuse_pages == #(pages with alloc = 1)`; an in-use page is never scavenged.

use super::arena::{ARENA_PAGES, Arena};

/// Pages per summary chunk (Go's `pallocChunkPages`).
pub const CHUNK_PAGES: usize = 512;
/// Chunks per arena.
pub const CHUNKS_PER_ARENA: usize = ARENA_PAGES / CHUNK_PAGES;
/// Bitmap words per chunk.
const CHUNK_WORDS: usize = CHUNK_PAGES / 64;

// ANCHOR: summary
/// Free-run summary of a range of pages (Go's `pallocSum`, unpacked).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Free pages at the start of the range.
    pub start: u32,
    /// Longest free run in the range.
    pub max: u32,
    /// Free pages at the end of the range.
    pub end: u32,
}
// ANCHOR_END: summary

impl Summary {
    /// A wholly free chunk.
    pub const ALL_FREE_CHUNK: Summary =
        Summary { start: CHUNK_PAGES as u32, max: CHUNK_PAGES as u32, end: CHUNK_PAGES as u32 };
    /// A wholly free arena.
    pub const ALL_FREE_ARENA: Summary =
        Summary { start: ARENA_PAGES as u32, max: ARENA_PAGES as u32, end: ARENA_PAGES as u32 };

    /// Merges summaries of consecutive ranges of `len` pages each (Go's `mergeSummaries`).
    fn merge(parts: &[Summary], len: u32) -> Summary {
        let mut acc = parts[0];
        let mut acc_len = len;
        for p in &parts[1..] {
            let start = if acc.start == acc_len { acc_len + p.start } else { acc.start };
            let end = if p.end == len { p.end + acc.end } else { p.end };
            let max = acc.max.max(p.max).max(acc.end + p.start);
            acc = Summary { start, max, end };
            acc_len += len;
        }
        acc
    }
}

/// Page-allocator state of one arena (lives inside [`Arena`]).
#[repr(C)]
pub struct ArenaPages {
    /// 1 = page in use.
    pub alloc: [u64; ARENA_PAGES / 64],
    /// 1 = page Prepared (scavenged or never used); 0 = Ready.
    pub scav: [u64; ARENA_PAGES / 64],
    /// Summary of each chunk.
    pub chunk_sum: [Summary; CHUNKS_PER_ARENA],
    /// Summary of the arena.
    pub sum: Summary,
}

/// Summary of 512 pages from their bits (1 = used).
///
/// Every span a heap makes or frees recomputes its chunk's summary (`ArenaPages::mark`),
/// so the longest run is found cheaply: `start` and `end` first, then a word with both used
/// and free pages is walked run by run (`runs_in_word`) only if it can hold a free run
/// longer than the longest found so far (`has_free_run_over`, a few shifts). In a chunk
/// filled lowest page first the free end is the longest run, and the holes below it are
/// then skipped. (Go's `pallocBits.summarize` skips words the same way.)
pub fn chunk_summary(words: &[u64]) -> Summary {
    let mut start = 0u32;
    for &w in words {
        if w == 0 {
            start += 64;
        } else {
            start += w.trailing_zeros();
            break;
        }
    }
    let mut end = 0u32;
    for &w in words.iter().rev() {
        if w == 0 {
            end += 64;
        } else {
            end += w.leading_zeros();
            break;
        }
    }
    let (mut max, mut cur) = (start.max(end), 0u32);
    for &w in words {
        if w == 0 {
            cur += 64;
        } else if w == !0 {
            max = max.max(cur);
            cur = 0;
        } else {
            // The run that ends in the word's low bits, then the runs inside it; its top run
            // carries on into the next word.
            max = max.max(cur + w.trailing_zeros());
            if has_free_run_over(w, max) {
                max = max.max(runs_in_word(w, 0).0);
            }
            cur = w.leading_zeros();
        }
    }
    Summary { start, max: max.max(cur), end }
}

/// Whether word `w` (1 = used) has more than `m` free pages in a row inside it.
#[inline]
fn has_free_run_over(w: u64, m: u32) -> bool {
    if m >= 64 {
        return false;
    }
    // Bit `i` of `y` is set while pages `i ..= i + k` are all free; each round extends the
    // run by `s <= k + 1` (the two runs tested overlap or touch), until `k == m`.
    let (mut y, mut k) = (!w, 0u32);
    while k < m && y != 0 {
        let s = (m - k).min(k + 1);
        y &= y >> s;
        k += s;
    }
    y != 0
}

/// For a word with both used and free pages: the longest free run that ends inside it
/// (counting `carry` free pages before it) and the free run at its top end.
fn runs_in_word(w: u64, carry: u32) -> (u32, u32) {
    let tz = w.trailing_zeros();
    let mut max = carry + tz;
    let mut pos = tz; // bit `pos` is used
    loop {
        let ones = (!(w >> pos)).trailing_zeros();
        pos += ones;
        if pos >= 64 {
            return (max, 0);
        }
        let rest = w >> pos; // bit 0 is free
        if rest == 0 {
            return (max, 64 - pos);
        }
        let z = rest.trailing_zeros();
        max = max.max(z);
        pos += z;
    }
}

/// The free run of a chunk's bits `words` (1 = used) that holds page `p`, as pages
/// `l .. r` of the chunk; `l == r == p` when page `p` is used. Reads the words from `p`'s
/// outwards, stopping at the first used page on each side.
fn free_run_around(words: &[u64], p: usize) -> (usize, usize) {
    let mut l = p;
    while l > 0 {
        // Page `l - 1` moved to bit 63: the leading zeros are the free pages below `l` in
        // its word (at most `(l - 1) % 64 + 1` of them count).
        let top = (l - 1) % 64;
        let free = (words[(l - 1) / 64] << (63 - top)).leading_zeros() as usize;
        if free <= top {
            l -= free;
            break;
        }
        l -= top + 1;
    }
    let mut r = p;
    while r < words.len() * 64 {
        let (w, b) = (r / 64, r % 64);
        let free = (words[w] >> b).trailing_zeros() as usize;
        if free < 64 - b {
            r += free;
            break;
        }
        r += 64 - b;
    }
    if r == p { (p, p) } else { (l, r) }
}

/// First free run of `n` pages in `words` (1 = used), as a page offset.
fn find_in_bits(words: &[u64], n: usize) -> Option<usize> {
    let (mut run, mut start) = (0usize, 0usize);
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            if run == 0 {
                start = i * 64;
            }
            run += 64;
            if run >= n {
                return Some(start);
            }
            continue;
        }
        let mut b = 0;
        while b < 64 {
            let rest = w >> b;
            if rest & 1 == 1 {
                run = 0;
                // Skip the whole used stretch at once.
                b += (!rest).trailing_zeros().min(64 - b as u32) as usize;
                continue;
            }
            if run == 0 {
                start = i * 64 + b;
            }
            // Free stretch: up to the next used bit.
            let free = rest.trailing_zeros().min(64 - b as u32) as usize;
            run += free;
            if run >= n {
                return Some(start);
            }
            b += free;
        }
    }
    None
}

impl ArenaPages {
    fn chunk_words(&self, c: usize) -> &[u64] {
        &self.alloc[c * CHUNK_WORDS..(c + 1) * CHUNK_WORDS]
    }

    // ANCHOR: arena_find
    /// First free run of `n` pages in this arena, as a page index.
    pub fn find(&self, n: usize) -> Option<usize> {
        if (self.sum.max as usize) < n {
            return None;
        }
        let (mut run, mut start) = (0usize, 0usize);
        for c in 0..CHUNKS_PER_ARENA {
            let s = self.chunk_sum[c];
            if run > 0 && run + s.start as usize >= n {
                return Some(start);
            }
            if s.max as usize >= n {
                return find_in_bits(self.chunk_words(c), n).map(|p| c * CHUNK_PAGES + p);
            }
            if s.start as usize == CHUNK_PAGES {
                if run == 0 {
                    start = c * CHUNK_PAGES;
                }
                run += CHUNK_PAGES;
                if run >= n {
                    return Some(start);
                }
            } else {
                run = s.end as usize;
                start = (c + 1) * CHUNK_PAGES - run;
            }
        }
        None
    }
    // ANCHOR_END: arena_find

    // ANCHOR: mark
    /// Sets (`used`) or clears the alloc bits of `first .. first + n` and updates summaries.
    ///
    /// A run inside one chunk updates the chunk's summary from the free run around it
    /// (`free_run_around`, a few words) instead of recomputing it from the 8 words
    /// (`chunk_summary`): a free joins the run to its free neighbours, so the new longest
    /// run is the old one or the joined run, and only the start and end runs it touches
    /// change; a use of free pages splits one free run, which leaves the longest run as it
    /// was unless the split run was that long (then the summary is recomputed). The
    /// checker recomputes every summary from the bits (`recomputed`).
    pub fn mark(&mut self, first: usize, n: usize, used: bool) {
        let c = first / CHUNK_PAGES;
        if n == 0 || (first + n - 1) / CHUNK_PAGES != c {
            set_bits(&mut self.alloc, first, n, used);
            self.update_summaries(first, n);
            return;
        }
        let (f, old) = (first - c * CHUNK_PAGES, self.chunk_sum[c]);
        let s = if used {
            // The free run `l .. r` the pages are taken from (all free, else recompute).
            let (l, r) = free_run_around(self.chunk_words(c), f);
            set_bits(&mut self.alloc, first, n, true);
            if r < f + n || (r - l) as u32 >= old.max {
                chunk_summary(self.chunk_words(c))
            } else {
                Summary {
                    start: if l == 0 { f as u32 } else { old.start },
                    max: old.max,
                    end: if r == CHUNK_PAGES { (CHUNK_PAGES - f - n) as u32 } else { old.end },
                }
            }
        } else {
            set_bits(&mut self.alloc, first, n, false);
            let (l, r) = free_run_around(self.chunk_words(c), f);
            Summary {
                start: if l == 0 { r as u32 } else { old.start },
                max: old.max.max((r - l) as u32),
                end: if r == CHUNK_PAGES { (CHUNK_PAGES - l) as u32 } else { old.end },
            }
        };
        if s != old {
            self.chunk_sum[c] = s;
            self.sum = Summary::merge(&self.chunk_sum, CHUNK_PAGES as u32);
        }
    }
    // ANCHOR_END: mark

    /// Recomputes the summaries of the chunks of pages `first .. first + n` and, if one
    /// changed, the arena's (after the alloc bits were changed directly).
    pub fn update_summaries(&mut self, first: usize, n: usize) {
        let c0 = first / CHUNK_PAGES;
        let c1 = (first + n - 1) / CHUNK_PAGES;
        let mut changed = false;
        for c in c0..=c1 {
            let s = chunk_summary(self.chunk_words(c));
            changed |= s != self.chunk_sum[c];
            self.chunk_sum[c] = s;
        }
        // The arena's summary is the merge of the chunks' (an invariant the checker tests):
        // unchanged chunk summaries leave it as it is (a run taken from or given back to a
        // hole that is neither a chunk's longest run nor at its ends).
        if changed {
            self.sum = Summary::merge(&self.chunk_sum, CHUNK_PAGES as u32);
        }
    }

    /// The summary of the arena recomputed from scratch (for the checker).
    pub fn recomputed(&self) -> ([Summary; CHUNKS_PER_ARENA], Summary) {
        let chunks: [Summary; CHUNKS_PER_ARENA] =
            core::array::from_fn(|c| chunk_summary(self.chunk_words(c)));
        (chunks, Summary::merge(&chunks, CHUNK_PAGES as u32))
    }

    /// Whether page `p` is in use.
    #[inline]
    pub fn is_used(&self, p: usize) -> bool {
        self.alloc[p / 64] >> (p % 64) & 1 == 1
    }

    /// Whether page `p` is scavenged (Prepared).
    #[inline]
    pub fn is_scav(&self, p: usize) -> bool {
        self.scav[p / 64] >> (p % 64) & 1 == 1
    }
}

/// Sets or clears bits `first .. first + n` of `words`.
pub fn set_bits(words: &mut [u64], first: usize, n: usize, value: bool) {
    let mut p = first;
    let end = first + n;
    while p < end {
        let w = p / 64;
        let lo = p % 64;
        let hi = (end - w * 64).min(64);
        let mask = if hi - lo == 64 { !0 } else { ((1u64 << (hi - lo)) - 1) << lo };
        if value {
            words[w] |= mask;
        } else {
            words[w] &= !mask;
        }
        p = w * 64 + hi;
    }
}

/// A found run: the arena (by position in the sorted list) and page where it starts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Position of the first arena in the sorted arena list.
    pub arena: usize,
    /// First page inside that arena.
    pub page: usize,
}

// ANCHOR: find
/// Lowest-address free run of `n` pages over arenas sorted by address; runs may cross into
/// an adjacent arena of the same reservation (`joins_prev`, see "Reservations"), never into
/// one of another.
///
/// # Safety
/// `arenas` are initialised arenas of one heap, whose lock the caller holds.
pub unsafe fn find(arenas: &[*mut Arena], n: usize) -> Option<Run> {
    let (mut run, mut run_start) = (0usize, Run { arena: 0, page: 0 });
    let mut prev_end = 0usize;
    for (i, &a) in arenas.iter().enumerate() {
        // SAFETY: the caller passes initialised arena metadata, which lives as long as the
        // heap; only shared references are made (see "Sharing" in arena.rs).
        let a = unsafe { &*a };
        // SAFETY: the caller holds the heap lock, so nobody changes the pages meanwhile.
        let pages = unsafe { a.pages() };
        if !a.joins_prev() || a.base_addr() != prev_end {
            run = 0;
        }
        prev_end = a.end();
        let s = pages.sum;
        if run > 0 && run + s.start as usize >= n {
            return Some(run_start);
        }
        if n <= ARENA_PAGES
            && let Some(p) = pages.find(n)
        {
            return Some(Run { arena: i, page: p });
        }
        if s.start as usize == ARENA_PAGES {
            if run == 0 {
                run_start = Run { arena: i, page: 0 };
            }
            run += ARENA_PAGES;
            if run >= n {
                return Some(run_start);
            }
        } else {
            run = s.end as usize;
            run_start = Run { arena: i, page: ARENA_PAGES - run };
        }
    }
    None
}
// ANCHOR_END: find

// ANCHOR: find_ready_best
/// Best fit among *Ready* free runs: the shortest run of at least `n` pages whose pages are
/// all free and not scavenged (alloc and scav bits clear), inside one arena; the lowest
/// address among runs of that length. `None` if no arena has one (the caller then takes
/// `find`'s first fit, which may cover scavenged pages).
///
/// Why (issue 17): a large request served from scavenged pages faults every OS page in again,
/// and the kernel places new reservations below the old ones, so `find`'s lowest-address
/// first fit prefers a fresh arena over Ready pages above it, which the scavenger (highest
/// first) then gives back. Taking a Ready run first reuses resident memory; taking the
/// shortest keeps the long runs whole for the next large request (the buffers of a program
/// that replaces large blocks of mixed sizes). Runs crossing arenas are left to `find`.
/// Cost: one pass over the bitmap words (128 per arena) of the arenas whose longest free run
/// is long enough, under the heap lock; `MHeap::alloc_span` calls it for large runs only.
///
/// # Safety
/// As for [`find`].
pub unsafe fn find_ready_best(arenas: &[*mut Arena], n: usize) -> Option<Run> {
    // (length, arena, page) of the best run so far.
    let mut best: Option<(usize, usize, usize)> = None;
    for (i, &a) in arenas.iter().enumerate() {
        // SAFETY: as in `find`: initialised arenas of one heap, shared references only.
        let a = unsafe { &*a };
        // SAFETY: the caller holds the heap lock.
        let pages = unsafe { a.pages() };
        if (pages.sum.max as usize) < n {
            continue;
        }
        let mut consider = |start: usize, len: usize| {
            if len >= n && best.is_none_or(|(b, _, _)| len < b) {
                best = Some((len, i, start));
            }
        };
        let (mut start, mut len) = (0usize, 0usize);
        for w in 0..ARENA_PAGES / 64 {
            let busy = pages.alloc[w] | pages.scav[w];
            if busy == 0 {
                if len == 0 {
                    start = w * 64;
                }
                len += 64;
                continue;
            }
            let mut b = 0u32;
            while b < 64 {
                let rest = busy >> b;
                if rest & 1 == 1 {
                    consider(start, len);
                    len = 0;
                    b += (!rest).trailing_zeros().min(64 - b);
                    continue;
                }
                if len == 0 {
                    start = w * 64 + b as usize;
                }
                let free = rest.trailing_zeros().min(64 - b);
                len += free as usize;
                b += free;
            }
        }
        consider(start, len);
        if best.is_some_and(|(b, _, _)| b == n) {
            break;
        }
    }
    best.map(|(_, arena, page)| Run { arena, page })
}
// ANCHOR_END: find_ready_best

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of the tests' xorshift generator (Marsaglia's 13, 7, 17).
    fn xorshift(x: &mut u64) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
    }

    #[test]
    fn summary_of_bits() {
        let mut w = [0u64; CHUNK_WORDS];
        assert_eq!(chunk_summary(&w), Summary::ALL_FREE_CHUNK);
        set_bits(&mut w, 3, 10, true);
        set_bits(&mut w, 200, 1, true);
        let s = chunk_summary(&w);
        assert_eq!(s, Summary { start: 3, max: 311, end: 311 });
        assert_eq!(find_in_bits(&w, 3), Some(0));
        assert_eq!(find_in_bits(&w, 4), Some(13));
        assert_eq!(find_in_bits(&w, 188), Some(201));
        assert_eq!(find_in_bits(&w, 312), None);
    }

    /// The word-at-a-time summary equals a bit-by-bit count on random bitmaps.
    #[test]
    fn summary_matches_bit_by_bit() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..2000 {
            let mut w = [0u64; CHUNK_WORDS];
            for v in w.iter_mut() {
                xorshift(&mut x);
                // Free words, used words, sparse and dense mixed words, and words with one
                // free run of random length and place.
                *v = match x % 7 {
                    0 => 0,
                    1 => !0,
                    2 | 3 => x & (x >> 3),
                    4 => x | (x >> 3),
                    5 => x,
                    _ => !((!0u64 >> (x >> 58)) << (x >> 52 & 63)),
                };
            }
            let bit = |p: usize| w[p / 64] >> (p % 64) & 1 == 1;
            let start = (0..CHUNK_PAGES).take_while(|&p| !bit(p)).count() as u32;
            let end = (0..CHUNK_PAGES).rev().take_while(|&p| !bit(p)).count() as u32;
            let (mut max, mut cur) = (0u32, 0u32);
            for p in 0..CHUNK_PAGES {
                cur = if bit(p) { 0 } else { cur + 1 };
                max = max.max(cur);
            }
            assert_eq!(chunk_summary(&w), Summary { start, max, end }, "{w:x?}");
        }
    }

    /// `has_free_run_over` against a bit-by-bit count, every bound, random words.
    #[test]
    fn free_run_test_matches_bit_by_bit() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for r in 0..3000 {
            xorshift(&mut x);
            let w = match r % 4 {
                0 => x,
                1 => x | (x >> 5),
                2 => x & (x >> 2),
                _ => !((!0u64 >> (x >> 58)) << (x >> 52 & 63)),
            };
            let (mut longest, mut cur) = (0u32, 0u32);
            for b in 0..64 {
                cur = if w >> b & 1 == 1 { 0 } else { cur + 1 };
                longest = longest.max(cur);
            }
            for m in 0..=70 {
                assert_eq!(has_free_run_over(w, m), longest > m, "{w:#x} {m}");
            }
        }
    }

    /// `mark`'s summaries, updated from the run around the marked pages, equal the ones
    /// recomputed from the bits after every step of random uses and frees (runs inside a
    /// chunk and across chunks, of free, used and mixed pages).
    #[test]
    fn mark_keeps_summaries_exact() {
        let mut pages = ArenaPages {
            alloc: [0; ARENA_PAGES / 64],
            scav: [0; ARENA_PAGES / 64],
            chunk_sum: [Summary::ALL_FREE_CHUNK; CHUNKS_PER_ARENA],
            sum: Summary::ALL_FREE_ARENA,
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000 {
            xorshift(&mut x);
            // Mostly the first 3 chunks, so that runs meet and split often.
            let first = (x % (3 * CHUNK_PAGES as u64)) as usize;
            let n = match x >> 60 {
                0 => 1 + (x >> 20) as usize % 700,
                1..=3 => 1 + (x >> 20) as usize % 64,
                _ => 1 + (x >> 20) as usize % 4,
            };
            let used = match x >> 40 & 3 {
                0 => !pages.is_used(first),
                1 => true,
                _ => false,
            };
            pages.mark(first, n, used);
            let (chunks, sum) = pages.recomputed();
            assert_eq!(pages.chunk_sum, chunks, "step {step}: mark({first}, {n}, {used})");
            assert_eq!(pages.sum, sum, "step {step}");
        }
    }

    /// The free run around a page, against a bit-by-bit walk.
    #[test]
    fn free_run_around_matches_bit_by_bit() {
        let mut x = 0x1234_5678_9abc_def1u64;
        for _ in 0..500 {
            let mut w = [0u64; CHUNK_WORDS];
            for v in w.iter_mut() {
                xorshift(&mut x);
                *v = match x % 4 {
                    0 => 0,
                    1 => x & (x >> 3) & (x >> 7),
                    2 => x,
                    _ => !((!0u64 >> (x >> 58)) << (x >> 52 & 63)),
                };
            }
            let bit = |p: usize| w[p / 64] >> (p % 64) & 1 == 1;
            for p in 0..CHUNK_PAGES {
                let want = if bit(p) {
                    (p, p)
                } else {
                    let l = (0..p).rev().take_while(|&q| !bit(q)).last().unwrap_or(p);
                    let r = (p..CHUNK_PAGES).take_while(|&q| !bit(q)).last().unwrap() + 1;
                    (l, r)
                };
                assert_eq!(free_run_around(&w, p), want, "page {p} of {w:x?}");
            }
        }
    }

    #[test]
    fn merge_summaries() {
        let a = Summary { start: 1, max: 5, end: 4 };
        let b = Summary { start: 3, max: 3, end: 2 };
        assert_eq!(Summary::merge(&[a, b], 10), Summary { start: 1, max: 7, end: 2 });
        let full = Summary { start: 10, max: 10, end: 10 };
        assert_eq!(Summary::merge(&[full, b], 10), Summary { start: 13, max: 13, end: 2 });
    }
}
