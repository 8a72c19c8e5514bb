//! What every workload shares: a seeded generator, checked blocks, checksums, memory readings.
//!
//! A [`Block`] is one allocation made through the global allocator with an explicit
//! `Layout`. It is stamped when made (a tag at its head and the tag's complement at its
//! tail, or a byte pattern for blocks under 16 bytes) and verified when freed, so an
//! allocator that hands out overlapping blocks, or writes into a live one, is caught as a
//! failed check instead of finishing fast.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// A workload's verdict on itself: `Err` names the broken check.
pub type Check<T = ()> = Result<T, String>;

/// xoshiro-like 64-bit generator (splitmix64 steps): small, fast and seedable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` and a stream number (thread, round...).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d);
        r.next_u64();
        r
    }
    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
    /// Uniform in `lo..=hi`.
    #[inline]
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// True with probability `1/n`.
    #[inline]
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    /// Log-uniform in `lo..=hi`.
    pub fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let (l, h) = ((lo as f64).ln(), (hi as f64 + 1.0).ln());
        ((l + (h - l) * self.unit()).exp() as usize).clamp(lo, hi)
    }
}

/// FNV-1a over bytes, folded into a running checksum.
#[inline]
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The FNV-1a starting value.
pub const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

/// Mixes a value into an order-independent checksum (sum of mixed values).
#[inline]
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}

/// Stamps `b` with `tag`: head and tail words, or a byte pattern for short blocks.
#[inline]
pub fn stamp(b: &mut [u8], tag: u64) {
    let n = b.len();
    if n >= 16 {
        b[..8].copy_from_slice(&tag.to_le_bytes());
        b[n - 8..].copy_from_slice(&(!tag).to_le_bytes());
    } else {
        for (i, x) in b.iter_mut().enumerate() {
            *x = (tag as u8).wrapping_add((i as u8).wrapping_mul(31));
        }
    }
}

/// Whether `b` still carries the stamp of `tag`.
#[inline]
pub fn stamped(b: &[u8], tag: u64) -> bool {
    let n = b.len();
    if n >= 16 {
        b[..8] == tag.to_le_bytes() && b[n - 8..] == (!tag).to_le_bytes()
    } else {
        b.iter().enumerate().all(|(i, &x)| x == (tag as u8).wrapping_add((i as u8).wrapping_mul(31)))
    }
}

/// Fills all of `b` with a pattern of `tag` (for workloads that touch every byte).
pub fn fill_all(b: &mut [u8], tag: u64) {
    let t = tag as u8;
    for (i, x) in b.iter_mut().enumerate() {
        *x = t ^ (i as u8);
    }
}

/// Whether all of `b` holds the pattern of [`fill_all`].
pub fn filled_all(b: &[u8], tag: u64) -> bool {
    let t = tag as u8;
    b.iter().enumerate().all(|(i, &x)| x == t ^ (i as u8))
}

/// A stamped allocation made with an explicit layout through the global allocator.
pub struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u64,
}

// SAFETY: a Block owns its memory exclusively; the global allocator accepts frees from any
// thread.
unsafe impl Send for Block {}

impl Block {
    /// Allocates `size` bytes (`size > 0`) aligned to `align` and stamps them with `tag`.
    #[inline]
    pub fn new(size: usize, align: usize, tag: u64) -> Check<Block> {
        let layout = Layout::from_size_align(size, align).map_err(|e| format!("bad layout: {e}"))?;
        // SAFETY: the size is non-zero (callers never ask for 0).
        let p = unsafe { alloc::alloc(layout) };
        let mut b = Block::own(p, layout, tag)?;
        stamp(b.bytes_mut(), tag);
        Ok(b)
    }

    /// Allocates zeroed memory, checks it is zero, then stamps it.
    pub fn zeroed(size: usize, align: usize, tag: u64) -> Check<Block> {
        let layout = Layout::from_size_align(size, align).map_err(|e| format!("bad layout: {e}"))?;
        // SAFETY: the size is non-zero.
        let p = unsafe { alloc::alloc_zeroed(layout) };
        let mut b = Block::own(p, layout, tag)?;
        if b.bytes().iter().step_by(61).any(|&x| x != 0) {
            return Err(format!("alloc_zeroed returned non-zero memory at {p:p} ({size} B)"));
        }
        stamp(b.bytes_mut(), tag);
        Ok(b)
    }

