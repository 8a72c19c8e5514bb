//! Reading a program trace (format v2, see [`trace_format`](crate::trace_format) and
//! comparisons/harness/TRACE.md) into replayable operations, and profiling it.
//!
//! Glossary: a *record* is one call as the file stores it (addresses, seqs); an *object* is
//! one block from its allocation to its free, numbered in allocation order; an *op* is one
//! replayable step on one object by one thread, in global seq order.
//!
//! Decoding: header -> chunks (each checked against its checksum, its records parsed) ->
//! end record (its count checked) -> every record's address steps sorted by seq -> addresses
//! resolved to objects -> ops. Any damage is a [`TraceError`] naming the byte offset and
//! what was expected there; nothing panics on any input (tests feed random and cut bytes).

use std::collections::HashMap;
use std::fmt;

use crate::trace_format::{
    KIND_ALIGNED, KIND_ALLOC, KIND_CALLOC, KIND_FREE, KIND_REALLOC, MAGIC, TAG_CHUNK, TAG_END, VERSION,
    chunk_checksum, unzigzag,
};

/// What is wrong with a trace file, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    /// Byte offset in the file.
    pub offset: usize,
    /// What the reader expected there (and what it found).
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for TraceError {}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, TraceError> {
    Err(TraceError { offset, message: message.into() })
}

/// What one replay step does to its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Allocates the object: `size` bytes aligned to `1 << align_log2`, zeroed for calloc.
    Alloc {
        /// Bytes asked for.
        size: u64,
        /// log2 of the alignment (4 for malloc's 16).
        align_log2: u8,
        /// calloc.
        zeroed: bool,
    },
    /// Resizes the object to `size` bytes.
    Realloc {
        /// New size.
        size: u64,
    },
    /// Frees the object.
    Free,
}

/// One replayable step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// Dense thread index (0 = the first thread seen in the file).
    pub thread: u32,
    /// Object id.
    pub object: u32,
    /// How many ops on this object come before this one (its step on the object).
    pub stage: u32,
    /// What it does.
    pub kind: OpKind,
}

/// A decoded trace.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Process id of the recorded program.
    pub pid: u64,
    /// Its parent's.
    pub ppid: u64,
    /// Every op, in global order.
    pub ops: Vec<Op>,
    /// Objects.
    pub objects: u32,
    /// Threads that made a call.
    pub threads: u32,
    /// Records in the file.
    pub records: u64,
    /// Frees and reallocs of blocks allocated before recording began (in a forked child:
    /// the parent's blocks), dropped.
    pub unknown_frees: u64,
    /// Allocations returned at an address the trace still held live (a call that bypassed
    /// the recorder); the older object is left live.
    pub rebound: u64,
    /// The file ended without its end record (only with `allow_partial`).
    pub partial: bool,
}

/// One record, as read from a chunk.
#[derive(Clone, Copy, Debug)]
struct Record {
    seq: u64,
    /// The realloc's second seq (== `seq` otherwise).
    seq_after: u64,
    thread: u32,
    kind: u8,
    align_log2: u8,
    size: u64,
    /// Freed or resized address (0 for allocations).
    old: u64,
    /// Returned address (0 for frees).
    new: u64,
}

/// A cursor over the file's bytes that turns every shortfall into a [`TraceError`].
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self, what: &str) -> Result<u8, TraceError> {
        match self.b.get(self.pos) {
            Some(&x) => {
                self.pos += 1;
                Ok(x)
            }
            None => err(self.pos, format!("{what}, found the end of the file (truncated trace)")),
        }
    }

    fn varint(&mut self, what: &str) -> Result<u64, TraceError> {
        let start = self.pos;
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let x = self.byte(what)?;
            if shift == 63 && x > 1 {
                return err(start, format!("{what}: a varint of at most 64 bits, found a longer one"));
            }
            v |= u64::from(x & 0x7f) << shift;
            if x < 0x80 {
                return Ok(v);
            }
        }
        err(start, format!("{what}: a varint of at most 10 bytes, found a longer one"))
    }
}

