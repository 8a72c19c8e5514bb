//! Replaying a decoded program trace through the process's global allocator, with its
//! thread structure.
//!
//! Each recorded thread is replayed by a thread of its own (recorded threads beyond
//! [`MAX_THREADS`] share replay threads, taken modulo), doing that thread's ops in the
//! recorded order. Ops on one object by different threads keep the recorded order: op
//! number `stage` on an object waits until the object's counter reaches `stage` (acquire)
//! and raises it when done (release). So a block freed by another thread is freed after its
//! allocation, as in the program, and nothing else is ordered: the threads run as freely
//! as the program's did. With `serial`, one thread performs every op in global order (and
//! the report says so).
//!
//! Every block is a stamped [`Block`] (tag: its object id), checked on realloc and free: an
//! allocator that hands out overlapping memory fails the run. The checksum depends only on
//! the trace.
//!
//! Deadlock freedom: every op waits only for an op earlier in global order, and every
//! replay thread runs its ops in global order, so the earliest unfinished op can always run.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use crate::check::{Block, Check, FNV0, fnv};
use crate::program_trace::{OpKind, Trace};

/// Most replay threads.
pub const MAX_THREADS: usize = 64;
/// Memory samples taken over a run.
pub const SAMPLES: u64 = 200;

/// One object's state: how many of its ops are done, and its block.
struct Slot {
    stage: AtomicU32,
    block: UnsafeCell<Option<Block>>,
}

// SAFETY: `block` is touched only by the thread performing the object's op number `stage`,
// after it read `stage` equal to that number with acquire ordering, and before it stores
// `stage + 1` with release ordering: the ops on one object are serialised by `stage`, and
// each sees the previous op's writes. `Block` is `Send`.
unsafe impl Sync for Slot {}

/// One point of the memory series: after `op` ops, `live` bytes requested and `resident`
/// bytes of resident memory above the replay's start.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Ops done.
    pub op: u64,
    /// Live bytes (requested sizes).
    pub live: u64,
    /// Resident memory growth since the replay started.
    pub resident: u64,
    /// Growth of the allocator's committed bytes since the replay started, where it says
    /// (a stratalloc heap), else 0.
    pub committed: u64,
}

/// What a replay measured.
#[derive(Clone, Debug, Default)]
pub struct Replayed {
    /// Allocator-independent checksum of the trace replayed.
    pub checksum: u64,
    /// Seconds spent replaying (decoding excluded).
    pub seconds: f64,
    /// Replay threads used (1 when serial).
    pub threads: usize,
    /// Most resident memory growth seen (samples and the end).
    pub peak_resident: u64,
    /// The memory series.
    pub samples: Vec<Sample>,
    /// For a stratalloc heap: the peak growth of its committed bytes (of the samples and the
    /// end) and its page-source calls over the replay.
    pub heap: Option<[u64; 2]>,
}

/// What the allocator under test says of itself: `[committed bytes, page-source calls]`
/// so far, or `None` (not a stratalloc heap).
pub type Probe = fn() -> Option<[u64; 2]>;

/// Resident bytes of this process, read from /proc/self/statm into a stack buffer (no
/// allocation, so sampling does not disturb the allocator under test); 0 where unknown.
fn resident_bytes() -> u64 {
    let mut buf = [0u8; 128];
    // SAFETY: a NUL-terminated path literal.
    let fd = unsafe { libc::open(c"/proc/self/statm".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return 0;
    }
    // SAFETY: `buf` is writable for its length; `fd` was just opened.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: `fd` is ours, closed once.
    unsafe { libc::close(fd) };
    let text = &buf[..n.max(0) as usize];
    let pages = text
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.trim().parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}

/// The checksum of a trace's ops (what every allocator must reproduce).
pub fn trace_checksum(t: &Trace) -> u64 {
    let mut h = fnv(FNV0, &t.objects.to_le_bytes());
    for op in &t.ops {
        let size = match op.kind {
            OpKind::Alloc { size, .. } | OpKind::Realloc { size } => size,
            OpKind::Free => u64::MAX,
        };
        h = fnv(h, &size.to_le_bytes());
    }
    h
}

/// Shared state of one replay.
struct Run<'a> {
    trace: &'a Trace,
    slots: Vec<Slot>,
    done: AtomicU64,
    live: AtomicI64,
    base: AtomicU64,
    every: u64,
    samples: Mutex<Vec<Sample>>,
    failed: AtomicBool,
    probe: Probe,
    /// Committed bytes when the replay began.
    base_committed: AtomicU64,
}

