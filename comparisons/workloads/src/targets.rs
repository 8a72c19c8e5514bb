//! The tiered design's target workloads (issue 4): a churn of mixed sizes, a larson with
//! one shared table, a 64 B producer/consumer, and a large serde_json round trip; and
//! (issue 17) small blocks at every alignment from 8 B to 64 KiB.
//!
//! Not in the harness's default set (their patterns overlap larson, xmalloc-test and json);
//! name them (`--workloads churn,larson-shared,prodcons,json-large,aligned`) for the
//! comparison against issue 4's and issue 17's targets.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::check::{Block, Check, Global, consume, mix, on_threads};
use crate::churn::Live;
use crate::rng::{CHURN_LIVE, Rng, churn_size};
use crate::suite::{Ctx, Outcome, Workload};

/// The target workloads, in table order.
pub const TARGETS: &[Workload] = &[
    Workload {
        name: "churn",
        group: "issue-4",
        about: "10,000 live objects of the churn mix (8 B..64 KiB), random replacements, 1 thread",
        run: churn,
    },
    Workload {
        name: "larson-shared",
        group: "issue-4",
        about: "2 threads replace 8..1007 B objects in one shared table of 5,000 slots",
        run: larson_shared,
    },
    Workload {
        name: "prodcons",
        group: "issue-4",
        about: "one producer allocates 64 B objects in batches of 1,000, one consumer frees them",
        run: prodcons,
    },
    Workload {
        name: "json-large",
        group: "issue-4",
        about: "serde_json: a 5 MB document (25 MB at scale 5) parsed and serialised back, twice",
        run: json_large,
    },
    Workload {
        name: "aligned",
        group: "issue-17",
        about: "4,096 live blocks of 8 B..4 KiB, each aligned to a random power of two 8 B..64 KiB, replaced",
        run: aligned,
    },
];

/// Small blocks at every alignment from 8 B to 64 KiB (issue 17): 4,096 live slots, each
/// replacement a block of 8 B..4 KiB (log-uniform) aligned to `2^k`, `k` uniform in 3..=16;
/// every block is stamped, checked for its alignment when made and verified when freed.
pub fn aligned(c: &Ctx) -> Check<Outcome> {
    const LIVE: usize = 4096;
    let mut r = Rng::new(c.seed, 71);
    let make = |k: usize, r: &mut Rng| -> Check<Block> {
        let size = 1usize << r.range(3, 12);
        let size = r.range(size, size * 2 - 1).min(4096);
        let align = 1usize << r.range(3, 16);
        Block::new(size, align, k as u64)
    };
    let mut live = (0..LIVE).map(|k| make(k, &mut r)).collect::<Check<Vec<_>>>()?;
    let mut sum = 0u64;
    for k in LIVE..LIVE + c.n(400_000) {
        let s = r.below(LIVE);
        let fresh = make(k, &mut r)?;
        let old = std::mem::replace(&mut live[s], fresh);
        sum = sum.wrapping_add(mix(old.tag() ^ old.size() as u64));
        old.free()?;
    }
    for b in live {
        sum = sum.wrapping_add(mix(b.tag() ^ b.size() as u64));
        b.free()?;
    }
    Outcome::sum(sum)
}

/// The churn, on the global allocator: [`Live`] with random replacements.
pub fn churn(c: &Ctx) -> Check<Outcome> {
    let mut r = Rng::new(c.seed, 41);
    let sizes: Vec<usize> = (0..CHURN_LIVE).map(|_| churn_size(&mut r)).collect();
    let mut live = Live::fill(Global, &sizes)?;
    let mut sum = 0u64;
    for _ in 0..c.n(400_000) {
        let (slot, size) = (r.below(CHURN_LIVE) as u32, churn_size(&mut r));
        live.replace(slot, size)?;
        sum = sum.wrapping_add(mix(size as u64));
    }
    sum = sum.wrapping_add(live.live_bytes as u64);
    live.free_all()?;
    Outcome::sum(sum)
}

