//! talc's benchmarks (heap efficiency, random actions) and a fragmentation measure in the
//! sense of Johnstone & Wilson (max heap / max live - 1).
//!
//! As whole processes, "heap" is the growth of the resident set over the run's start, so
//! the figures include the allocator's metadata and whatever it keeps cached.

use super::{Ctx, Outcome};
use crate::check::{Block, Check, free_all, mix, peak_rss_bytes, rss_bytes};
use crate::rng::Rng;

const MIB: usize = 1024 * 1024;

/// Writes every byte of the block between its stamps, so its pages are resident.
fn touch_all(b: &mut Block) {
    let n = b.size();
    if n > 16 {
        b.bytes_mut()[8..n - 8].fill(0xa5);
    }
}

/// talc's heap efficiency, as a process: random allocations (log-uniform 16 B..64 KiB) and
/// frees until the live bytes reach a budget; metric: live bytes / resident growth.
pub fn heap_efficiency(c: &Ctx) -> Check<Outcome> {
    let budget = c.n(48 * MIB);
    let base = rss_bytes();
    let mut r = Rng::new(c.seed, 21);
    let (mut live, mut blocks, mut sum) = (0usize, Vec::new(), 0u64);
    let mut k = 0u64;
    while live < budget {
        if blocks.is_empty() || r.below(10) < 7 {
            let mut b = Block::new(r.log_uniform(16, 64 * 1024), 8, k)?;
            touch_all(&mut b);
            live += b.size();
            blocks.push(b);
        } else {
            let b: Block = blocks.swap_remove(r.below(blocks.len()));
            live -= b.size();
            sum = sum.wrapping_add(mix(b.tag()));
            b.free()?;
        }
        k += 1;
    }
    let grown = rss_bytes().saturating_sub(base).max(1);
    free_all(blocks)?;
    Ok(Outcome { checksum: sum ^ k, metrics: vec![("efficiency_pct", 100.0 * live as f64 / grown as f64)] })
}

/// talc's random actions: alloc, realloc or free at random over 10,000 slots, 1 B..16 KiB.
pub fn random_actions(c: &Ctx) -> Check<Outcome> {
    let mut r = Rng::new(c.seed, 22);
    let mut slots: Vec<Option<Block>> = (0..10_000).map(|_| None).collect();
    let mut sum = 0u64;
    for k in 0..c.n(200_000) {
        let s = r.below(slots.len());
        match slots[s].take() {
            None => slots[s] = Some(Block::new(r.log_uniform(1, 16 * 1024), 8, k as u64)?),
            Some(mut b) if r.below(2) == 0 => {
                b.realloc(r.log_uniform(1, 16 * 1024))?;
                slots[s] = Some(b);
            }
            Some(b) => {
                sum = sum.wrapping_add(mix(b.tag() ^ b.size() as u64));
                b.free()?;
            }
        }
    }
    free_all(slots.into_iter().flatten())?;
    Outcome::sum(sum)
}

/// Phased lifetimes: each phase makes many short-lived small blocks and some medium ones,
/// keeps one small block in eight and half the medium ones for good, and makes large
/// blocks that die in the next phase. Holes left by the small blocks can only be reused by
/// an allocator that splits and coalesces well. Metric: max heap / max live - 1, with the
/// heap read as the peak resident set's growth over the start.
pub fn fragmentation(c: &Ctx) -> Check<Outcome> {
    let base = rss_bytes();
    let mut r = Rng::new(c.seed, 23);
    let n = c.n(15_000);
    let (mut live, mut max_live, mut sum) = (0usize, 0usize, 0u64);
    let (mut kept, mut large): (Vec<Block>, Vec<Block>) = (Vec::new(), Vec::new());
    let mut k = 0u64;
    let mut make = |size: usize, live: &mut usize, max_live: &mut usize| -> Check<Block> {
        k += 1;
        let mut b = Block::new(size, 8, k)?;
        touch_all(&mut b);
        *live += size;
        *max_live = (*max_live).max(*live);
        Ok(b)
    };
    for phase in 0..8 {
        let small: Vec<Block> = (0..n)
            .map(|_| make(r.range(16, 128) + phase * 8, &mut live, &mut max_live))
            .collect::<Check<_>>()?;
        let medium: Vec<Block> =
            (0..n / 8).map(|_| make(r.range(256, 4096), &mut live, &mut max_live)).collect::<Check<_>>()?;
        for (i, b) in small.into_iter().chain(medium).enumerate() {
            if i % 8 == 0 || (i >= n && i % 2 == 0) {
                kept.push(b);
            } else {
                live -= b.size();
                sum = sum.wrapping_add(mix(b.tag()));
                b.free()?;
            }
        }
        for b in large.drain(..) {
            live -= b.size();
            b.free()?;
        }
        for _ in 0..n / 64 {
            large.push(make(r.range(8 * 1024, 128 * 1024), &mut live, &mut max_live)?);
        }
    }
    let heap = peak_rss_bytes().saturating_sub(base);
    free_all(kept.into_iter().chain(large))?;
    Ok(Outcome {
        checksum: sum ^ k,
        metrics: vec![("frag_pct", 100.0 * (heap as f64 / max_live as f64 - 1.0))],
    })
}
