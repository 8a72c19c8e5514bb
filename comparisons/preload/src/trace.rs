//! Recording every allocation call to a trace file: `STRATALLOC_TRACE=out.trace`. The
//! format (v2) is `workloads::trace_format`'s, described in comparisons/harness/TRACE.md.
//!
//! Glossary: a *buffer* is one thread's mapped area of encoded records ([`Buf`]); a *flush*
//! writes it as one chunk with one `writev` under the file lock; the *registry* lists the
//! live buffers so that exit can flush them all.
//!
//! Record path (called by the exported functions after the call, or before it for a free;
//! only when [`on`]): take a global sequence number (one atomic counter) -> lock this
//! thread's buffer (a byte: 0 free, 1 recording, 2 retired) -> encode the record (varints,
//! deltas against the previous record) -> flush first if the record might not fit. Nothing
//! here allocates: buffers are `mmap`ed, paths and chunk headers live on the stack, the
//! file is written with `writev`. A thread whose buffer is retired or busy (a signal handler
//! that allocates in the middle of a record) writes its record as a chunk of its own.
//!
//! Process events:
//! - Thread exit: a `pthread_key` destructor flushes the buffer and retires it (lock byte 2)
//!   for a later thread to reuse: memory is one buffer per thread alive at once (at most
//!   `REGISTRY_SLOTS`; more threads write each call as a chunk of its own). Later calls of
//!   the exiting thread (other destructors) go as chunks of their own.
//! - Exit: a `.fini_array` function stops recording, takes every buffer (waiting for a
//!   record in progress), flushes them and writes the end record. Without it (`_exit`, a
//!   kill, `exec`) the file has no end record and the reader says so (`--partial`).
//! - Fork: the child keeps recording, into a file of its own, `out.trace.<pid>` (opened at
//!   its first flush, so a child that execs at once leaves no file); the parent's buffers
//!   are emptied and retired in the child (the parent writes them). Buffers are never
//!   unmapped. Blocks the child inherited are
//!   unknown to its trace: their frees are counted and dropped when read.
//! - Exec and spawned programs: the first recorded process renames `STRATALLOC_TRACE` to
//!   `STRATALLOC_CHILD` in its own environment (in place, same length), so every program it
//!   or its children start (with the preload inherited) finds `STRATALLOC_CHILD` and writes
//!   `out.trace.<pid>` (`out.trace.<pid>.<n>` if that exists) instead of the named file.
//!   A program exec'd in place of a recorded one (same pid) takes its file over from the
//!   start: the calls of the program that exec'd are left out (its blocks do not survive
//!   the exec), so `STRATALLOC_TRACE=out.trace wrapper-script` records the program the
//!   script execs in `out.trace` (the first process creates its file at load for this).
//!
//! Invariants: a buffer's bytes are touched only by whoever moved its lock byte to 1 (its
//! owner recording, a reuser) or from 0 to 1 for good (the exit flush); every write to the file is made
//! under `FILE_LOCK`, after which no write happens once the end record is written (`CLOSED`).

use core::cell::Cell;
use core::ffi::{CStr, c_char, c_void};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};

use workloads::trace_format::{
    FNV32_START, KIND_FREE, KIND_REALLOC, MAGIC, RECORD_MAX_BYTES, TAG_CHUNK, TAG_END, VARINT_MAX_BYTES,
    VERSION, fnv32, put_varint, zigzag,
};

use crate::report::{errno, set_errno};

pub use workloads::trace_format::{KIND_ALIGNED, KIND_ALLOC, KIND_CALLOC};

/// Bytes of records a thread buffers before a flush.
const BUF_BYTES: usize = 64 << 10;
/// Threads with a buffer at once; more record each call as a chunk of its own.
const REGISTRY_SLOTS: usize = 1024;
/// Longest trace path kept (with room for `.<pid>.<n>`).
const PATH_BYTES: usize = 4000;