/// The header: (pid, ppid).
fn header(c: &mut Cursor) -> Result<(u64, u64), TraceError> {
    let head = c.b.get(..MAGIC.len());
    if head != Some(&MAGIC[..]) {
        let found = if c.b.len() < MAGIC.len() {
            format!("a file of {} bytes", c.b.len())
        } else {
            format!("{:?}", String::from_utf8_lossy(&c.b[..MAGIC.len()]))
        };
        return err(
            0,
            format!("the magic \"SATRACE\" of a stratalloc trace, found {found}: not a trace file"),
        );
    }
    c.pos = MAGIC.len();
    let version = c.byte("the format version byte")?;
    match version {
        VERSION => {}
        b'1' => {
            return err(
                7,
                "format version 2, found version 1 (a trace of the harness's own workloads, \
                 which `comparisons --workloads trace-replay` replays); record the program again \
                 with the preload library",
            );
        }
        v if v > VERSION => {
            return err(
                7,
                format!(
                    "format version {VERSION}, found version {v}: written by a newer stratalloc; update to read it"
                ),
            );
        }
        v => return err(7, format!("format version {VERSION}, found the unknown version {v}")),
    }
    let pid = c.varint("the recorded process id")?;
    let ppid = c.varint("the parent process id")?;
    Ok((pid, ppid))
}

/// Parses one chunk's body into `out`.
fn chunk(c: &mut Cursor, out: &mut Vec<Record>) -> Result<(), TraceError> {
    let tag_at = c.pos - 1;
    let thread = c.varint("the chunk's thread id")?;
    let thread =
        u32::try_from(thread).or_else(|_| err(c.pos, format!("a thread id below 2^32, found {thread}")))?;
    let mut seq = c.varint("the chunk's base sequence number")?;
    let len_at = c.pos;
    let len = c.varint("the chunk's length")?;
    let body_start = c.pos;
    let end = usize::try_from(len).ok().and_then(|l| body_start.checked_add(l)).filter(|&e| e <= c.b.len());
    let Some(end) = end else {
        return err(
            len_at,
            format!(
                "a chunk of {len} bytes, found only {} bytes left (truncated trace)",
                c.b.len().saturating_sub(body_start)
            ),
        );
    };
    let sum_at = end;
    let Some(sum) = c.b.get(end..end + 4) else {
        return err(sum_at, "the chunk's 4-byte checksum, found the end of the file (truncated trace)");
    };
    let sum = u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]);
    if chunk_checksum(&c.b[tag_at..end]) != sum {
        return err(
            tag_at,
            format!(
                "a chunk of {len} bytes matching its checksum {sum:#010x} (at byte {end}): the chunk is corrupted"
            ),
        );
    }
    let mut body = Cursor { b: &c.b[..end], pos: body_start };
    let mut addr = 0u64;
    let mut next_addr = |body: &mut Cursor, what: &str| -> Result<u64, TraceError> {
        let d = unzigzag(body.varint(what)?);
        addr = addr.wrapping_add(d as u64);
        Ok(addr)
    };
    while body.pos < end {
        let at = body.pos;
        let kind = body.byte("a record kind")?;
        if !(KIND_ALLOC..=KIND_REALLOC).contains(&kind) {
            return err(at, format!("a record kind 1..=5, found {kind:#04x}"));
        }
        let d = unzigzag(body.varint("the record's sequence delta")?);
        seq = seq.checked_add_signed(d).map_or_else(|| err(at, "a sequence number within 0..2^64"), Ok)?;
        let mut r = Record { seq, seq_after: seq, thread, kind, align_log2: 4, size: 0, old: 0, new: 0 };
        match kind {
            KIND_ALLOC | KIND_CALLOC => {
                r.size = body.varint("the allocation's size")?;
                r.new = next_addr(&mut body, "the allocation's address")?;
            }
            KIND_ALIGNED => {
                r.align_log2 = body.byte("the alignment's log2")?;
                if r.align_log2 > 40 {
                    return err(
                        body.pos - 1,
                        format!("an alignment log2 of at most 40, found {}", r.align_log2),
                    );
                }
                r.size = body.varint("the allocation's size")?;
                r.new = next_addr(&mut body, "the allocation's address")?;
            }
            KIND_FREE => r.old = next_addr(&mut body, "the freed address")?,
            _ => {
                let d2 = body.varint("the realloc's second sequence delta")?;
                r.seq_after =
                    seq.checked_add(d2).map_or_else(|| err(at, "a sequence number below 2^64"), Ok)?;
                r.old = next_addr(&mut body, "the realloc's old address")?;
                r.size = body.varint("the realloc's size")?;
                r.new = next_addr(&mut body, "the realloc's new address")?;
            }
        }
        if r.size > 1 << 48 {
            return err(at, format!("a size below 2^48, found {}", r.size));
        }
        out.push(r);
    }
    c.pos = end + 4;
    Ok(())
}

