//! Ports of mimalloc-bench's allocation patterns (the list with one line per workload is in
//! the harness's report, `book/src/results/tables.md`, "Workloads").
//!
//! Each keeps the pattern (sizes, lifetimes, which thread frees what) of the original and
//! adds checks: every block is stamped when made and verified when freed, and the checksum
//! sums the tags and sizes of what was freed or kept, independently of addresses.

use super::{Ctx, Outcome};
use crate::check::{Block, Check, consume, fill_all, filled_all, free_all, mix, on_threads, rounds};
use crate::rng::Rng;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

fn tag(a: usize, b: usize, c: usize) -> u64 {
    ((a as u64) << 48) ^ ((b as u64) << 32) ^ c as u64
}

fn pool_sum(pools: &[Vec<Block>]) -> u64 {
    pools.iter().flatten().fold(0u64, |s, b| s.wrapping_add(mix(b.tag() ^ (b.size() as u64) << 20)))
}

fn verify_pools(pools: Vec<Vec<Block>>) -> Check<u64> {
    let sum = pool_sum(&pools);
    free_all(pools.into_iter().flatten())?;
    Ok(sum)
}

/// larson `5 8 1000 5000 100 4141 N`: threads replace random slots (8..1000 B) and are
/// respawned each round, inheriting another thread's slots.
pub fn larson(c: &Ctx) -> Check<Outcome> {
    let (slots, iters, nrounds) = (1000, c.n(50_000), 4);
    let pools = on_threads(c.threads, |i| {
        let mut r = Rng::new(c.seed, 1000 + i as u64);
        (0..slots).map(|k| Block::new(r.range(8, 1000), 8, tag(99, i, k))).collect::<Check<Vec<_>>>()
    })?;
    let pools = rounds(pools, nrounds, |round, i, mut pool| {
        let mut r = Rng::new(c.seed, (round * 64 + i) as u64);
        for k in 0..iters {
            let s = r.below(pool.len());
            let fresh = Block::new(r.range(8, 1000), 8, tag(round, i, k))?;
            std::mem::replace(&mut pool[s], fresh).free()?;
        }
        Ok(pool)
    })?;
    Outcome::sum(verify_pools(pools)?)
}

/// xmalloc-test `-w N -t 5 -s 64`: N producers allocate 64 B objects in batches, N
/// consumers on other threads verify and free them.
pub fn xmalloc(c: &Ctx) -> Check<Outcome> {
    const BATCH: usize = 100;
    let batches = c.n(4000) / c.threads.max(1);
    let sums = std::thread::scope(|s| -> Check<Vec<u64>> {
        let mut consumers = Vec::new();
        for p in 0..c.threads {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Block>>(8);
            s.spawn(move || -> Check {
                for b in 0..batches {
                    let batch = (0..BATCH).map(|k| Block::new(64, 8, tag(p, b, k))).collect::<Check<_>>()?;
                    tx.send(batch).map_err(|_| "consumer gone")?;
                }
                Ok(())
            });
            consumers.push(s.spawn(move || consume(rx)));
        }
        consumers.into_iter().map(|h| h.join().map_err(|_| "consumer panicked".to_string())?).collect()
    })?;
    let expected = (0..c.threads)
        .flat_map(|p| (0..batches).flat_map(move |b| (0..BATCH).map(move |k| mix(tag(p, b, k)))))
        .fold(0u64, u64::wrapping_add);
    let got = sums.iter().fold(0u64, |a, &b| a.wrapping_add(b));
    if got != expected {
        return Err(format!("xmalloc: consumers saw checksum {got:#x}, producers made {expected:#x}"));
    }
    Outcome::sum(got)
}

fn mstress_size(r: &mut Rng) -> usize {
    let s = 8 << r.below(7);
    if r.one_in(1000) { (s * r.range(100, 10_000)).min(4 * MIB) } else { s }
}

/// mstress `N 50 25`: power-of-two sizes 8..512 B (rarely x100..x10000), retention,
/// realloc, and blocks handed to other threads when the threads are recreated each round.
pub fn mstress(c: &Ctx) -> Check<Outcome> {
    let (ops, nrounds) = (c.n(10_000), 10);
    let pools = (0..c.threads).map(|_| Vec::new()).collect();
    let pools = rounds(pools, nrounds, |round, i, mut pool: Vec<Block>| {
        let mut r = Rng::new(c.seed, (round * 64 + i) as u64);
        for k in 0..ops {
            if pool.is_empty() || r.below(8) < 5 {
                pool.push(Block::new(mstress_size(&mut r), 8, tag(round, i, k))?);
            } else {
                let j = r.below(pool.len());
                if r.one_in(4) {
                    pool[j].realloc(mstress_size(&mut r))?;
                } else {
                    pool.swap_remove(j).free()?;
                }
            }
        }
        // Retain about a quarter for the next round's thread.
        let keep = pool.len() / 4;
        free_all(pool.drain(keep..))?;
        Ok(pool)
    })?;
    Outcome::sum(verify_pools(pools)?)
}