/// Whether calls are recorded.
static ON: AtomicBool = AtomicBool::new(false);
/// The global order.
static SEQ: AtomicU64 = AtomicU64::new(0);
/// Thread ids (per process image, from 1).
static NEXT_THREAD: AtomicU32 = AtomicU32::new(1);
/// The trace file, or -1 before it is opened.
static FD: AtomicI32 = AtomicI32::new(-1);
/// Opening failed: nothing more is written.
static FAILED: AtomicBool = AtomicBool::new(false);
/// Set in a forked child: its file is `<path>.<pid>`.
static FORKED: AtomicBool = AtomicBool::new(false);
/// Set in a program started by a recorded process (it found `STRATALLOC_CHILD`): its file
/// is `<path>.<pid>`.
static DESCENDANT: AtomicBool = AtomicBool::new(false);
/// Held by every write to the file (and by opening it).
static FILE_LOCK: AtomicBool = AtomicBool::new(false);
/// The end record is written.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// Records written to this process's file (for the end record).
static RECORDS: AtomicU64 = AtomicU64::new(0);
/// Records dropped (a signal handler allocating during a flush, or the file unwritable).
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// The pthread key whose destructor flushes a thread's buffer.
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);
static REGISTRY: [AtomicPtr<Buf>; REGISTRY_SLOTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; REGISTRY_SLOTS];

/// The `STRATALLOC_TRACE` path, NUL-terminated; written once by [`init`] before `ON`.
struct PathCell(core::cell::UnsafeCell<[u8; PATH_BYTES]>);
// SAFETY: written only by `init`, a constructor that runs while the process has one thread,
// before `ON` is set; read only after (by threads created later, or the same thread).
unsafe impl Sync for PathCell {}
static PATH: PathCell = PathCell(core::cell::UnsafeCell::new([0; PATH_BYTES]));

const UNLOCKED: u8 = 0;
const RECORDING: u8 = 1;
const RETIRED: u8 = 2;

/// One thread's buffer, in a mapping of its own.
#[repr(C)]
struct Buf {
    lock: AtomicU8,
    thread: u32,
    /// Seq of the last record encoded (the next chunk's base after a flush).
    prev_seq: u64,
    /// The current chunk's base seq.
    base_seq: u64,
    prev_addr: u64,
    len: usize,
    records: u64,
    data: [u8; BUF_BYTES],
}

/// This thread's recording state.
struct ThreadTrace {
    buf: Cell<*mut Buf>,
    thread: Cell<u32>,
    /// Set after the thread-exit destructor: no new buffer.
    retired: Cell<bool>,
    /// Inside a write of the file (a nested record is dropped, not deadlocked).
    writing: Cell<bool>,
}

std::thread_local! {
    static THREAD: ThreadTrace = const {
        ThreadTrace {
            buf: Cell::new(ptr::null_mut()),
            thread: Cell::new(0),
            retired: Cell::new(false),
            writing: Cell::new(false),
        }
    };
}

/// Whether calls are recorded: the one branch on the exported functions' paths.
#[inline(always)]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// `on` for `heaps::choose`, after its store of the fast row (its half of the handshake
/// with `init`, which stores `ON` and then clears the fast row).
pub fn on_seq_cst() -> bool {
    ON.load(Ordering::SeqCst)
}

/// A fresh sequence number (a free's or a realloc's, taken before the call).
#[inline]
pub fn seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// An allocation that returned `p` (NULL: failed, not recorded).
#[cold]
pub fn alloc(kind: u8, align_log2: u8, size: usize, p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let seq = seq();
    record(
        seq,
        |out, pos, prev_addr| {
            let mut pos = pos;
            if kind == KIND_ALIGNED {
                out[pos] = align_log2;
                pos += 1;
            }
            pos = put_varint(out, pos, size as u64);
            put_addr(out, pos, prev_addr, p.addr() as u64)
        },
        kind,
    );
}

/// A free of `p` (non-NULL), with its seq taken before the call.
#[cold]
pub fn free(seq: u64, p: *mut c_void) {
    record(seq, |out, pos, prev_addr| put_addr(out, pos, prev_addr, p.addr() as u64), KIND_FREE);
}

/// A realloc of `old` (non-NULL) to `size > 0` bytes that returned `new` (non-NULL); `seq`
/// was taken before the call.
#[cold]
pub fn realloc(seq: u64, old: *mut c_void, size: usize, new: *mut c_void) {
    let after = self::seq();
    record(
        seq,
        |out, pos, prev_addr| {
            let pos = put_varint(out, pos, after - seq);
            let pos = put_addr(out, pos, prev_addr, old.addr() as u64);
            let pos = put_varint(out, pos, size as u64);
            put_addr(out, pos, prev_addr, new.addr() as u64)
        },
        KIND_REALLOC,
    );
}