    fn own(p: *mut u8, layout: Layout, tag: u64) -> Check<Block> {
        let ptr = NonNull::new(p).ok_or_else(|| format!("allocation of {} B failed", layout.size()))?;
        if !(p as usize).is_multiple_of(layout.align()) {
            return Err(format!("block {p:p} is not aligned to {}", layout.align()));
        }
        Ok(Block { ptr, layout, tag })
    }

    /// The block's bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the block is live and valid for `layout.size()` bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// The block's bytes, writable.
    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the block is live, valid for `layout.size()` bytes, and owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }

    /// Bytes requested.
    #[inline]
    pub fn size(&self) -> usize {
        self.layout.size()
    }

    /// The tag it was stamped with.
    #[inline]
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Checks the stamp.
    #[inline]
    pub fn verify(&self) -> Check {
        if stamped(self.bytes(), self.tag) {
            Ok(())
        } else {
            Err(format!(
                "block {:p} ({} B, tag {:#x}) was overwritten while live",
                self.ptr,
                self.size(),
                self.tag
            ))
        }
    }

    /// Checks the stamp and frees the block.
    #[inline]
    pub fn free(self) -> Check {
        if let Err(e) = self.verify() {
            // Leak it: the allocator's own data next to it may be damaged too.
            std::mem::forget(self);
            return Err(e);
        }
        Ok(())
    }

    /// Resizes through the global allocator's realloc, checking the kept prefix.
    pub fn realloc(&mut self, new_size: usize) -> Check {
        self.verify()?;
        // The first bytes, kept on the stack (no allocation inside the measured work).
        let keep_old = 8.min(self.size());
        let mut head = [0u8; 8];
        head[..keep_old].copy_from_slice(&self.bytes()[..keep_old]);
        // SAFETY: the block is live for `layout`; `new_size > 0` is valid for its alignment.
        let p = unsafe { alloc::realloc(self.ptr.as_ptr(), self.layout, new_size) };
        let layout = Layout::from_size_align(new_size, self.layout.align()).map_err(|e| e.to_string())?;
        let Some(ptr) = NonNull::new(p) else {
            return Err(format!("realloc to {new_size} B failed"));
        };
        self.ptr = ptr;
        self.layout = layout;
        let keep = keep_old.min(new_size);
        if self.bytes()[..keep] != head[..keep] {
            return Err(format!("realloc to {new_size} B lost the contents of {p:p}"));
        }
        let tag = self.tag;
        stamp(self.bytes_mut(), tag);
        Ok(())
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: the block is live and was allocated with `layout`.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Verifies and frees every block.
pub fn free_all(blocks: impl IntoIterator<Item = Block>) -> Check {
    blocks.into_iter().try_for_each(Block::free)
}

/// Resident set size now, in bytes (Linux `/proc/self/statm`), or 0 where unknown.
pub fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace().nth(1).and_then(|x| x.parse::<usize>().ok()).unwrap_or(0) * 4096
}

/// Peak resident set size so far, in bytes (`VmHWM`), or 0 where unknown.
pub fn peak_rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse::<usize>().ok())
        .unwrap_or(0)
        * 1024
}

/// Runs `f(i)` on `n` scoped threads and collects their results in thread order.
pub fn on_threads<T: Send>(n: usize, f: impl Fn(usize) -> Check<T> + Sync) -> Check<Vec<T>> {
    std::thread::scope(|s| {
        let f = &f;
        let hs: Vec<_> = (0..n).map(|i| s.spawn(move || f(i))).collect();
        hs.into_iter().map(|h| h.join().map_err(|_| "a worker thread panicked".to_string())?).collect()
    })
}

/// Runs one phase per round on `n` threads, each thread given the pool the previous round's
/// thread `i + 1 (mod n)` left: blocks are freed by a thread other than their allocator.
pub fn rounds<P: Send>(
    pools: Vec<P>,
    rounds: usize,
    f: impl Fn(usize, usize, P) -> Check<P> + Sync,
) -> Check<Vec<P>> {
    let n = pools.len();
    let mut pools = pools;
    for r in 0..rounds {
        let mut slots: Vec<Option<P>> = pools.into_iter().map(Some).collect();
        slots.rotate_left(1 % n.max(1));
        let cells: Vec<std::sync::Mutex<Option<P>>> = slots.into_iter().map(std::sync::Mutex::new).collect();
        pools = on_threads(n, |i| {
            let p = cells[i].lock().map_err(|_| "poisoned")?.take().ok_or("pool missing")?;
            f(r, i, p)
        })?;
    }
    Ok(pools)
}
