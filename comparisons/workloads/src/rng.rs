//! The one seeded generator of the project's workloads, benches, examples and tests.

/// splitmix64: small, fast, seedable, and the same sequence on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` and a stream number (thread, round...).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d);
        r.next_u64();
        r
    }
    /// A generator seeded from `seed` alone (stream 0).
    pub fn seeded(seed: u64) -> Self {
        Self::new(seed, 0)
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
    /// Uniform in `0..n` (`n > 0`): the high 32 bits scaled for `n` up to `u32::MAX` (the
    /// sequences the workloads' checksums were made with), all 64 bits above.
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        if n as u64 <= u64::from(u32::MAX) {
            (((self.next_u64() >> 32) * n as u64) >> 32) as usize
        } else {
            ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
        }
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

/// Live objects of the churn (the free-list workload).
pub const CHURN_LIVE: usize = 10_000;

/// A size of the churn's mix: 70% 8-128 B, 25% 129-1024 B, 4% 1-8 KiB,
/// 1% 8-64 KiB.
#[inline]
pub fn churn_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=69 => rng.range(8, 128),
        70..=94 => rng.range(129, 1024),
        95..=98 => rng.range(1025, 8 * 1024),
        _ => rng.range(8 * 1024 + 1, 64 * 1024),
    }
}