/// A whole file's records: ((pid, ppid), records, whether the end record is missing).
type Records = ((u64, u64), Vec<Record>, bool);

/// Reads the records of a whole file; `allow_partial` accepts a file without its end
/// record (a program killed, or one that left with `_exit`) as long as its chunks are whole.
fn records(b: &[u8], allow_partial: bool) -> Result<Records, TraceError> {
    let mut c = Cursor { b, pos: 0 };
    let ids = header(&mut c)?;
    let mut recs = Vec::new();
    loop {
        if c.pos == b.len() {
            if allow_partial {
                return Ok((ids, recs, true));
            }
            return err(
                c.pos,
                "a chunk or the end record, found the end of the file: the recording was cut short \
                 (the program was killed, or left with _exit); `--partial` replays the chunks it has",
            );
        }
        let at = c.pos;
        match c.byte("a chunk or the end record")? {
            TAG_CHUNK => chunk(&mut c, &mut recs)?,
            TAG_END => {
                let n = c.varint("the end record's record count")?;
                let top = c.varint("the end record's highest thread id")?;
                if n != recs.len() as u64 {
                    return err(
                        at,
                        format!("an end record counting the {} records read, found {n}", recs.len()),
                    );
                }
                if let Some(r) = recs.iter().find(|r| r.thread == 0 || u64::from(r.thread) > top) {
                    return err(
                        at,
                        format!(
                            "an end record whose highest thread id (found {top}) covers thread {}",
                            r.thread
                        ),
                    );
                }
                if c.pos != b.len() {
                    return err(
                        c.pos,
                        format!(
                            "the end of the file after the end record, found {} more bytes",
                            b.len() - c.pos
                        ),
                    );
                }
                return Ok((ids, recs, false));
            }
            tag => return err(at, format!("a chunk (0xc1) or the end record (0xe1), found {tag:#04x}")),
        }
    }
}

/// One address step: a record's effect at one seq.
#[derive(Clone, Copy)]
struct Step {
    seq: u64,
    record: u32,
    /// For a realloc: false at the release of the old address, true at the bind of the new.
    bind: bool,
}