fn touch_pages(b: &mut Block, v: u8) {
    let n = b.size();
    let bytes = b.bytes_mut();
    let mut off = 8;
    while off + 8 < n {
        bytes[off] = v;
        off += 4096;
    }
}

/// rptest `N 0 1 2 500 1000 100 8 16000`: sizes 8..16000 with a linear drop-off, batches
/// that change threads, aligned and zeroed requests, every page touched.
pub fn rptest(c: &Ctx) -> Check<Outcome> {
    let (ops, nrounds, cap) = (c.n(30_000), 4, 1000);
    let pools = (0..c.threads).map(|_| Vec::new()).collect();
    let pools = rounds(pools, nrounds, |round, i, mut pool: Vec<Block>| {
        let mut r = Rng::new(c.seed, (round * 64 + i) as u64);
        for k in 0..ops {
            if pool.len() < cap && (pool.is_empty() || r.below(2) == 0) {
                let size = 8 + ((16_000.0 - 8.0) * (1.0 - r.unit().sqrt())) as usize;
                let t = tag(round, i, k);
                let mut b = match r.below(8) {
                    0 => Block::new(size, 16 << r.below(8), t)?,
                    1 => Block::zeroed(size, 8, t)?,
                    _ => Block::new(size, 8, t)?,
                };
                touch_pages(&mut b, k as u8);
                pool.push(b);
            } else {
                let j = r.below(pool.len());
                pool.swap_remove(j).free()?;
            }
        }
        let keep = pool.len() / 2;
        free_all(pool.drain(keep..))?;
        Ok(pool)
    })?;
    Outcome::sum(verify_pools(pools)?)
}

fn geometric_size(r: &mut Rng) -> usize {
    let k = (r.next_u64().trailing_zeros() as usize).min(7);
    if k == 0 { r.range(5, 8) } else { r.range((4 << k) + 1, 8 << k) }
}

fn alloc_test_thread(c: &Ctx, i: usize) -> Check<u64> {
    const SLOTS: usize = 4096;
    let mut r = Rng::new(c.seed, 500 + i as u64);
    let mut slots: Vec<Option<Block>> = (0..SLOTS).map(|_| None).collect();
    let mut sum = 0u64;
    for k in 0..c.n(150_000) {
        let s = (SLOTS as f64 * r.unit().powi(3)) as usize;
        if let Some(b) = slots[s].take() {
            if !filled_all(b.bytes(), b.tag()) {
                return Err(format!(
                    "alloc-test: block of {} B (tag {:#x}) changed while live",
                    b.size(),
                    b.tag()
                ));
            }
            sum = sum.wrapping_add(mix(b.tag() ^ b.size() as u64));
        }
        let mut b = Block::new(geometric_size(&mut r), 8, tag(i, 0, k))?;
        let t = b.tag();
        fill_all(b.bytes_mut(), t);
        slots[s] = Some(b);
    }
    for b in slots.into_iter().flatten() {
        if !filled_all(b.bytes(), b.tag()) {
            return Err(format!("alloc-test: block of {} B changed while live", b.size()));
        }
        sum = sum.wrapping_add(mix(b.tag() ^ b.size() as u64));
    }
    Ok(sum)
}

/// alloc-test 1: Pareto-like slot choice, geometric sizes 5 B..1 KiB (half <= 8 B),
/// every block filled and read back.
pub fn alloc_test1(c: &Ctx) -> Check<Outcome> {
    Outcome::sum(alloc_test_thread(c, 0)?)
}

/// alloc-test N: the same on every thread.
pub fn alloc_test_n(c: &Ctx) -> Check<Outcome> {
    let sums = on_threads(c.threads, |i| alloc_test_thread(c, i))?;
    Outcome::sum(sums.iter().fold(0, |a: u64, &b| a.wrapping_add(b)))
}

/// glibc's bench-malloc-simple: batches of 16/32/64 B malloc then free.
pub fn glibc_simple(c: &Ctx) -> Check<Outcome> {
    let mut sum = 0u64;
    let mut batch = Vec::with_capacity(100);
    for i in 0..c.n(15_000) {
        let size = [16, 32, 64][i % 3];
        for k in 0..100 {
            batch.push(Block::new(size, 8, tag(0, i, k))?);
        }
        for b in batch.drain(..) {
            sum = sum.wrapping_add(b.tag());
            b.free()?;
        }
    }
    Outcome::sum(sum)
}

