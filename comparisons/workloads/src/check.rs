//! The one stamped-block checker, and what else every workload shares: checksums, memory
//! readings, threads.
//!
//! A [`Block`] is one allocation made through an allocator (the global one by default) with an explicit
//! `Layout`. It is stamped when made (a tag at its head and the tag's complement at its
//! tail, or a byte pattern for blocks under 16 bytes) and verified when freed, so an
//! allocator that hands out overlapping blocks, or writes into a live one, is caught as a
//! failed check instead of finishing fast.

use std::alloc::{self, GlobalAlloc, Layout};
use std::ptr::NonNull;

/// A workload's verdict on itself: `Err` names the broken check.
pub type Check<T = ()> = Result<T, String>;

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

/// The byte that fills a touched block between its stamps ([`touch`]): never zero, so a
/// block left as calloc returned it is not taken for a touched one.
#[inline]
pub fn body_byte(tag: u64) -> u8 {
    (mix(tag) as u8) | 1
}

/// Writes every byte of `b`, as a program that fills the block it was given: the body with
/// [`body_byte`], then the stamp of `tag` at the ends (a block under 16 bytes is all stamp).
#[inline]
pub fn touch(b: &mut [u8], tag: u64) {
    b.fill(body_byte(tag));
    stamp(b, tag);
}

/// Reads every byte of `b`: whether it holds what [`touch`] wrote (stamps and body).
#[inline]
pub fn touched(b: &[u8], tag: u64) -> bool {
    let n = b.len();
    stamped(b, tag) && (n < 16 || all_bytes(&b[8..n - 8], body_byte(tag)))
}

/// Whether every byte of `b` is `x`, read a word at a time (no early exit, so the loop
/// vectorises and reads the whole slice, as a program reading its data would).
fn all_bytes(b: &[u8], x: u8) -> bool {
    let w = u64::from_ne_bytes([x; 8]);
    let mut words = b.chunks_exact(8);
    let mut diff = 0u64;
    for c in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        diff |= u64::from_ne_bytes(a) ^ w;
    }
    diff == 0 && words.remainder().iter().all(|&y| y == x)
}

/// An allocator a [`Block`] is made in: a copyable handle, so that a block of the process's
/// global allocator ([`Global`], zero-sized) costs no more than a pointer and a layout.
pub trait Alloc: Copy {
    /// Allocates `layout`.
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`]: `layout` has a non-zero size.
    unsafe fn alloc(self, layout: Layout) -> *mut u8;
    /// Allocates `layout`, zeroed.
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc_zeroed`].
    unsafe fn alloc_zeroed(self, layout: Layout) -> *mut u8;
    /// Frees `ptr`.
    ///
    /// # Safety
    /// As [`GlobalAlloc::dealloc`]: `ptr` is a live block of this allocator with `layout`.
    unsafe fn dealloc(self, ptr: *mut u8, layout: Layout);
    /// Resizes `ptr` to `new_size` bytes.
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    unsafe fn realloc(self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8;
}

/// The process's global allocator (whatever `#[global_allocator]` names).
#[derive(Clone, Copy, Debug, Default)]
pub struct Global;

impl Alloc for Global {
    #[inline]
    unsafe fn alloc(self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller keeps `alloc`'s contract, which is `std::alloc::alloc`'s.
        unsafe { alloc::alloc(layout) }
    }
    #[inline]
    unsafe fn alloc_zeroed(self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller keeps `alloc_zeroed`'s contract, which is std's.
        unsafe { alloc::alloc_zeroed(layout) }
    }
    #[inline]
    unsafe fn dealloc(self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a live block of the global allocator with its layout.
        unsafe { alloc::dealloc(ptr, layout) }
    }
    #[inline]
    unsafe fn realloc(self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a live block of the global allocator with its layout.
        unsafe { alloc::realloc(ptr, layout, new_size) }
    }
}

impl<A: GlobalAlloc> Alloc for &A {
    #[inline]
    unsafe fn alloc(self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller keeps `GlobalAlloc::alloc`'s contract for `*self`.
        unsafe { GlobalAlloc::alloc(self, layout) }
    }
    #[inline]
    unsafe fn alloc_zeroed(self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller keeps `GlobalAlloc::alloc_zeroed`'s contract for `*self`.
        unsafe { GlobalAlloc::alloc_zeroed(self, layout) }
    }
    #[inline]
    unsafe fn dealloc(self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a live block of `*self` with its layout.
        unsafe { GlobalAlloc::dealloc(self, ptr, layout) }
    }
    #[inline]
    unsafe fn realloc(self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a live block of `*self` with its layout.
        unsafe { GlobalAlloc::realloc(self, ptr, layout, new_size) }
    }
}