/// Decodes a trace file (see the module header).
pub fn decode(b: &[u8], allow_partial: bool) -> Result<Trace, TraceError> {
    let ((pid, ppid), recs, partial) = records(b, allow_partial)?;
    let end = b.len();
    if recs.len() >= u32::MAX as usize {
        return err(end, "at most 2^32 - 1 records");
    }
    let mut steps: Vec<Step> = Vec::with_capacity(recs.len() + recs.len() / 8);
    for (i, r) in recs.iter().enumerate() {
        steps.push(Step { seq: r.seq, record: i as u32, bind: r.kind != KIND_REALLOC });
        if r.kind == KIND_REALLOC {
            steps.push(Step { seq: r.seq_after, record: i as u32, bind: true });
        }
    }
    steps.sort_unstable_by_key(|s| s.seq);
    if let Some(w) = steps.windows(2).find(|w| w[0].seq == w[1].seq) {
        return err(
            end,
            format!("sequence numbers used once each, found {} twice: the trace is corrupted", w[0].seq),
        );
    }
    let mut t = Trace { pid, ppid, records: recs.len() as u64, partial, ..Trace::default() };
    let mut live: HashMap<u64, u32> = HashMap::new();
    let mut stages: Vec<u32> = Vec::new();
    let mut threads: HashMap<u32, u32> = HashMap::new();
    // A realloc's object between its release and its bind (None: an unknown old block).
    let mut moving: HashMap<u32, Option<u32>> = HashMap::new();
    t.ops.reserve(recs.len());
    for s in steps {
        let r = recs[s.record as usize];
        let n = threads.len() as u32;
        let thread = *threads.entry(r.thread).or_insert(n);
        match (r.kind, s.bind) {
            (KIND_FREE, _) => match live.remove(&r.old) {
                Some(id) => push_op(&mut t, &mut stages, thread, id, OpKind::Free),
                None => t.unknown_frees += 1,
            },
            (KIND_REALLOC, false) => {
                let id = live.remove(&r.old);
                if id.is_none() {
                    t.unknown_frees += 1;
                }
                moving.insert(s.record, id);
            }
            (KIND_REALLOC, true) => {
                let id = match moving.remove(&s.record).flatten() {
                    Some(id) => {
                        push_op(&mut t, &mut stages, thread, id, OpKind::Realloc { size: r.size });
                        id
                    }
                    None => {
                        let id = new_object(&mut t, &mut stages, end)?;
                        push_op(
                            &mut t,
                            &mut stages,
                            thread,
                            id,
                            OpKind::Alloc { size: r.size, align_log2: 4, zeroed: false },
                        );
                        id
                    }
                };
                if live.insert(r.new, id).is_some() {
                    t.rebound += 1;
                }
            }
            (kind, _) => {
                let id = new_object(&mut t, &mut stages, end)?;
                let align_log2 = if kind == KIND_ALIGNED { r.align_log2 } else { 4 };
                push_op(
                    &mut t,
                    &mut stages,
                    thread,
                    id,
                    OpKind::Alloc { size: r.size, align_log2, zeroed: kind == KIND_CALLOC },
                );
                if live.insert(r.new, id).is_some() {
                    t.rebound += 1;
                }
            }
        }
    }
    t.threads = threads.len() as u32;
    Ok(t)
}

/// Appends an op on `object`, its stage the count of the object's ops so far.
fn push_op(t: &mut Trace, stages: &mut [u32], thread: u32, object: u32, kind: OpKind) {
    let stage = stages[object as usize];
    stages[object as usize] += 1;
    t.ops.push(Op { thread, object, stage, kind });
}

/// Numbers a new object.
fn new_object(t: &mut Trace, stages: &mut Vec<u32>, end: usize) -> Result<u32, TraceError> {
    let id = t.objects;
    t.objects = id.checked_add(1).map_or_else(|| err(end, "at most 2^32 objects"), Ok)?;
    stages.push(0);
    Ok(id)
}

// ---------------------------------------------------------------------------------------
// Profile.

/// Facts about a trace that decide which allocator design fits it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// Allocations (alloc, calloc, aligned) by size class: `sizes[k]` counts sizes in
    /// `2^(k-1)+1 ..= 2^k` (`sizes[0]`: 0 and 1 byte).
    pub sizes: Vec<u64>,
    /// Lifetimes of freed objects, in allocations made between their allocation and free:
    /// `lifetimes[k]` counts `2^(k-1) ..< 2^k` (`lifetimes[0]`: 0).
    pub lifetimes: Vec<u64>,
    /// Objects never freed.
    pub never_freed: u64,
    /// Frees (and reallocs) by a thread other than the one that allocated the object.
    pub cross_thread_frees: u64,
    /// Frees in all.
    pub frees: u64,
    /// Reallocs.
    pub reallocs: u64,
    /// Allocations.
    pub allocs: u64,
    /// Most bytes live at once (requested sizes).
    pub peak_live_bytes: u64,
    /// The op index where that peak was reached.
    pub peak_at_op: u64,
    /// Objects at the peak.
    pub peak_live_objects: u64,
}

fn log2_bucket(x: u64) -> usize {
    if x <= 1 { 0 } else { (64 - (x - 1).leading_zeros()) as usize }
}

fn bump(v: &mut Vec<u64>, k: usize) {
    if v.len() <= k {
        v.resize(k + 1, 0);
    }
    v[k] += 1;
}

