//! Workloads shared by `benches/freelist.rs` and `examples/freelist_efficiency.rs`: the
//! issue's churn trace, a tiny deterministic generator, and talc over an mmap'd arena.
#![allow(dead_code)]

use core::alloc::{GlobalAlloc, Layout};

use stratalloc::{Mmap, PageSource};

/// xorshift64*: deterministic, no dependency, good enough to pick sizes and slots.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

/// Live objects of the churn.
pub const CHURN_LIVE: usize = 10_000;

/// A size of the mix: 70% 8-128 B, 25% 128-1024 B, 4% 1-8 KiB, 1% 8-64 KiB.
pub fn churn_size(rng: &mut Rng) -> usize {
    match rng.next() % 100 {
        0..=69 => rng.range(8, 128),
        70..=94 => rng.range(129, 1024),
        95..=98 => rng.range(1025, 8 * 1024),
        _ => rng.range(8 * 1024 + 1, 64 * 1024),
    }
}

/// The churn: `CHURN_LIVE` initial sizes, then replacement steps (slot, new size).
pub struct Churn {
    pub initial: Vec<usize>,
    pub steps: Vec<(u32, usize)>,
}

impl Churn {
    pub fn new(seed: u64, steps: usize) -> Self {
        let mut rng = Rng(seed);
        let initial = (0..CHURN_LIVE).map(|_| churn_size(&mut rng)).collect();
        let steps = (0..steps).map(|_| (rng.range(0, CHURN_LIVE - 1) as u32, churn_size(&mut rng))).collect();
        Churn { initial, steps }
    }
}

/// The live set of a churn over allocator `A`.
pub struct Live<'a, A: GlobalAlloc> {
    pub alloc: &'a A,
    pub slots: Vec<(*mut u8, Layout)>,
    pub live_bytes: usize,
}

impl<'a, A: GlobalAlloc> Live<'a, A> {
    /// Allocates the initial objects.
    pub fn fill(alloc: &'a A, churn: &Churn) -> Self {
        let mut me = Live { alloc, slots: Vec::with_capacity(CHURN_LIVE), live_bytes: 0 };
        for &size in &churn.initial {
            let l = Layout::from_size_align(size, 8).unwrap();
            me.slots.push((me.alloc_touch(l), l));
            me.live_bytes += size;
        }
        me
    }

    fn alloc_touch(&self, l: Layout) -> *mut u8 {
        // SAFETY: non-zero size.
        let p = unsafe { self.alloc.alloc(l) };
        assert!(!p.is_null(), "allocation failed in the churn");
        // SAFETY: the block holds at least one byte.
        unsafe { p.write_volatile(1) };
        p
    }

    /// One replacement: free the object in `slot`, allocate one of `size` bytes there.
    #[inline]
    pub fn replace(&mut self, slot: u32, size: usize) {
        let (p, l) = self.slots[slot as usize];
        // SAFETY: `p` is live with layout `l`.
        unsafe { self.alloc.dealloc(p, l) };
        let nl = Layout::from_size_align(size, 8).unwrap();
        self.slots[slot as usize] = (self.alloc_touch(nl), nl);
        self.live_bytes = self.live_bytes - l.size() + size;
    }
}

impl<A: GlobalAlloc> Drop for Live<'_, A> {
    fn drop(&mut self) {
        for &(p, l) in &self.slots {
            // SAFETY: every slot holds a live block with its layout.
            unsafe { self.alloc.dealloc(p, l) };
        }
    }
}

/// talc (`TalcLock` with a spin lock) over an arena of `bytes` taken from the OS.
pub type Talc = talc::TalcLock<spinning_top::RawSpinlock, talc::source::Manual>;

pub fn talc_over_mmap(bytes: usize) -> Talc {
    let arena = Mmap.alloc_ready(bytes, 4096).expect("mmap arena for talc");
    let t = Talc::new(talc::source::Manual);
    // SAFETY: the arena is fresh Ready memory used by nothing else, and never unmapped
    // (leaked for the process's life).
    unsafe { t.lock().claim(arena.as_ptr(), bytes) }.expect("talc claims the arena");
    t
}