/// glibc's bench-malloc-thread: N threads replacing random slots with sizes 4..32768
/// drawn inverse-square.
pub fn glibc_thread(c: &Ctx) -> Check<Outcome> {
    let sums = on_threads(c.threads, |i| {
        let mut r = Rng::new(c.seed, 700 + i as u64);
        let mut slots: Vec<Option<Block>> = (0..1000).map(|_| None).collect();
        let mut sum = 0u64;
        for k in 0..c.n(300_000) {
            let size = (1.0 / (0.25 - r.unit() * (0.25 - 1.0 / 32768.0))) as usize;
            let s = r.below(slots.len());
            if let Some(b) = slots[s].replace(Block::new(size.clamp(4, 32768), 8, tag(i, 0, k))?) {
                sum = sum.wrapping_add(mix(b.tag()));
                b.free()?;
            }
        }
        free_all(slots.into_iter().flatten())?;
        Ok(sum)
    })?;
    Outcome::sum(sums.iter().fold(0, |a: u64, &b| a.wrapping_add(b)))
}

/// cache-scratch `N 1000 1 2000000 N`: each thread frees an object the main thread made,
/// then repeatedly allocates a tiny object and writes it many times; an allocator that puts
/// different threads' objects in one cache line pays for false sharing.
pub fn cache_scratch(c: &Ctx) -> Check<Outcome> {
    let (iters, writes) = (c.n(10_000), 2000usize);
    let seeds = (0..c.threads).map(|i| Block::new(8, 8, tag(7, i, 0))).collect::<Check<Vec<_>>>()?;
    let seeds: Vec<_> = seeds.into_iter().map(|b| std::sync::Mutex::new(Some(b))).collect();
    let sums = on_threads(c.threads, |i| {
        seeds[i].lock().map_err(|_| "poisoned")?.take().ok_or("missing seed block")?.free()?;
        let mut sum = 0u64;
        for k in 0..iters {
            let mut b = Block::new(8, 8, tag(i, 1, k))?;
            let p = b.bytes_mut().as_mut_ptr();
            for w in 0..writes {
                // SAFETY: `p` points at the first of the block's 8 live bytes.
                unsafe { p.write_volatile((w as u8).wrapping_add(i as u8)) };
            }
            // SAFETY: `p` points into a live block of this workload, inside its size.
            sum = sum.wrapping_add(unsafe { p.read_volatile() } as u64);
        }
        Ok(sum)
    })?;
    let expected: u64 =
        (0..c.threads).map(|i| iters as u64 * ((writes - 1) as u8).wrapping_add(i as u8) as u64).sum();
    let got: u64 = sums.iter().sum();
    if got != expected {
        return Err(format!("cache-scratch: read back {got}, wrote {expected}"));
    }
    Outcome::sum(got)
}

/// malloc-large: 20 live buffers (6 at scale 1) of 5..25 MiB replaced at random, zero-initialised and
/// written page by page.
pub fn malloc_large(c: &Ctx) -> Check<Outcome> {
    let mut r = Rng::new(c.seed, 11);
    let make = |k: usize, r: &mut Rng| -> Check<Block> {
        let mut b = Block::zeroed(r.range(5 * MIB, 25 * MIB), 8, tag(0, 0, k))?;
        touch_pages(&mut b, k as u8);
        Ok(b)
    };
    let nlive = c.n(6).min(20);
    let mut live = (0..nlive).map(|k| make(k, &mut r)).collect::<Check<Vec<_>>>()?;
    let mut sum = 0u64;
    for k in nlive..nlive + c.n(6) {
        let s = r.below(live.len());
        let fresh = make(k, &mut r)?;
        let old = std::mem::replace(&mut live[s], fresh);
        sum = sum.wrapping_add(mix(old.tag() ^ old.size() as u64));
        old.free()?;
    }
    let mut pools = vec![live];
    sum = sum.wrapping_add(pool_sum(&pools));
    free_all(pools.pop().into_iter().flatten())?;
    Outcome::sum(sum)
}

/// mleak: short-lived threads allocate and exit; half of what each made outlives it and is
/// freed later by the main thread.
pub fn mleak(c: &Ctx) -> Check<Outcome> {
    let mut survivors: Vec<Block> = Vec::new();
    let mut sum = 0u64;
    for wave in 0..c.n(150) {
        let made = on_threads(c.threads, |i| {
            let mut r = Rng::new(c.seed, (wave * 64 + i) as u64);
            let mut mine = (0..200)
                .map(|k| Block::new(r.range(16, 256), 8, tag(wave, i, k)))
                .collect::<Check<Vec<_>>>()?;
            free_all(mine.drain(100..))?;
            Ok(mine)
        })?;
        survivors.extend(made.into_iter().flatten());
        if survivors.len() > 20 * KIB {
            for b in survivors.drain(..10 * KIB) {
                sum = sum.wrapping_add(mix(b.tag()));
                b.free()?;
            }
        }
    }
    for b in survivors {
        sum = sum.wrapping_add(mix(b.tag()));
        b.free()?;
    }
    Outcome::sum(sum)
}
