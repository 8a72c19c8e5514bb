//! Replaying a decoded program trace through the process's global allocator, with its
//! thread structure.
//!
//! Each recorded thread is replayed by a thread of its own (recorded threads beyond
//! [`MAX_THREADS`] share replay threads, taken modulo), doing that thread's ops in the
//! recorded order. Ops on one object by different threads keep the recorded order: op
//! number `stage` on an object waits until the object's counter reaches `stage` (acquire)
//! and raises it when done (release). So a block freed by another thread is freed after its
//! allocation, as in the program, and nothing else is ordered: the threads run as freely
//! as the program's did. With [`Order::Recorded`] the threads are kept but every op also
//! waits for its turn in global order (a shared counter of ops done): the calls happen in the
//! program's order, on the program's threads (a cross-thread free stays cross-thread, each
//! thread's cache is used as in the program), as when a program's threads take turns under a
//! lock (Python's GIL); it costs a hand-off between threads at every change of thread (a
//! thread waiting long parks, and the thread ending the turn before wakes it). With
//! [`Order::Serial`], one thread performs every op in global order (and the report says so).
//!
//! Every block is a stamped [`Block`] (tag: its object id), checked on realloc and free: an
//! allocator that hands out overlapping memory fails the run. The checksum depends only on
//! the trace.
//!
//! With [`Options::whole`] (the driver's default) the replay also does a program's memory
//! traffic: every byte of a block is written when it is allocated (a pattern of its tag,
//! [`crate::check::touch`]) and read back and checked before it is freed or resized (the
//! bytes a realloc adds are written), so the allocator's placement shows in the replay's
//! time as it does in the program's (cache lines and pages shared or not, headers between
//! blocks), and a write into the middle of a live block fails the run too. Without it only
//! the stamps at the ends of a block are written and read.
//!
//! Deadlock freedom: every op waits only for an op earlier in global order (its object's
//! previous op, or with [`Order::Recorded`] the op just before it), and every replay thread
//! runs its ops in global order, so the earliest unfinished op can always run.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use crate::check::{Block, Check, FNV0, fnv};
use crate::program_trace::{Op, OpKind, Trace};

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

/// In what order the replay's threads do their ops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// One replay thread per recorded thread, each doing its ops in order; only the ops on
    /// one object are ordered across threads, so the threads run freely.
    #[default]
    Threads,
    /// The same threads, and every op waits for its turn in global order (see the module
    /// header): the program's order on the program's threads.
    Recorded,
    /// Every op on one thread, in global order.
    Serial,
}

/// How to replay.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// In what order the ops run.
    pub order: Order,
    /// Write every byte of a block when it is allocated and read every byte before it is
    /// freed (see the module header); else only the stamps at its ends.
    pub whole: bool,
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
    /// Bytes of blocks written and read whole during the replay ([`Options::whole`]; 0
    /// without): each allocation's size written, each free's size read, a realloc's old
    /// size read and its added bytes written. Depends only on the trace.
    pub touched_bytes: u64,
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

/// One op in the flat form the replay reads (a file mapped by the runner, so the trace is
/// never decoded through the allocator under test: decoding's freed temporaries would give
/// it memory to reuse and hide its growth).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlatOp {
    /// Dense thread index.
    pub thread: u32,
    /// Object id.
    pub object: u32,
    /// The op's step on its object.
    pub stage: u32,
    /// 1 alloc, 2 calloc, 3 realloc, 4 free.
    pub kind: u8,
    /// log2 of the alignment (allocations).
    pub align_log2: u8,
    /// Zero.
    pub pad: [u8; 2],
    /// Bytes (allocations and reallocs).
    pub size: u64,
}

const FLAT_ALLOC: u8 = 1;
const FLAT_CALLOC: u8 = 2;
const FLAT_REALLOC: u8 = 3;
const FLAT_FREE: u8 = 4;