/// Threads replace objects in one shared table of slots: about half of the frees are of
/// objects another thread allocated. A slot is claimed by swapping a held mark into it.
pub fn larson_shared(c: &Ctx) -> Check<Outcome> {
    const SLOTS: usize = 5000;
    let slots: Vec<AtomicPtr<u8>> = (0..SLOTS).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect();
    let sizes: Vec<AtomicUsize> = (0..SLOTS).map(|_| AtomicUsize::new(0)).collect();
    let iters = c.n(200_000);
    let sums = on_threads(2, |t| {
        let mut r = Rng::new(c.seed, 51 + t as u64);
        let mut sum = 0u64;
        for _ in 0..iters {
            let k = r.below(SLOTS);
            let size = r.range(8, 1007);
            let (ptr, _, _) = Block::new(size, 8, size as u64)?.into_raw();
            let old = claim(&slots[k], &sizes[k]);
            // Refill (and so release) the slot before the free, which may fail: a slot left
            // held would spin the other thread for ever.
            sizes[k].store(size, Ordering::Relaxed);
            slots[k].store(ptr.as_ptr(), Ordering::Release);
            if let Some(old) = old {
                sum = sum.wrapping_add(mix(old.size() as u64));
                old.free()?;
            }
        }
        Ok(sum)
    })?;
    let mut sum = sums.into_iter().fold(0u64, u64::wrapping_add);
    for (p, n) in slots.iter().zip(&sizes) {
        if let Some(b) = claim(p, n) {
            sum = sum.wrapping_add(mix(b.size() as u64));
            b.free()?;
        }
    }
    // Every made block is freed once, so the sum is that of every size made: fixed by the seed.
    Outcome::sum(sum)
}

/// Marks a slot that a thread has claimed and not yet refilled. Never a block's address: no
/// allocation starts at address 1.
const HELD: *mut u8 = std::ptr::without_provenance_mut(1);

/// Takes the block out of a slot, leaving it marked [`HELD`] until the caller stores a new
/// block (spinning while another thread holds it); `None` for a slot never filled. Holding
/// the slot, not only emptying it, is what keeps two threads from both filling an empty slot
/// and losing one block.
fn claim(slot: &AtomicPtr<u8>, size: &AtomicUsize) -> Option<Block> {
    loop {
        let p = slot.swap(HELD, Ordering::Acquire);
        if p == HELD {
            std::hint::spin_loop();
            continue;
        }
        let ptr = NonNull::new(p)?;
        let n = size.load(Ordering::Acquire);
        let layout = Layout::from_size_align(n, 8).ok()?;
        // SAFETY: the slot held the parts of a block of `n` bytes made with tag `n` and
        // alignment 8 (the size stored before the pointer, released with it); the swap took
        // it out and left the slot held, so only this thread takes it back.
        return Some(unsafe { Block::from_raw(ptr, layout, n as u64) });
    }
}

/// One producer allocates 64 B objects in batches of 1,000; one consumer verifies and frees.
pub fn prodcons(c: &Ctx) -> Check<Outcome> {
    let batches = c.n(400);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Block>>(16);
    std::thread::scope(|s| {
        let consumer = s.spawn(move || consume(rx));
        for n in 0..batches {
            let batch = (0..1000).map(|k| Block::new(64, 8, (n * 1000 + k) as u64)).collect::<Check<_>>()?;
            tx.send(batch).map_err(|_| "consumer gone")?;
        }
        drop(tx);
        let got = consumer.join().map_err(|_| "consumer panicked")??;
        let want = (0..batches * 1000).fold(0u64, |s, k| s.wrapping_add(mix(k as u64)));
        if got != want {
            return Err(format!("prodcons: consumer sum {got:#x}, produced {want:#x}"));
        }
        Outcome::sum(got)
    })
}

/// serde_json: a generated document serialised, then parsed and serialised back twice; each
/// round trip must give the same text.
pub fn json_large(c: &Ctx) -> Check<Outcome> {
    let mut r = Rng::new(c.seed, 61);
    let doc: serde_json::Value =
        (0..c.n(26_000)).map(|i| crate::suite::programs::record(&mut r, i)).collect();
    let text = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
    drop(doc);
    for _ in 0..2 {
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("json parse: {e}"))?;
        let again = serde_json::to_string(&v).map_err(|e| e.to_string())?;
        if again != text {
            return Err("json-large: a round trip changed the document".into());
        }
    }
    Outcome::sum(crate::check::fnv(crate::check::FNV0, text.as_bytes()))
}