/// Profiles a decoded trace.
pub fn profile(t: &Trace) -> Profile {
    let mut p = Profile::default();
    // Per object: (allocating thread, alloc clock, size).
    let mut objs: Vec<(u32, u64, u64)> = vec![(0, 0, 0); t.objects as usize];
    let mut freed = vec![false; t.objects as usize];
    let (mut clock, mut live, mut live_objects) = (0u64, 0u64, 0u64);
    for (i, op) in t.ops.iter().enumerate() {
        let o = &mut objs[op.object as usize];
        match op.kind {
            OpKind::Alloc { size, .. } => {
                *o = (op.thread, clock, size);
                clock += 1;
                p.allocs += 1;
                bump(&mut p.sizes, log2_bucket(size));
                live += size;
                live_objects += 1;
            }
            OpKind::Realloc { size } => {
                p.reallocs += 1;
                live = live - o.2 + size;
                o.2 = size;
                if o.0 != op.thread {
                    p.cross_thread_frees += 1;
                }
            }
            OpKind::Free => {
                p.frees += 1;
                live -= o.2;
                live_objects -= 1;
                freed[op.object as usize] = true;
                if o.0 != op.thread {
                    p.cross_thread_frees += 1;
                }
                let age = clock - o.1;
                bump(&mut p.lifetimes, if age == 0 { 0 } else { log2_bucket(age + 1) });
            }
        }
        if live > p.peak_live_bytes {
            (p.peak_live_bytes, p.peak_at_op, p.peak_live_objects) = (live, i as u64, live_objects);
        }
    }
    p.never_freed = freed.iter().filter(|f| !**f).count() as u64;
    p
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn bar(n: u64, max: u64) -> String {
    let w = if max == 0 { 0 } else { ((n as f64 / max as f64) * 40.0).ceil() as usize };
    "#".repeat(w)
}

impl Profile {
    /// The profile as text for the terminal.
    pub fn render(&self, t: &Trace) -> String {
        let mut s = String::new();
        let total_frees = self.frees + self.reallocs;
        s += &format!(
            "trace of pid {}: {} records, {} threads, {} objects ({} allocations, {} reallocs, {} frees; {} never freed)\n",
            t.pid, t.records, t.threads, t.objects, self.allocs, self.reallocs, self.frees, self.never_freed
        );
        s += &format!(
            "peak live: {} in {} objects (at op {} of {})\n",
            human_bytes(self.peak_live_bytes),
            self.peak_live_objects,
            self.peak_at_op,
            t.ops.len()
        );
        s += &format!(
            "cross-thread frees: {} of {} frees and reallocs ({:.1}%)\n",
            self.cross_thread_frees,
            total_frees,
            100.0 * self.cross_thread_frees as f64 / total_frees.max(1) as f64
        );
        if t.unknown_frees > 0 {
            s += &format!("frees of blocks allocated before recording (dropped): {}\n", t.unknown_frees);
        }
        s += "\nsize histogram (requested bytes):\n";
        let max = self.sizes.iter().copied().max().unwrap_or(0);
        for (k, &n) in self.sizes.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let (lo, hi) = if k == 0 { (0, 1) } else { ((1u64 << (k - 1)) + 1, 1u64 << k) };
            s += &format!(
                "  {:>9} ..= {:<9} {:>10} {:>5.1}% {}\n",
                human_bytes(lo),
                human_bytes(hi),
                n,
                100.0 * n as f64 / self.allocs.max(1) as f64,
                bar(n, max)
            );
        }
        s += "\nlifetime histogram (allocations made while the object lived):\n";
        let max = self.lifetimes.iter().copied().max().unwrap_or(0).max(self.never_freed);
        for (k, &n) in self.lifetimes.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let label =
                if k == 0 { "0".to_string() } else { format!("{} ..< {}", 1u64 << (k - 1), 1u64 << k) };
            s += &format!("  {label:>21} {n:>10} {}\n", bar(n, max));
        }
        s += &format!("  {:>21} {:>10} {}\n", "never freed", self.never_freed, bar(self.never_freed, max));
        s
    }
}

// ---------------------------------------------------------------------------------------
// Writing traces in memory (tests and tools; the preload library has its own writer that
// never allocates).