impl Run<'_> {
    /// Waits until `slot` has reached `stage` (another thread's earlier op on the object).
    #[inline]
    fn wait(&self, slot: &Slot, stage: u32) -> Check {
        let mut spins = 0u32;
        while slot.stage.load(Ordering::Acquire) != stage {
            if self.failed.load(Ordering::Relaxed) {
                return Err("another replay thread failed".into());
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        Ok(())
    }

    /// Performs op `i`.
    fn op(&self, i: usize) -> Check {
        let op = self.trace.ops[i];
        let slot = &self.slots[op.object as usize];
        self.wait(slot, op.stage)?;
        // SAFETY: `stage` equals this op's stage (read with acquire just above), so this
        // thread is the only one touching the block until it raises `stage` below (see
        // `Slot`'s Sync argument).
        let block = unsafe { &mut *slot.block.get() };
        let delta: i64 = match op.kind {
            OpKind::Alloc { size, align_log2, zeroed } => {
                let (size, align) = (size.max(1) as usize, 1usize << align_log2);
                let tag = u64::from(op.object);
                *block = Some(if zeroed {
                    Block::zeroed(size, align, tag)?
                } else {
                    Block::new(size, align, tag)?
                });
                size as i64
            }
            OpKind::Realloc { size } => {
                let b = block
                    .as_mut()
                    .ok_or_else(|| format!("op {i}: realloc of object {} that is not live", op.object))?;
                let old = b.size() as i64;
                b.realloc(size.max(1) as usize)?;
                size.max(1) as i64 - old
            }
            OpKind::Free => {
                let b = block
                    .take()
                    .ok_or_else(|| format!("op {i}: free of object {} that is not live", op.object))?;
                let old = b.size() as i64;
                b.free()?;
                -old
            }
        };
        slot.stage.store(op.stage + 1, Ordering::Release);
        let live = self.live.fetch_add(delta, Ordering::Relaxed) + delta;
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if done.is_multiple_of(self.every) {
            self.sample(done, live.max(0) as u64);
        }
        Ok(())
    }

    #[cold]
    fn sample(&self, op: u64, live: u64) {
        let resident = resident_bytes().saturating_sub(self.base.load(Ordering::Relaxed));
        let committed =
            (self.probe)().map_or(0, |[c, _]| c.saturating_sub(self.base_committed.load(Ordering::Relaxed)));
        if let Ok(mut s) = self.samples.lock()
            && s.len() < s.capacity()
        {
            s.push(Sample { op, live, resident, committed });
        }
    }

    /// Runs the ops in `mine` (indices into the trace's ops, in global order).
    fn thread(&self, mine: &[u32]) -> Check {
        for &i in mine {
            if let Err(e) = self.op(i as usize) {
                self.failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Replays `t` (see the module header); the blocks still live at the end are checked and
/// freed. `probe` reads the allocator's own counts (`|| None` for any allocator).
pub fn replay(t: &Trace, serial: bool, probe: Probe) -> Check<Replayed> {
    let threads = if serial { 1 } else { (t.threads as usize).clamp(1, MAX_THREADS) };
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); threads];
    for (i, op) in t.ops.iter().enumerate() {
        lists[op.thread as usize % threads].push(i as u32);
    }
    let slots =
        (0..t.objects).map(|_| Slot { stage: AtomicU32::new(0), block: UnsafeCell::new(None) }).collect();
    let run = Run {
        trace: t,
        slots,
        done: AtomicU64::new(0),
        live: AtomicI64::new(0),
        base: AtomicU64::new(0),
        every: (t.ops.len() as u64 / SAMPLES).max(1),
        samples: Mutex::new(Vec::with_capacity(SAMPLES as usize + 8)),
        failed: AtomicBool::new(false),
        probe,
        base_committed: AtomicU64::new(0),
    };
    let calls_before = probe().map_or(0, |[_, calls]| calls);
    // The threads start, then the baseline is read (their stacks are not the allocator's),
    // then they run.
    let (ready, go) = (Barrier::new(threads + 1), Barrier::new(threads + 1));
    let mut start = Instant::now();
    let results: Vec<Check> = std::thread::scope(|s| {
        let (run, ready, go) = (&run, &ready, &go);
        let hs: Vec<_> = lists
            .iter()
            .map(|mine| {
                s.spawn(move || {
                    ready.wait();
                    go.wait();
                    run.thread(mine)
                })
            })
            .collect();
        ready.wait();
        run.base.store(resident_bytes(), Ordering::Relaxed);
        run.base_committed.store(probe().map_or(0, |[c, _]| c), Ordering::Relaxed);
        start = Instant::now();
        go.wait();
        hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a replay thread panicked".into()))).collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    // The first real failure, not the "another thread failed" of the others.
    if let Some(e) = results.iter().filter_map(|r| r.as_ref().err()).find(|e| !e.starts_with("another")) {
        return Err(e.clone());
    }
    results.into_iter().collect::<Check>()?;
    let end = resident_bytes().saturating_sub(run.base.load(Ordering::Relaxed));
    let mut samples = run.samples.into_inner().map_err(|_| "samples lock poisoned")?;
    samples.sort_by_key(|s| s.op);
    let now = probe();
    samples.push(Sample {
        op: t.ops.len() as u64,
        live: run.live.load(Ordering::Relaxed).max(0) as u64,
        resident: end,
        committed: now.map_or(0, |[c, _]| c.saturating_sub(run.base_committed.load(Ordering::Relaxed))),
    });
    let peak_resident = samples.iter().map(|s| s.resident).max().unwrap_or(0);
    let peak_committed = samples.iter().map(|s| s.committed).max().unwrap_or(0);
    let heap = now.map(|[_, calls]| [peak_committed, calls.saturating_sub(calls_before)]);
    for slot in run.slots {
        if let Some(b) = slot.block.into_inner() {
            b.free()?;
        }
    }
    Ok(Replayed { checksum: trace_checksum(t), seconds, threads, peak_resident, samples, heap })
}