/// Writes an address as a zigzag delta against `*prev`.
#[inline]
fn put_addr(out: &mut [u8], pos: usize, prev: &mut u64, addr: u64) -> usize {
    let d = addr.wrapping_sub(*prev) as i64;
    *prev = addr;
    put_varint(out, pos, zigzag(d))
}

/// Encodes one record: kind, seq delta, then `fields`.
#[inline]
fn record(seq: u64, fields: impl Fn(&mut [u8], usize, &mut u64) -> usize, kind: u8) {
    THREAD.with(|t| {
        if let Some(buf) = claim(t) {
            // SAFETY: `claim` set the buffer's lock to RECORDING for this thread: no one
            // else touches its fields until the release store below.
            let b = unsafe { &mut *buf };
            if b.len + RECORD_MAX_BYTES > BUF_BYTES {
                flush(b, t);
            }
            let (mut prev_addr, start) = (b.prev_addr, b.len);
            b.data[start] = kind;
            // Signed: a signal handler's call can take a later seq and be recorded first.
            let pos = put_varint(&mut b.data, start + 1, zigzag(seq.wrapping_sub(b.prev_seq) as i64));
            b.len = fields(&mut b.data, pos, &mut prev_addr);
            (b.prev_addr, b.prev_seq) = (prev_addr, seq);
            b.records += 1;
            b.lock.store(UNLOCKED, Ordering::Release);
        } else {
            lone_record(t, seq, kind, &fields);
        }
    });
}

/// This thread's buffer, locked for recording; `None` when it has none (retired, no room
/// in the registry, mapping refused) or it is busy (a nested call).
#[inline]
fn claim(t: &ThreadTrace) -> Option<*mut Buf> {
    let mut buf = t.buf.get();
    if buf.is_null() {
        buf = new_buffer(t)?;
    }
    // SAFETY: buffers are never unmapped once registered.
    let lock = unsafe { &(*buf).lock };
    lock.compare_exchange(UNLOCKED, RECORDING, Ordering::Acquire, Ordering::Relaxed).ok().map(|_| buf)
}

/// This thread's buffer: a retired one reused, or a new mapping registered; and the
/// pthread key set so that thread exit flushes it.
#[cold]
fn new_buffer(t: &ThreadTrace) -> Option<*mut Buf> {
    if t.retired.get() {
        return None;
    }
    let id = thread_id(t);
    let buf = reuse_buffer().or_else(map_buffer)?;
    // SAFETY: this thread holds the buffer's lock (RECORDING): its fields are ours to set.
    unsafe {
        let b = &mut *buf;
        (b.thread, b.prev_seq, b.base_seq, b.prev_addr, b.len, b.records) = (id, 0, 0, 0, 0, 0);
        b.lock.store(UNLOCKED, Ordering::Release);
    }
    let key = KEY.load(Ordering::Relaxed);
    if key != u32::MAX {
        // SAFETY: `key` was made by `pthread_key_create` in `init` and is never deleted.
        unsafe { libc::pthread_setspecific(key as libc::pthread_key_t, buf.cast()) };
    }
    t.buf.set(buf);
    Some(buf)
}