/// One record to write: sequence numbers and raw addresses, as the recorder sees them.
#[derive(Clone, Copy, Debug)]
pub enum Rec {
    /// malloc: `size` bytes at `addr`.
    Alloc {
        /// Global sequence number.
        seq: u64,
        /// Bytes.
        size: u64,
        /// Returned address.
        addr: u64,
    },
    /// calloc.
    Calloc {
        /// Global sequence number.
        seq: u64,
        /// Bytes (count * size).
        size: u64,
        /// Returned address.
        addr: u64,
    },
    /// The memalign family.
    Aligned {
        /// Global sequence number.
        seq: u64,
        /// log2 of the alignment.
        align_log2: u8,
        /// Bytes.
        size: u64,
        /// Returned address.
        addr: u64,
    },
    /// free.
    Free {
        /// Global sequence number.
        seq: u64,
        /// Freed address.
        addr: u64,
    },
    /// realloc.
    Realloc {
        /// Sequence number before the call.
        seq: u64,
        /// Sequence number after it.
        seq_after: u64,
        /// Old address.
        old: u64,
        /// New size.
        size: u64,
        /// New address.
        new: u64,
    },
}

/// Builds a v2 trace file in memory.
#[derive(Clone, Debug)]
pub struct Writer {
    out: Vec<u8>,
    records: u64,
    threads: Vec<u32>,
}

fn put(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; crate::trace_format::VARINT_MAX_BYTES];
    let n = crate::trace_format::put_varint(&mut buf, 0, v);
    out.extend_from_slice(&buf[..n]);
}

impl Writer {
    /// A trace of process `pid`, child of `ppid`.
    pub fn new(pid: u64, ppid: u64) -> Writer {
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        put(&mut out, pid);
        put(&mut out, ppid);
        Writer { out, records: 0, threads: Vec::new() }
    }

    /// Appends one chunk of `thread`'s records (their seqs increasing).
    pub fn chunk(&mut self, thread: u32, recs: &[Rec]) {
        let (mut body, mut prev_seq, mut prev_addr) = (Vec::new(), 0u64, 0u64);
        let mut addr = |body: &mut Vec<u8>, a: u64| {
            put(body, crate::trace_format::zigzag(a.wrapping_sub(prev_addr) as i64));
            prev_addr = a;
        };
        for r in recs {
            let seq = match *r {
                Rec::Alloc { seq, .. }
                | Rec::Calloc { seq, .. }
                | Rec::Aligned { seq, .. }
                | Rec::Free { seq, .. }
                | Rec::Realloc { seq, .. } => seq,
            };
            let kind = match r {
                Rec::Alloc { .. } => KIND_ALLOC,
                Rec::Calloc { .. } => KIND_CALLOC,
                Rec::Aligned { .. } => KIND_ALIGNED,
                Rec::Free { .. } => KIND_FREE,
                Rec::Realloc { .. } => KIND_REALLOC,
            };
            body.push(kind);
            put(&mut body, crate::trace_format::zigzag(seq.wrapping_sub(prev_seq) as i64));
            prev_seq = seq;
            match *r {
                Rec::Alloc { size, addr: a, .. } | Rec::Calloc { size, addr: a, .. } => {
                    put(&mut body, size);
                    addr(&mut body, a);
                }
                Rec::Aligned { align_log2, size, addr: a, .. } => {
                    body.push(align_log2);
                    put(&mut body, size);
                    addr(&mut body, a);
                }
                Rec::Free { addr: a, .. } => addr(&mut body, a),
                Rec::Realloc { seq, seq_after, old, size, new } => {
                    put(&mut body, seq_after - seq);
                    addr(&mut body, old);
                    put(&mut body, size);
                    addr(&mut body, new);
                }
            }
        }
        let start = self.out.len();
        self.out.push(TAG_CHUNK);
        put(&mut self.out, u64::from(thread));
        put(&mut self.out, 0);
        put(&mut self.out, body.len() as u64);
        self.out.extend_from_slice(&body);
        let sum = chunk_checksum(&self.out[start..]);
        self.out.extend_from_slice(&sum.to_le_bytes());
        self.records += recs.len() as u64;
        if !self.threads.contains(&thread) {
            self.threads.push(thread);
        }
    }

    /// The file, with its end record.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(TAG_END);
        put(&mut self.out, self.records);
        put(&mut self.out, self.threads.iter().copied().max().map_or(0, u64::from));
        self.out
    }

    /// The file without its end record (a recording cut short).
    pub fn unfinished(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests;