impl FlatOp {
    /// The flat form of `op`.
    pub fn of(op: &Op) -> FlatOp {
        let (kind, align_log2, size) = match op.kind {
            OpKind::Alloc { size, align_log2, zeroed } => {
                (if zeroed { FLAT_CALLOC } else { FLAT_ALLOC }, align_log2, size)
            }
            OpKind::Realloc { size } => (FLAT_REALLOC, 0, size),
            OpKind::Free => (FLAT_FREE, 0, 0),
        };
        FlatOp { thread: op.thread, object: op.object, stage: op.stage, kind, align_log2, pad: [0; 2], size }
    }
}

/// Magic of a flat ops file: `"SAOPS"`, 0, 0, version 1.
const PLAN_MAGIC: &[u8; 8] = b"SAOPS\0\0\x01";
/// Header bytes: magic, objects (u32), threads (u32), ops (u64), checksum (u64).
const PLAN_HEADER_BYTES: usize = 32;

/// What a replay runs: the ops, how many objects and threads.
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    /// Ops in global order.
    pub ops: &'a [FlatOp],
    /// Objects.
    pub objects: u32,
    /// Recorded threads.
    pub threads: u32,
}

impl<'a> Plan<'a> {
    /// A plan of ops already in memory.
    pub fn new(ops: &'a [FlatOp], objects: u32, threads: u32) -> Plan<'a> {
        Plan { ops, objects, threads }
    }

    /// Reads a flat ops file ([`flat_file`]) in place; `bytes` must be 8-byte aligned (a
    /// mapping is).
    pub fn from_bytes(bytes: &'a [u8]) -> Check<Plan<'a>> {
        let head = bytes.get(..PLAN_HEADER_BYTES).ok_or("ops file: shorter than its header")?;
        if &head[..8] != PLAN_MAGIC {
            return Err("ops file: not a stratalloc ops file (comparisons replay writes them)".into());
        }
        let word =
            |at: usize, n: usize| head[at..at + n].iter().rev().fold(0u64, |v, &b| v << 8 | u64::from(b));
        let (objects, threads, n, sum) = (word(8, 4) as u32, word(12, 4) as u32, word(16, 8), word(24, 8));
        let body = &bytes[PLAN_HEADER_BYTES..];
        let len = usize::try_from(n).ok().and_then(|n| n.checked_mul(size_of::<FlatOp>()));
        if len != Some(body.len()) {
            return Err(format!("ops file: {} bytes of ops for {n} ops", body.len()));
        }
        if !body.as_ptr().cast::<FlatOp>().is_aligned() {
            return Err("ops file: not 8-byte aligned in memory".into());
        }
        // SAFETY: `body` holds exactly `n` `FlatOp`s' bytes (checked), is aligned for
        // `FlatOp` (checked), and `FlatOp` is `repr(C)` of integers and bytes only, so
        // every bit pattern is a valid value; the slice borrows `bytes`.
        let ops = unsafe { std::slice::from_raw_parts(body.as_ptr().cast::<FlatOp>(), n as usize) };
        let plan = Plan { ops, objects, threads };
        if plan_checksum(&plan) != sum {
            return Err("ops file: checksum mismatch (damaged)".into());
        }
        Ok(plan)
    }
}

/// The flat ops of a trace.
pub fn flat_ops(t: &Trace) -> Vec<FlatOp> {
    t.ops.iter().map(FlatOp::of).collect()
}

/// A flat ops file of a trace, for `alloc_NN replay`.
pub fn flat_file(t: &Trace) -> Vec<u8> {
    let ops = flat_ops(t);
    let plan = Plan::new(&ops, t.objects, t.threads);
    let mut out = Vec::with_capacity(PLAN_HEADER_BYTES + ops.len() * size_of::<FlatOp>());
    out.extend_from_slice(PLAN_MAGIC);
    out.extend_from_slice(&t.objects.to_le_bytes());
    out.extend_from_slice(&t.threads.to_le_bytes());
    out.extend_from_slice(&(ops.len() as u64).to_le_bytes());
    out.extend_from_slice(&plan_checksum(&plan).to_le_bytes());
    for op in &ops {
        out.extend_from_slice(&op.thread.to_le_bytes());
        out.extend_from_slice(&op.object.to_le_bytes());
        out.extend_from_slice(&op.stage.to_le_bytes());
        out.extend_from_slice(&[op.kind, op.align_log2, 0, 0]);
        out.extend_from_slice(&op.size.to_le_bytes());
    }
    out
}

/// The checksum of a plan's ops (what every allocator's replay reports).
pub fn plan_checksum(p: &Plan) -> u64 {
    let mut h = fnv(fnv(FNV0, &p.objects.to_le_bytes()), &p.threads.to_le_bytes());
    for op in p.ops {
        h = fnv(h, &[op.kind, op.align_log2, op.pad[0], op.pad[1]]);
        h = fnv(h, &op.size.to_le_bytes());
        h = fnv(h, &op.object.to_le_bytes());
        h = fnv(h, &op.thread.to_le_bytes());
        h = fnv(h, &op.stage.to_le_bytes());
    }
    h
}

/// Shared state of one replay.
struct Run<'a> {
    plan: Plan<'a>,
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
    /// Whole-block traffic ([`Options::whole`]).
    whole: bool,
    touched: AtomicU64,
    /// With [`Order::Recorded`]: the index of the op whose turn it is (ops done so far, as
    /// every op before it in global order is done).
    turn: Option<AtomicU64>,
    /// Replay threads, and each one's handle (set before the replay starts), so that the
    /// thread ending its turn can wake the next one from [`Run::wait_turn`]'s park.
    lanes: usize,
    handles: Vec<std::sync::OnceLock<std::thread::Thread>>,
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

    /// Waits until it is op `i`'s turn ([`Order::Recorded`]): spins a little, yields a
    /// little, then parks until the thread ending the turn before wakes it (a thread may
    /// wait through another thread's whole run of calls: spinning or yielding all that time
    /// would take a core from the thread whose turn it is).
    fn wait_turn(&self, turn: &AtomicU64, i: u64) -> Check {
        let mut tries = 0u32;
        while turn.load(Ordering::Acquire) != i {
            if self.failed.load(Ordering::Relaxed) {
                return Err("another replay thread failed".into());
            }
            tries += 1;
            if tries < 64 {
                std::hint::spin_loop();
            } else if tries < 96 {
                std::thread::yield_now();
            } else {
                // A wake between the load above and this park leaves a token: park returns
                // at once, and the loop reads the turn again.
                std::thread::park();
            }
        }
        Ok(())
    }

    /// Ends op `i`'s turn: the next op may run (it sees this op's writes: release), and its
    /// thread is woken if it parked.
    fn end_turn(&self, turn: &AtomicU64, i: usize) {
        turn.store(i as u64 + 1, Ordering::Release);
        if let Some(next) = self.plan.ops.get(i + 1)
            && let Some(h) = self.handles.get(next.thread as usize % self.lanes).and_then(|h| h.get())
        {
            h.unpark();
        }
    }

    /// Wakes every parked thread (a thread failed: they stop).
    fn wake_all(&self) {
        self.handles.iter().filter_map(|h| h.get()).for_each(|h| h.unpark());
    }

    /// Performs op `i`.
    fn op(&self, i: usize) -> Check {
        let op = self.plan.ops[i];
        let slot = self
            .slots
            .get(op.object as usize)
            .ok_or_else(|| format!("op {i}: object {} out of range", op.object))?;
        self.wait(slot, op.stage)?;
        // SAFETY: `stage` equals this op's stage (read with acquire just above), so this
        // thread is the only one touching the block until it raises `stage` below (see
        // `Slot`'s Sync argument).
        let block = unsafe { &mut *slot.block.get() };
        let delta: i64 = match op.kind {
            FLAT_ALLOC | FLAT_CALLOC => {
                if block.is_some() || op.align_log2 > 40 {
                    return Err(format!("op {i}: bad allocation of object {}", op.object));
                }
                let (size, align) = (op.size.max(1) as usize, 1usize << op.align_log2);
                let tag = u64::from(op.object);
                let mut b = if op.kind == FLAT_CALLOC {
                    Block::zeroed(size, align, tag)?
                } else {
                    Block::new(size, align, tag)?
                };
                if self.whole {
                    b.touch();
                    self.touched.fetch_add(size as u64, Ordering::Relaxed);
                }
                *block = Some(b);
                size as i64
            }
            FLAT_REALLOC => {
                let b = block
                    .as_mut()
                    .ok_or_else(|| format!("op {i}: realloc of object {} that is not live", op.object))?;
                let old = b.size() as i64;
                let new = op.size.max(1) as usize;
                if self.whole {
                    b.realloc_touched(new)?;
                    // Read: the old block; written: what it gained (and its old tail stamp).
                    let written = if old < 16 || new < 16 { new } else { new - (old as usize).min(new) + 8 };
                    self.touched.fetch_add(old as u64 + written as u64, Ordering::Relaxed);
                } else {
                    b.realloc(new)?;
                }
                new as i64 - old
            }
            FLAT_FREE => {
                let b = block
                    .take()
                    .ok_or_else(|| format!("op {i}: free of object {} that is not live", op.object))?;
                let old = b.size() as i64;
                if self.whole {
                    b.free_touched()?;
                    self.touched.fetch_add(old as u64, Ordering::Relaxed);
                } else {
                    b.free()?;
                }
                -old
            }
            k => return Err(format!("op {i}: unknown kind {k}")),
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

    /// Runs the ops in `mine` (indices into the trace's ops, in global order); with
    /// [`Order::Recorded`], each when its turn comes.
    fn thread(&self, mine: &[u32]) -> Check {
        for &i in mine {
            let done = match &self.turn {
                Some(turn) => self.wait_turn(turn, u64::from(i)).and_then(|()| {
                    let r = self.op(i as usize);
                    self.end_turn(turn, i as usize);
                    r
                }),
                None => self.op(i as usize),
            };
            if let Err(e) = done {
                self.failed.store(true, Ordering::Relaxed);
                self.wake_all();
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Replays `t` (see the module header); the blocks still live at the end are checked and
/// freed. `probe` reads the allocator's own counts (`|| None` for any allocator).
pub fn replay(t: &Plan, opts: Options, probe: Probe) -> Check<Replayed> {
    let threads = if opts.order == Order::Serial { 1 } else { (t.threads as usize).clamp(1, MAX_THREADS) };
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); threads];
    for (i, op) in t.ops.iter().enumerate() {
        if op.thread >= t.threads.max(1) {
            return Err(format!("op {i}: thread {} of {}", op.thread, t.threads));
        }
        lists[op.thread as usize % threads].push(i as u32);
    }
    let slots =
        (0..t.objects).map(|_| Slot { stage: AtomicU32::new(0), block: UnsafeCell::new(None) }).collect();
    let run = Run {
        plan: *t,
        slots,
        done: AtomicU64::new(0),
        live: AtomicI64::new(0),
        base: AtomicU64::new(0),
        every: (t.ops.len() as u64 / SAMPLES).max(1),
        samples: Mutex::new(Vec::with_capacity(SAMPLES as usize + 8)),
        failed: AtomicBool::new(false),
        probe,
        base_committed: AtomicU64::new(0),
        whole: opts.whole,
        touched: AtomicU64::new(0),
        turn: (opts.order == Order::Recorded).then(|| AtomicU64::new(0)),
        lanes: threads,
        handles: (0..threads).map(|_| std::sync::OnceLock::new()).collect(),
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
            .enumerate()
            .map(|(lane, mine)| {
                s.spawn(move || {
                    // Before the start: the handle may allocate on its first use.
                    let _ = run.handles[lane].set(std::thread::current());
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
    let touched_bytes = run.touched.load(Ordering::Relaxed);
    for slot in run.slots {
        if let Some(b) = slot.block.into_inner() {
            if opts.whole { b.free_touched()? } else { b.free()? }
        }
    }
    Ok(Replayed { checksum: plan_checksum(t), seconds, threads, peak_resident, samples, heap, touched_bytes })
}