/// A stamped allocation made with an explicit layout in allocator `A` (by default the
/// process's global allocator); freed by `A` when dropped.
pub struct Block<A: Alloc = Global> {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u64,
    alloc: A,
}

// SAFETY: a Block owns its memory exclusively, and an allocator that may be sent (a
// `GlobalAlloc` behind a shared reference is `Sync`) accepts frees from any thread.
unsafe impl<A: Alloc + Send> Send for Block<A> {}

impl Block {
    /// Allocates `size` bytes (`size > 0`) aligned to `align` from the global allocator and
    /// stamps them with `tag`.
    #[inline]
    pub fn new(size: usize, align: usize, tag: u64) -> Check<Block> {
        Block::new_in(Global, size, align, tag)
    }

    /// Allocates zeroed memory from the global allocator, checks it is zero, then stamps it.
    pub fn zeroed(size: usize, align: usize, tag: u64) -> Check<Block> {
        Block::zeroed_in(Global, size, align, tag)
    }
}

impl Block {
    /// Gives the block up as its address, layout and tag, for structures that hold raw
    /// pointers (atomic slots); [`Block::from_raw`] takes it back.
    pub fn into_raw(self) -> (NonNull<u8>, Layout, u64) {
        let parts = (self.ptr, self.layout, self.tag);
        std::mem::forget(self);
        parts
    }

    /// The block [`Block::into_raw`] gave up.
    ///
    /// # Safety
    /// The parts come from one `into_raw` call of a global-allocator block, taken back once.
    pub unsafe fn from_raw(ptr: NonNull<u8>, layout: Layout, tag: u64) -> Block {
        Block { ptr, layout, tag, alloc: Global }
    }
}

impl<A: Alloc> Block<A> {
    /// Allocates `size` bytes (`size > 0`) aligned to `align` in `a` and stamps them with `tag`.
    #[inline]
    pub fn new_in(a: A, size: usize, align: usize, tag: u64) -> Check<Self> {
        let layout = Layout::from_size_align(size, align).map_err(|e| format!("bad layout: {e}"))?;
        // SAFETY: the size is non-zero (callers never ask for 0).
        let p = unsafe { a.alloc(layout) };
        let mut b = Self::own(a, p, layout, tag)?;
        stamp(b.bytes_mut(), tag);
        Ok(b)
    }

    /// Allocates zeroed memory in `a`, checks it is zero, then stamps it.
    pub fn zeroed_in(a: A, size: usize, align: usize, tag: u64) -> Check<Self> {
        let layout = Layout::from_size_align(size, align).map_err(|e| format!("bad layout: {e}"))?;
        // SAFETY: the size is non-zero.
        let p = unsafe { a.alloc_zeroed(layout) };
        let mut b = Self::own(a, p, layout, tag)?;
        if b.bytes().iter().step_by(61).any(|&x| x != 0) {
            return Err(format!("alloc_zeroed returned non-zero memory at {p:p} ({size} B)"));
        }
        stamp(b.bytes_mut(), tag);
        Ok(b)
    }