/// A registered buffer left by an exited thread, locked (RECORDING).
fn reuse_buffer() -> Option<*mut Buf> {
    REGISTRY.iter().map(|s| s.load(Ordering::Acquire)).find(|&buf| {
        // SAFETY: registered buffers are never unmapped.
        !buf.is_null()
            && unsafe { &(*buf).lock }
                .compare_exchange(RETIRED, RECORDING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    })
}

/// A new buffer, registered and locked (RECORDING); `None` if the kernel refuses the
/// mapping or the registry is full.
fn map_buffer() -> Option<*mut Buf> {
    let saved = errno();
    // SAFETY: an anonymous private mapping at an address of the kernel's choice.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size_of::<Buf>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    set_errno(saved);
    if p == libc::MAP_FAILED {
        return None;
    }
    let buf = p.cast::<Buf>();
    // SAFETY: fresh zeroed memory of `Buf`'s size, page-aligned, not yet shared.
    unsafe { (*buf).lock.store(RECORDING, Ordering::Relaxed) };
    let registered = REGISTRY
        .iter()
        .any(|s| s.compare_exchange(ptr::null_mut(), buf, Ordering::AcqRel, Ordering::Relaxed).is_ok());
    if !registered {
        // SAFETY: our own mapping, never shared.
        unsafe { libc::munmap(p, size_of::<Buf>()) };
        return None;
    }
    Some(buf)
}

fn thread_id(t: &ThreadTrace) -> u32 {
    if t.thread.get() == 0 {
        t.thread.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
    }
    t.thread.get()
}

/// A record as a chunk of its own (no buffer), written at once.
#[cold]
fn lone_record(t: &ThreadTrace, seq: u64, kind: u8, fields: &dyn Fn(&mut [u8], usize, &mut u64) -> usize) {
    let mut body = [0u8; RECORD_MAX_BYTES];
    body[0] = kind;
    let pos = put_varint(&mut body, 1, zigzag(seq as i64));
    let len = fields(&mut body, pos, &mut 0);
    write_chunk(t, thread_id(t), 0, &body[..len], 1);
}

/// Writes `b` as a chunk and empties it. The caller holds its lock.
fn flush(b: &mut Buf, t: &ThreadTrace) {
    if b.len == 0 {
        return;
    }
    write_chunk(t, b.thread, b.base_seq, &b.data[..b.len], b.records);
    (b.len, b.records, b.base_seq, b.prev_addr) = (0, 0, b.prev_seq, 0);
}

/// Writes one chunk under the file lock (its records are counted as dropped if it cannot).
fn write_chunk(t: &ThreadTrace, thread: u32, base: u64, body: &[u8], records: u64) {
    let mut head = [0u8; 1 + 3 * VARINT_MAX_BYTES];
    head[0] = TAG_CHUNK;
    let mut n = put_varint(&mut head, 1, u64::from(thread));
    n = put_varint(&mut head, n, base);
    n = put_varint(&mut head, n, body.len() as u64);
    let sum = fnv32(fnv32(FNV32_START, &head[..n]), body).to_le_bytes();
    let written = FileLock::take(t)
        .is_some_and(|_file| open_file().is_some_and(|fd| write_all(fd, &[&head[..n], body, &sum])));
    if written {
        RECORDS.fetch_add(records, Ordering::Relaxed);
    } else {
        DROPPED.fetch_add(records, Ordering::Relaxed);
    }
}

/// `FILE_LOCK` held; also refuses when the end record is written or this thread is
/// already writing (a nested record from a signal handler).
struct FileLock<'a>(&'a ThreadTrace, i32);

impl<'a> FileLock<'a> {
    fn take(t: &'a ThreadTrace) -> Option<FileLock<'a>> {
        if t.writing.get() {
            return None;
        }
        t.writing.set(true);
        while FILE_LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::thread::yield_now();
        }
        let lock = FileLock(t, errno());
        if CLOSED.load(Ordering::Relaxed) { None } else { Some(lock) }
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        FILE_LOCK.store(false, Ordering::Release);
        self.0.writing.set(false);
        set_errno(self.1);
    }
}