    fn own(alloc: A, p: *mut u8, layout: Layout, tag: u64) -> Check<Self> {
        let ptr = NonNull::new(p).ok_or_else(|| format!("allocation of {} B failed", layout.size()))?;
        if !(p as usize).is_multiple_of(layout.align()) {
            return Err(format!("block {p:p} is not aligned to {}", layout.align()));
        }
        Ok(Block { ptr, layout, tag, alloc })
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

    /// Writes the whole block ([`touch`]): the body pattern and the stamps.
    #[inline]
    pub fn touch(&mut self) {
        let tag = self.tag;
        touch(self.bytes_mut(), tag);
    }

    /// Reads the whole block: checks the stamps and that the body still holds what
    /// [`Block::touch`] wrote.
    #[inline]
    pub fn verify_touched(&self) -> Check {
        if touched(self.bytes(), self.tag) {
            Ok(())
        } else {
            Err(format!(
                "block {:p} ({} B, tag {:#x}) was overwritten while live (its stamps or its body)",
                self.ptr,
                self.size(),
                self.tag
            ))
        }
    }

    /// Checks the whole touched block ([`Block::verify_touched`]) and frees it.
    #[inline]
    pub fn free_touched(self) -> Check {
        if let Err(e) = self.verify_touched() {
            // Leaked, as in `free`.
            std::mem::forget(self);
            return Err(e);
        }
        Ok(())
    }

    /// [`Block::realloc`] of a touched block: reads the whole block first, then writes
    /// the bytes the resize added (and where the old tail stamp was), so the block is
    /// whole-touched again; the kept bytes are the program's, not rewritten.
    pub fn realloc_touched(&mut self, new_size: usize) -> Check {
        self.verify_touched()?;
        let old = self.size();
        self.realloc(new_size)?;
        // From where the old block's pattern stops holding: its tail stamp, or all of it
        // when either block is under 16 bytes (all stamp).
        let from = if old < 16 || new_size < 16 { 0 } else { old.min(new_size) - 8 };
        let byte = body_byte(self.tag);
        let tag = self.tag;
        let b = self.bytes_mut();
        b[from..].fill(byte);
        stamp(b, tag);
        Ok(())
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

    /// Resizes through the allocator's realloc, checking the kept prefix.
    pub fn realloc(&mut self, new_size: usize) -> Check {
        self.verify()?;
        // The first bytes, kept on the stack (no allocation inside the measured work).
        let keep_old = 8.min(self.size());
        let mut head = [0u8; 8];
        head[..keep_old].copy_from_slice(&self.bytes()[..keep_old]);
        // SAFETY: the block is live for `layout` in `alloc`; `new_size > 0` is valid for its
        // alignment.
        let p = unsafe { self.alloc.realloc(self.ptr.as_ptr(), self.layout, new_size) };
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

impl<A: Alloc> Drop for Block<A> {
    fn drop(&mut self) {
        // SAFETY: the block is live and was allocated in `alloc` with `layout`.
        unsafe { self.alloc.dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Verifies and frees every block.
pub fn free_all<A: Alloc>(blocks: impl IntoIterator<Item = Block<A>>) -> Check {
    blocks.into_iter().try_for_each(Block::<A>::free)
}

/// Maps `bytes` of fresh memory: readable, writable, backed when touched, not counted
/// against the commit limit; lives for the process. `None` if the kernel refuses.
pub fn map_lazily(bytes: usize) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choice touches no
    // existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED { None } else { NonNull::new(p.cast()) }
}

/// Verifies and frees every block of every batch received; returns the sum of their mixed
/// tags (the consumer of a producer/consumer workload).
pub fn consume(batches: std::sync::mpsc::Receiver<Vec<Block>>) -> Check<u64> {
    let mut sum = 0u64;
    for batch in batches {
        for b in batch {
            sum = sum.wrapping_add(mix(b.tag()));
            b.free()?;
        }
    }
    Ok(sum)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touch_writes_and_checks_every_byte() {
        for n in [1usize, 7, 15, 16, 17, 24, 100, 4096 + 3] {
            let tag = 0x1234_5678 + n as u64;
            let mut b = vec![0u8; n];
            touch(&mut b, tag);
            assert!(touched(&b, tag), "{n} B");
            if n >= 16 {
                // The body holds the fill byte everywhere between the stamps.
                assert!(b[8..n - 8].iter().all(|&x| x == body_byte(tag)), "{n} B");
            }
            // A flip of any single byte, the middle ones included, is caught; the stamps
            // alone would miss the middle ones.
            for i in 0..n {
                b[i] ^= 0x40;
                assert!(!touched(&b, tag), "{n} B: a flip at {i} missed");
                if (8..n.saturating_sub(8)).contains(&i) {
                    assert!(stamped(&b, tag), "{n} B: the stamps do not cover byte {i}");
                }
                b[i] ^= 0x40;
            }
        }
    }

    #[test]
    fn a_touched_block_survives_realloc_whole() {
        let mut b = Block::new(40, 16, 7).unwrap();
        b.touch();
        b.verify_touched().unwrap();
        for n in [200, 3000, 24, 10, 5, 64, 1] {
            b.realloc_touched(n).unwrap();
            b.verify_touched().unwrap();
            assert_eq!(b.size(), n);
        }
        // A byte of the body changed behind the replay's back fails the whole check but
        // not the stamp check.
        b.realloc_touched(64).unwrap();
        b.bytes_mut()[30] ^= 1;
        assert!(b.verify().is_ok());
        assert!(b.verify_touched().is_err());
        b.bytes_mut()[30] ^= 1;
        b.free_touched().unwrap();
    }
}