/// Writes the pieces in order with `writev`, finishing short writes; false on an error.
fn write_all(fd: i32, pieces: &[&[u8]]) -> bool {
    let mut iov = [libc::iovec { iov_base: ptr::null_mut(), iov_len: 0 }; 4];
    let mut count = 0;
    for p in pieces.iter().filter(|p| !p.is_empty()) {
        iov[count] = libc::iovec { iov_base: p.as_ptr().cast_mut().cast(), iov_len: p.len() };
        count += 1;
    }
    let mut first = 0;
    while first < count {
        // SAFETY: `iov[first..count]` describe live byte slices; writev does not allocate.
        let n = unsafe { libc::writev(fd, iov[first..].as_ptr(), (count - first) as i32) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return false;
        }
        let mut n = n as usize;
        while first < count && n >= iov[first].iov_len {
            n -= iov[first].iov_len;
            first += 1;
        }
        if first < count {
            // SAFETY: `n < iov_len`, so the advanced pointer stays inside the piece.
            iov[first].iov_base = unsafe { iov[first].iov_base.cast::<u8>().add(n) }.cast();
            iov[first].iov_len -= n;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------
// The file.

/// A path on the stack: the trace path with suffixes.
struct PathBuf {
    bytes: [u8; PATH_BYTES + 48],
    len: usize,
}

impl PathBuf {
    fn base() -> PathBuf {
        let mut p = PathBuf { bytes: [0; PATH_BYTES + 48], len: 0 };
        // SAFETY: `PATH` is written by `init` before `ON`, and only read afterwards.
        let base = unsafe { &*PATH.0.get() };
        let len = base.iter().position(|&b| b == 0).unwrap_or(0);
        p.bytes[..len].copy_from_slice(&base[..len]);
        p.len = len;
        p
    }

    fn push(&mut self, sep: u8, n: u64) {
        let mut digits = [0u8; 20];
        let (mut i, mut v) = (digits.len(), n);
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes[self.len] = sep;
        let d = &digits[i..];
        self.bytes[self.len + 1..self.len + 1 + d.len()].copy_from_slice(d);
        self.len += 1 + d.len();
        self.bytes[self.len] = 0;
    }

    fn c(&self) -> *const c_char {
        self.bytes.as_ptr().cast()
    }
}

/// The writer pid in the header of the file at `path`, if it is a trace.
fn header_pid(path: &PathBuf) -> Option<u64> {
    // SAFETY: a NUL-terminated path; `open` does not allocate.
    let fd = unsafe { libc::open(path.c(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut head = [0u8; 32];
    // SAFETY: `head` is writable for its length; `fd` was just opened.
    let n = unsafe { libc::read(fd, head.as_mut_ptr().cast(), head.len()) };
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(fd) };
    let head = &head[..n.max(0) as usize];
    if head.len() < 9 || &head[..7] != MAGIC || head[7] != VERSION {
        return None;
    }
    let (mut v, mut shift) = (0u64, 0);
    for &b in &head[8..] {
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    None
}

/// Opens this process's trace file on first use (see the module header for which file);
/// the caller holds `FILE_LOCK`.
fn open_file() -> Option<i32> {
    let fd = FD.load(Ordering::Relaxed);
    if fd >= 0 {
        return Some(fd);
    }
    if FAILED.load(Ordering::Relaxed) {
        return None;
    }
    let _no_cancel = crate::report::NoCancel::new();
    // SAFETY: getpid and getppid have no preconditions.
    let (pid, ppid) = unsafe { (libc::getpid() as u64, libc::getppid() as u64) };
    let base = PathBuf::base();
    let mut own = PathBuf::base();
    own.push(b'.', pid);
    // After an exec the process's earlier program wrote the named file or `<path>.<pid>`:
    // the new program takes that file over.
    let exec_of_first = header_pid(&base) == Some(pid);
    let exec_of_child = !exec_of_first && header_pid(&own) == Some(pid);
    let descendant = (FORKED.load(Ordering::Relaxed) || DESCENDANT.load(Ordering::Relaxed)) && !exec_of_first;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC;
    let fd = if exec_of_child {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::open(own.c(), flags | libc::O_TRUNC, 0o644) }
    } else if descendant {
        let mut fd = -1;
        for n in 0..100u64 {
            let mut p = PathBuf::base();
            p.push(b'.', pid);
            if n > 0 {
                p.push(b'.', n);
            }
            // SAFETY: a NUL-terminated path.
            fd = unsafe { libc::open(p.c(), flags | libc::O_EXCL, 0o644) };
            if fd >= 0 || errno() != libc::EEXIST {
                break;
            }
        }
        fd
    } else {
        // SAFETY: a NUL-terminated path.
        unsafe { libc::open(base.c(), flags | libc::O_TRUNC, 0o644) }
    };
    if fd < 0 {
        FAILED.store(true, Ordering::Relaxed);
        crate::report::write_stderr(
            b"stratalloc: STRATALLOC_TRACE: cannot create the trace file; not recording\n",
        );
        return None;
    }
    let mut head = [0u8; 8 + 2 * VARINT_MAX_BYTES];
    head[..7].copy_from_slice(MAGIC);
    head[7] = VERSION;
    let n = put_varint(&mut head, 8, pid);
    let n = put_varint(&mut head, n, ppid);
    if !write_all(fd, &[&head[..n]]) {
        FAILED.store(true, Ordering::Relaxed);
        return None;
    }
    FD.store(fd, Ordering::Relaxed);
    Some(fd)
}

// ---------------------------------------------------------------------------------------
// Start, thread exit, fork, exit.

unsafe extern "C" {
    static environ: *const *const c_char;
}

/// The variable that asks for a trace.
const TRACE_VAR: &[u8] = b"STRATALLOC_TRACE";
/// What the recorder renames it to in its own environment, for its descendants (same length).
const CHILD_VAR: &[u8] = b"STRATALLOC_CHILD";

/// Finds `STRATALLOC_TRACE` (this process is the first recorded: renames the variable in
/// place to `STRATALLOC_CHILD`, which the programs it starts inherit) or else
/// `STRATALLOC_CHILD` (a descendant); copies the path into `PATH`. Whether either is set
/// (and the path fits).
fn read_path() -> bool {
    // SAFETY: reading the C library's `environ` pointer (set before constructors run).
    let env = unsafe { environ };
    if env.is_null() {
        return false;
    }
    let (mut trace, mut child) = (ptr::null::<c_char>(), ptr::null::<c_char>());
    let mut at = env;
    loop {
        // SAFETY: `environ` is a NULL-terminated array of NUL-terminated strings.
        let entry = unsafe { *at };
        if entry.is_null() {
            break;
        }
        // SAFETY: a non-null entry of `environ` is a NUL-terminated string.
        let bytes = unsafe { CStr::from_ptr(entry) }.to_bytes();
        if bytes.len() > TRACE_VAR.len() && bytes[TRACE_VAR.len()] == b'=' {
            if bytes.starts_with(TRACE_VAR) {
                trace = entry;
            } else if bytes.starts_with(CHILD_VAR) {
                child = entry;
            }
        }
        // SAFETY: the array goes on at least up to its NULL terminator.
        at = unsafe { at.add(1) };
    }
    let entry = if trace.is_null() { child } else { trace };
    if entry.is_null() {
        return false;
    }
    // SAFETY: one of the entries found above, NUL-terminated.
    let value = &unsafe { CStr::from_ptr(entry) }.to_bytes()[TRACE_VAR.len() + 1..];
    if value.is_empty() || value.len() >= PATH_BYTES {
        return false;
    }
    // SAFETY: only `init` writes `PATH`, once, before recording is switched on.
    let path = unsafe { &mut *PATH.0.get() };
    path[..value.len()].copy_from_slice(value);
    path[value.len()] = 0;
    if trace.is_null() {
        DESCENDANT.store(true, Ordering::Relaxed);
    } else {
        // SAFETY: the entry's first `TRACE_VAR.len()` bytes are the variable's name, in the
        // environment block the kernel (or the program, before any thread) wrote: writable
        // memory that this constructor, running while the process has one thread, may
        // change in place; the length is kept, so the string stays as long.
        unsafe {
            ptr::copy_nonoverlapping(CHILD_VAR.as_ptr(), entry.cast_mut().cast::<u8>(), CHILD_VAR.len())
        };
    }
    true
}

/// At load: reads `STRATALLOC_TRACE`, makes the thread-exit key, registers the fork
/// handlers and switches recording on.
extern "C" fn init() {
    let saved = errno();
    if read_path() {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor lives as long as the process.
        if unsafe { libc::pthread_key_create(&mut key, Some(thread_exit)) } == 0 {
            KEY.store(key, Ordering::Relaxed);
        }
        // SAFETY: the handlers are `extern "C" fn()` that live as long as the process.
        unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
        if !DESCENDANT.load(Ordering::Relaxed) {
            // The first process creates its file at once, so that a program it execs
            // (a wrapper script's real program) finds it and takes it over.
            THREAD.with(|t| {
                if let Some(_file) = FileLock::take(t) {
                    open_file();
                }
            });
        }
        ON.store(true, Ordering::SeqCst);
        crate::heaps::fast_off();
    }
    set_errno(saved);
}

/// Thread exit: flush this thread's buffer and retire it (a later thread reuses it); its
/// later calls go as lone chunks.
extern "C" fn thread_exit(value: *mut c_void) {
    let buf = value.cast::<Buf>();
    THREAD.with(|t| {
        if t.buf.get() != buf || buf.is_null() {
            return;
        }
        t.retired.set(true);
        t.buf.set(ptr::null_mut());
        // SAFETY: registered buffers are never unmapped.
        let lock = unsafe { &(*buf).lock };
        if lock.compare_exchange(UNLOCKED, RECORDING, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return; // taken by the exit flush, which writes it
        }
        // SAFETY: this thread holds the buffer's lock.
        flush(unsafe { &mut *buf }, t);
        lock.store(RETIRED, Ordering::Release);
    });
}

/// Exit: stop recording, flush every buffer, write the end record.
extern "C" fn finish() {
    if !ON.swap(false, Ordering::AcqRel) {
        return;
    }
    let saved = errno();
    THREAD.with(|t| {
        for slot in &REGISTRY {
            let buf = slot.load(Ordering::Acquire);
            if buf.is_null() {
                continue;
            }
            // SAFETY: registered buffers are never unmapped.
            let lock = unsafe { &(*buf).lock };
            loop {
                // Taken for good (left at RECORDING): its owner's later calls are lone
                // chunks, refused once the file is closed.
                match lock.compare_exchange(UNLOCKED, RECORDING, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: this thread holds the buffer's lock.
                        flush(unsafe { &mut *buf }, t);
                        break;
                    }
                    Err(RETIRED) => break,
                    Err(_) => std::thread::yield_now(),
                }
            }
        }
        let Some(_file) = FileLock::take(t) else { return };
        if let Some(fd) = open_file() {
            let mut end = [0u8; 1 + 2 * VARINT_MAX_BYTES];
            end[0] = TAG_END;
            let n = put_varint(&mut end, 1, RECORDS.load(Ordering::Relaxed));
            let n = put_varint(&mut end, n, u64::from(NEXT_THREAD.load(Ordering::Relaxed) - 1));
            write_all(fd, &[&end[..n]]);
        }
        CLOSED.store(true, Ordering::Release);
    });
    if DROPPED.load(Ordering::Relaxed) > 0 {
        crate::report::write_stderr(
            b"stratalloc: STRATALLOC_TRACE: some records were dropped (nested calls or write errors)\n",
        );
    }
    set_errno(saved);
}

/// Fork prepare: no write in flight into the child.
extern "C" fn fork_prepare() {
    while FILE_LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::yield_now();
    }
}

extern "C" fn fork_parent() {
    FILE_LOCK.store(false, Ordering::Release);
}

/// Fork child: a file of its own, opened at the first flush; the parent's buffers are
/// dropped (the parent writes them): the other threads' are retired for reuse, this
/// thread's starts empty.
extern "C" fn fork_child() {
    let mine = THREAD.with(|t| t.buf.get());
    for slot in &REGISTRY {
        let buf = slot.load(Ordering::Relaxed);
        if buf.is_null() || buf == mine {
            continue;
        }
        // SAFETY: the child's copy of another thread's buffer: that thread does not exist
        // here, so nothing else uses it.
        unsafe { (*buf).lock.store(RETIRED, Ordering::Relaxed) };
    }
    if !mine.is_null() {
        // SAFETY: this thread's buffer; the forking thread is not inside a record.
        let b = unsafe { &mut *mine };
        (b.len, b.records, b.base_seq, b.prev_addr) = (0, 0, b.prev_seq, 0);
    }
    let fd = FD.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: the parent's trace descriptor, inherited; the child writes its own file.
        unsafe { libc::close(fd) };
    }
    FORKED.store(true, Ordering::Relaxed);
    FAILED.store(false, Ordering::Relaxed);
    RECORDS.store(0, Ordering::Relaxed);
    FILE_LOCK.store(false, Ordering::Release);
}

#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;

#[used]
#[unsafe(link_section = ".fini_array")]
static FINISH: extern "C" fn() = finish;
