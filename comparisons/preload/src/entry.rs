//! Entries into the allocator: the re-entry guard and the fork gate (see lib.rs).
//!
//! Thread-local state is one struct of `Cell`s, with its initial value at thread start
//! (the no-flag flag, then zeros) and without a destructor, in a C `__thread` block of the initial-exec model (entry_tls.c, reached through
//! stratalloc's `StaticTls`, and on x86_64 by the fast entry through its link-time offset,
//! `ie_tls_block!`: from the thread pointer, without `__tls_get_addr`). The library is
//! loaded at start-up, so the block is in every thread's static TLS area: reading it never
//! allocates, never registers a destructor and works on threads created by C code.
//!
//! The gate lets `fork`'s prepare handler wait until no entry is in flight on any thread. It
//! is a Dekker handshake between an entry (announce itself, then read `FORKING`) and the
//! forker (set `FORKING`, then read every announcement); one of the two always sees the
//! other. An entry announces itself in one of two ways:
//! - *its own flag* (the fast way): each thread claims one of `FLAG_COUNT` flags (one cache
//!   line each) on its first entry and gives it back when it exits (a `pthread_key`
//!   destructor: glibc's first keys live inside the thread descriptor, so setting one does
//!   not allocate). An entry sets its flag with a plain store and a compiler fence (then
//!   reads `FORKING`, or, the preload's fast entry, `GATE`, whose forking bit the forker
//!   sets beside `FORKING` before its membarrier), and
//!   clears it with a release store on the way out: no read-modify-write, no fence
//!   instruction. The forker pays for both sides: after setting `FORKING` it calls
//!   `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which runs a full memory barrier on
//!   every running thread of the process, so an entry either saw `FORKING` or its flag is
//!   visible to the forker's reads (the asymmetric fence of liburcu and folly). Used when
//!   the kernel accepted the registration for that command at load ([`init`]).
//! - *a shard counter* (otherwise: no membarrier, no free flag, no pthread key, or a thread
//!   that is exiting): a sequentially consistent increment of one of `SHARD_COUNT` counters
//!   (picked by the thread's TLS address), a read of `FORKING`, a decrement on the way out.
//!
//! Invariants: a flag is set only by its owner thread, between entering and leaving (so it
//! is clear while its thread is outside the allocator); `sum(IN_FLIGHT)` counts the entries
//! in flight by shard plus those stepping back; both are clear on every thread but the
//! forker between prepare and parent/child.

use core::cell::Cell;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, compiler_fence};

use stratalloc::static_tls::StaticTls;

/// Not inside the allocator.
const OUTSIDE: u8 = 0;
/// Inside an exported function.
const INSIDE: u8 = 1;
/// The thread that is forking, between prepare and parent/child; passes the gate.
const FORKER: u8 = 2;

/// A thread's `flag` before it claimed one (zero: the state at thread start).
const NO_FLAG: u16 = 0;
/// A thread's `flag` when it uses the shard counters for good (no flag free at its first
/// entry, no pthread key, or its flag was given back at thread exit).
const SHARDS_ONLY: u16 = 1;
/// A thread's `flag` when it owns flag `i` of `FLAGS`: `FLAG_BASE + i`.
const FLAG_BASE: u16 = 2;

/// This thread's entry state. Its initial value (entry_tls.c's initialiser) is `fast` =
/// [`no_flag`], `OUTSIDE`, `NO_FLAG`.
#[repr(C)]
struct ThreadEntry {
    /// This thread's own flag while entries may use it (claimed, flags on, not the forker),
    /// else [`no_flag`] (never null): the one field the fast entry reads. An own flag's byte
    /// is 1 exactly while the thread is inside through it, which is how a re-entered call is
    /// recognised on that path; `no_flag`'s is 1 for good, so that path steps aside.
    fast: Cell<*const AtomicU8>,
    /// `OUTSIDE`, `INSIDE` or `FORKER`: the re-entry and fork state of the slow entry (a
    /// thread without a fast flag).
    state: Cell<u8>,
    /// `FLAG_BASE` + the index of this thread's flag in `FLAGS`, or `NO_FLAG` /
    /// `SHARDS_ONLY`.
    flag: Cell<u16>,
}

/// Bytes of the C block that holds a thread's `ThreadEntry` (entry_tls.c).
const ENTRY_BLOCK_BYTES: usize = 16;
const _: () = assert!(
    core::mem::size_of::<ThreadEntry>() <= ENTRY_BLOCK_BYTES && core::mem::align_of::<ThreadEntry>() <= 16
);

const _: () = assert!(core::mem::offset_of!(ThreadEntry, fast) == 0);

unsafe extern "C" {
    /// The calling thread's entry block (entry_tls.c): 16 bytes, 16-aligned, initial-exec
    /// model; at thread start its first word points at `stratalloc_preload_no_flag`, the rest
    /// is zero.
    fn stratalloc_preload_entry_block() -> *mut u8;
    /// A flag that is 1 for good (entry_tls.c, read-only): `fast` of a thread without a
    /// flag of its own, so that the fast entry sees "inside" and steps aside without a null
    /// test. Never written.
    static stratalloc_preload_no_flag: AtomicU8;
}

/// The flag `fast` holds while the thread has no flag of its own: always 1.
#[inline(always)]
fn no_flag() -> *const AtomicU8 {
    // Only the address is taken; the flag is read by the fast entry and never written.
    &raw const stratalloc_preload_no_flag
}

// SAFETY: the accessor is a C function that only takes the address of an initial-exec
// `__thread` array (entry_tls.c): no allocation, no lock, callable on any thread.
static THREAD_BLOCK: StaticTls = unsafe { StaticTls::new(stratalloc_preload_entry_block) };

/// The calling thread's entry state: valid until the thread's descriptor is freed (after
/// every exit destructor), used by this thread only.
#[inline(always)]
fn thread() -> *const ThreadEntry {
    // The block is 16-aligned, large enough (asserted above) and holds its initial value at
    // thread start (`no_flag`'s address, then zero bytes), a valid `ThreadEntry` (`Cell`s of
    // integers and of a pointer).
    THREAD_BLOCK.get().cast::<ThreadEntry>().cast_const()
}

/// The calling thread's entry state for [`FastEntry::enter`], valid from the thread's first
/// instruction: on x86_64 by the block's link-time TLS offset (`ie_tls_block!`: one load, no
/// call, no test), elsewhere as [`thread`] gives it.
#[inline(always)]
fn fast_thread() -> *const ThreadEntry {
    #[cfg(target_arch = "x86_64")]
    {
        // The block of `thread()` (the same variable of entry_tls.c), by its GOT entry.
        stratalloc::ie_tls_block!("stratalloc_preload_entry").cast::<ThreadEntry>().cast_const()
    }
    #[cfg(not(target_arch = "x86_64"))]
    thread()
}

/// Runs `f` with the calling thread's entry state.
#[inline]
fn with_thread<R>(f: impl FnOnce(&ThreadEntry) -> R) -> R {
    // SAFETY: `thread()` is this thread's live, initialised state, touched by this thread
    // only; the borrow ends with the call.
    f(unsafe { &*thread() })
}

const SHARD_COUNT: usize = 16;
const FLAG_COUNT: usize = 512;

#[repr(align(64))]
struct Shard(AtomicUsize);

#[repr(align(64))]
struct Flag(AtomicU8);

static IN_FLIGHT: [Shard; SHARD_COUNT] = [const { Shard(AtomicUsize::new(0)) }; SHARD_COUNT];
static FLAGS: [Flag; FLAG_COUNT] = [const { Flag(AtomicU8::new(0)) }; FLAG_COUNT];
/// Bit `i` set ⇔ flag `i` belongs to a thread.
static OWNED: [AtomicU64; FLAG_COUNT / 64] = [const { AtomicU64::new(0) }; FLAG_COUNT / 64];
static FORKING: AtomicBool = AtomicBool::new(false);
/// The fast entry's one test, made after its flag is set (`FastEntry::enter`): 0 when the
/// fast paths may run, else the reasons they may not, as bits: `GATE_OFF` (the default
/// strategy is not the selected one, or not chosen yet, or calls are traced: set by
/// `fast_paths_off`, cleared once by `fast_paths_on`) and `GATE_FORKING` (a fork is being
/// prepared: set by `before_fork` beside `FORKING`, with the same handshake, cleared by
/// `after_fork_parent`). One byte, so that the test is one compare with memory.
static GATE: AtomicU8 = AtomicU8::new(GATE_OFF);
/// `GATE`'s bit: the fast paths are off (see `GATE`).
const GATE_OFF: u8 = 1;
/// `GATE`'s bit: a fork is being prepared (see `GATE`).
const GATE_FORKING: u8 = 2;

/// Turns the fast paths on (`heaps::choose`, once, when the default strategy is selected):
/// its SeqCst read-modify-write orders the heap's selection before any fast entry that reads
/// the gate open (`FastEntry::enter`'s Acquire load).
pub fn fast_paths_on() {
    GATE.fetch_and(!GATE_OFF, Ordering::SeqCst);
}

/// Turns the fast paths off for good (`heaps::fast_off`: tracing starts).
pub fn fast_paths_off() {
    GATE.fetch_or(GATE_OFF, Ordering::SeqCst);
}
/// Whether entries may use their own flags: the membarrier registration succeeded and the
/// pthread key exists.
static FLAGS_ON: AtomicBool = AtomicBool::new(false);
/// The pthread key whose destructor gives a thread's flag back (valid when `FLAGS_ON`).
static KEY: AtomicUsize = AtomicUsize::new(0);

/// How an entry announced itself (and so how it leaves).
enum Gate {
    /// Its thread's own flag (the fast entry).
    Flag(&'static AtomicU8),
    /// The slow entry: the thread state to restore, and the shard counter it incremented
    /// (none for the forking thread, which is not counted).
    Slow { before: u8, shard: Option<&'static AtomicUsize> },
}

/// Proof that this thread is inside the allocator and fork waits for it; leaves on drop.
pub struct Entry {
    /// This thread's state (in its static TLS block, alive as long as the thread).
    thread: *const ThreadEntry,
    /// How it passed the gate.
    gate: Gate,
}

impl Entry {
    /// Enters, waiting while a fork is being prepared by another thread. `None` when this
    /// thread is already inside the allocator (a re-entered call).
    #[inline]
    pub fn enter() -> Option<Entry> {
        // One TLS lookup per entry: the struct's address serves for the state, the flag and
        // the shard.
        let thread = thread();
        // SAFETY: the struct lives as long as this thread (`thread()`), valid from thread
        // start; only this thread touches it.
        let t = unsafe { &*thread };
        let fast = t.fast.get();
        if fast == no_flag() {
            return enter_slow(thread);
        }
        // SAFETY: `fast` is `no_flag()` (excluded above) or one of the `FLAGS` (a static).
        let flag = unsafe { &*fast };
        // Only this thread writes its flag, so its own relaxed read is exact.
        if flag.load(Ordering::Relaxed) != 0 {
            return None;
        }
        // The fast side of the asymmetric Dekker handshake: the forker's membarrier stands for
        // the fence between this store and the load below.
        flag.store(1, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        if FORKING.load(Ordering::Relaxed) {
            wait_for_fork_flag(flag);
        }
        // Orders the heap accesses of this entry after the gate.
        compiler_fence(Ordering::SeqCst);
        Some(Entry { thread, gate: Gate::Flag(flag) })
    }
}

impl Drop for Entry {
    #[inline]
    fn drop(&mut self) {
        match self.gate {
            Gate::Flag(flag) => flag.store(0, Ordering::Release),
            Gate::Slow { before, shard } => {
                if let Some(shard) = shard {
                    shard.fetch_sub(1, Ordering::SeqCst);
                }
                // SAFETY: the entry never leaves the thread that made it (`Entry` is neither
                // Send nor Sync, holding a raw pointer), so the struct is this thread's, still
                // alive.
                unsafe { (*self.thread).state.set(before) };
            }
        }
    }
}

/// An entry through this thread's own flag only, for the preload's fast paths, which do
/// nothing else when it fails; leaves on drop. It is `Entry::enter`'s fast way without its
/// slow ways: the same flag, set and cleared the same way, so the gate's handshake and the
/// re-entry mark are the same.
#[repr(transparent)]
pub struct FastEntry(&'static AtomicU8);

impl FastEntry {
    /// Enters if the fast paths are on (`GATE`: the default strategy selected, calls not
    /// traced), this thread has its own flag, is not inside the allocator already and no
    /// fork is being prepared; `None` otherwise, with the thread outside the allocator as it
    /// was (the caller then takes its general path, whose `Entry::enter` waits or falls
    /// back). The gate is read before the flag is set (so that another strategy's calls
    /// step aside at once) and again after it (the fork's handshake needs the read after
    /// the store); each read tests the strategy and the fork together.
    #[inline(always)]
    pub fn enter() -> Option<FastEntry> {
        // No call and no test of the block's offset on this path: on x86_64 it is the
        // linker's (valid from the first instruction, before `heaps::choose` too).
        // The gate read once before the flag too: under any strategy but the default the
        // gate stays closed for good, and those calls would otherwise pay the flag's store,
        // the read and the flag's clear before their general path (7 instructions a call).
        // The read after the store below stays: the fork's handshake needs it.
        if gate_closed() {
            return None;
        }
        let thread = fast_thread();
        // SAFETY: as in `Entry::enter`: this thread's live state (the block `thread()` gives),
        // touched by this thread only.
        let t = unsafe { &*thread };
        // SAFETY: `fast` is `no_flag()` or one of the `FLAGS` (statics), never null.
        let flag = unsafe { &*t.fast.get() };
        // Only this thread writes its flag, so its own relaxed read is exact; `no_flag()`
        // reads 1 (a thread without a flag of its own: `Entry::enter`'s slow way).
        if byte_set(flag) {
            return None;
        }
        // As in `Entry::enter`: the forker's membarrier stands for the fence between this
        // store and the load below.
        flag.store(1, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        // Acquire: pairs with `fast_paths_on`, so the heap chosen before it is seen.
        if gate_closed() {
            // Steps back without having touched the heap; `Entry::enter` waits for a fork.
            flag.store(0, Ordering::Release);
            return None;
        }
        // Orders the heap accesses of this entry after the gate.
        compiler_fence(Ordering::SeqCst);
        Some(FastEntry(flag))
    }
}

/// Whether `b` is not 0, by a relaxed load (exact for a byte only this thread writes): on
/// x86_64 one compare of the byte in memory with 0 and a jump (LLVM loads an atomic byte
/// into a register before it tests it: one instruction more on each fast path).
#[inline(always)]
fn byte_set(b: &AtomicU8) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: one `cmp` reading the byte `b` points at (valid: a reference), an atomic
        // byte load on x86_64, then a jump to the label on a byte that is not 0; it writes
        // nothing and uses no stack, only the flags change.
        unsafe {
            core::arch::asm!(
                "cmp byte ptr [{b}], 0",
                "jne {set}",
                b = in(reg) b.as_ptr(),
                set = label { return true; },
                options(nostack, readonly)
            );
        }
        false
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        b.load(Ordering::Relaxed) != 0
    }
}

/// Whether `GATE` is closed (not 0), by an Acquire load: on x86_64 one compare of the
/// static's byte with 0 (`byte_set` with the address in the instruction). A plain x86_64
/// load has Acquire's order in the hardware (TSO: no later load or store moves before it);
/// for the compiler the asm may read any memory (it is not `nomem`), and `FastEntry::enter`
/// puts a compiler fence after it, before the heap's first access.
#[inline(always)]
fn gate_closed() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: one `cmp` reading `GATE`'s byte (a static of this library, addressed
        // relative to the instruction), then a jump to the label if it is not 0; it writes
        // nothing and uses no stack, only the flags change.
        unsafe {
            core::arch::asm!(
                "cmp byte ptr [rip + {g}], 0",
                "jne {closed}",
                g = sym GATE,
                closed = label { return true; },
                options(nostack, readonly)
            );
        }
        false
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        GATE.load(Ordering::Acquire) != 0
    }
}

impl Drop for FastEntry {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// The entry of a thread without a fast flag: the forker, a thread's first entry (which
/// claims a flag, then enters through it), a thread on the shard counters.
#[cold]
#[inline(never)]
fn enter_slow(thread: *const ThreadEntry) -> Option<Entry> {
    // SAFETY: as in `Entry::enter`: this thread's live state.
    let t = unsafe { &*thread };
    let before = t.state.get();
    if before == INSIDE {
        return None;
    }
    if before == FORKER {
        t.state.set(INSIDE);
        return Some(Entry { thread, gate: Gate::Slow { before, shard: None } });
    }
    if t.flag.get() == NO_FLAG {
        // INSIDE while claiming: a call re-entered from `pthread_setspecific` takes the
        // fallback.
        t.state.set(INSIDE);
        let claimed = claim_flag(t);
        t.state.set(OUTSIDE);
        if claimed != SHARDS_ONLY {
            return Entry::enter();
        }
    }
    t.state.set(INSIDE);
    let shard = shard_of(thread.addr());
    shard.fetch_add(1, Ordering::SeqCst);
    if FORKING.load(Ordering::SeqCst) {
        wait_for_fork_shard(shard);
    }
    Some(Entry { thread, gate: Gate::Slow { before, shard: Some(shard) } })
}

/// The fast flag for a thread whose `flag` is `raw`: its own flag if it claimed one, else
/// [`no_flag`].
fn fast_flag(raw: u16) -> *const AtomicU8 {
    match FLAGS.get(usize::from(raw.wrapping_sub(FLAG_BASE))) {
        Some(f) if raw >= FLAG_BASE => &f.0,
        _ => no_flag(),
    }
}

/// The shard of the thread whose TLS block is at `tls_addr`.
#[inline]
fn shard_of(tls_addr: usize) -> &'static AtomicUsize {
    let hash = (tls_addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    &IN_FLIGHT[hash >> (usize::BITS - SHARD_COUNT.trailing_zeros())].0
}

/// This thread's first entry: claims a free flag and has the pthread key give it back at
/// thread exit; returns the thread's new `flag` value (`SHARDS_ONLY` when flags are off or
/// none is free).
#[cold]
fn claim_flag(t: &ThreadEntry) -> u16 {
    let mut claimed = SHARDS_ONLY;
    if FLAGS_ON.load(Ordering::Acquire) {
        'words: for (w, word) in OWNED.iter().enumerate() {
            let mut bits = word.load(Ordering::Relaxed);
            while bits != u64::MAX {
                let bit = (!bits).trailing_zeros() as usize;
                match word.compare_exchange_weak(bits, bits | 1 << bit, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => {
                        claimed = FLAG_BASE + (w * 64 + bit) as u16;
                        break 'words;
                    }
                    Err(now) => bits = now,
                }
            }
        }
    }
    if claimed != SHARDS_ONLY {
        // The key's value is the flag's index + 1 (never null, so the destructor runs); it
        // is a number, never dereferenced, hence a pointer without provenance.
        let index = usize::from(claimed - FLAG_BASE);
        let value = ptr::without_provenance::<c_void>(index + 1);
        // SAFETY: `KEY` holds a key made by `pthread_key_create` (`FLAGS_ON` is only set
        // after it succeeded) and never deleted.
        if unsafe { libc::pthread_setspecific(KEY.load(Ordering::Relaxed) as libc::pthread_key_t, value) }
            != 0
        {
            release_flag_bit(index);
            claimed = SHARDS_ONLY;
        }
    }
    t.flag.set(claimed);
    t.fast.set(fast_flag(claimed));
    claimed
}

fn release_flag_bit(index: usize) {
    OWNED[index / 64].fetch_and(!(1 << (index % 64)), Ordering::Release);
}

/// The pthread key's destructor, at thread exit: gives the thread's flag back. The thread
/// uses the shard counters for any later entry (other exit-time destructors may still
/// allocate), so it never claims a flag again.
extern "C" fn give_flag_back(value: *mut c_void) {
    let index = value.addr().wrapping_sub(1);
    if index < FLAG_COUNT {
        with_thread(|t| {
            t.fast.set(no_flag());
            t.flag.set(SHARDS_ONLY);
        });
        release_flag_bit(index);
    }
}

#[cold]
fn wait_for_fork_flag(flag: &AtomicU8) {
    loop {
        flag.store(0, Ordering::Release);
        while FORKING.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        flag.store(1, Ordering::Relaxed);
        compiler_fence(Ordering::SeqCst);
        if !FORKING.load(Ordering::Relaxed) {
            return;
        }
    }
}

#[cold]
fn wait_for_fork_shard(shard: &AtomicUsize) {
    loop {
        shard.fetch_sub(1, Ordering::SeqCst);
        while FORKING.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        shard.fetch_add(1, Ordering::SeqCst);
        if !FORKING.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Linux `membarrier` commands (`<linux/membarrier.h>`).
const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: `membarrier(cmd, flags = 0, cpu_id = 0)` takes no pointers; it does not
    // allocate, and an unsupported command is an error return.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long, 0 as libc::c_long) }
}

/// Registers for private expedited membarriers; whether the kernel accepted.
fn register_membarrier() -> bool {
    let supported = membarrier(MEMBARRIER_CMD_QUERY);
    supported >= 0
        && supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED != 0
        && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0
}

/// At load: turns the per-thread flags on if the kernel has private expedited membarriers
/// and a pthread key can be made (otherwise every entry uses the shard counters).
pub fn init() {
    let saved = crate::report::errno();
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is an `extern "C" fn` that lives
    // as long as the process (this library is never unloaded: it serves malloc).
    let made = unsafe { libc::pthread_key_create(&mut key, Some(give_flag_back)) } == 0;
    if made && register_membarrier() {
        KEY.store(key as usize, Ordering::Relaxed);
        FLAGS_ON.store(true, Ordering::Release);
    }
    crate::report::set_errno(saved);
}

/// `pthread_atfork` prepare: close the gate and wait until no entry is in flight.
pub extern "C" fn before_fork() {
    // The forker's own entries (other prepare handlers, the child's and parent's handlers)
    // take the slow entry, which passes them without waiting.
    with_thread(|t| {
        t.state.set(FORKER);
        t.fast.set(no_flag());
    });
    FORKING.store(true, Ordering::SeqCst);
    // The fast entry reads the gate, not `FORKING`: set before the membarrier below, which
    // stands for its fence as for `FORKING`'s readers.
    GATE.fetch_or(GATE_FORKING, Ordering::SeqCst);
    if FLAGS_ON.load(Ordering::Acquire) {
        // The slow side of the handshake: a full barrier on every running thread, so each
        // entry either saw `FORKING` or set its flag where the loads below see it. (It
        // cannot fail once the registration succeeded.)
        let saved = crate::report::errno();
        membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
        crate::report::set_errno(saved);
    }
    for flag in &FLAGS {
        while flag.0.load(Ordering::Acquire) != 0 {
            std::thread::yield_now();
        }
    }
    for shard in &IN_FLIGHT {
        while shard.0.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
}

/// `pthread_atfork` parent: open the gate.
pub extern "C" fn after_fork_parent() {
    GATE.fetch_and(!GATE_FORKING, Ordering::SeqCst);
    FORKING.store(false, Ordering::SeqCst);
    with_thread(|t| {
        t.state.set(OUTSIDE);
        t.fast.set(fast_flag(t.flag.get()));
    });
}

/// `pthread_atfork` child: the parent's other threads do not exist here, so their flags go
/// back (only this thread's stays owned); the membarrier registration is made again for
/// the child's process (flags off if refused: the child has one thread, none in flight, so
/// the switch is safe); then open the gate.
pub extern "C" fn after_fork_child() {
    // This thread's flag index, or past the end if it has none.
    let mine = with_thread(|t| t.flag.get()).wrapping_sub(FLAG_BASE);
    for (w, word) in OWNED.iter().enumerate() {
        let keep = match usize::from(mine).checked_sub(w * 64) {
            Some(bit) if bit < 64 => 1 << bit,
            _ => 0,
        };
        word.store(keep, Ordering::Relaxed);
    }
    if FLAGS_ON.load(Ordering::Relaxed) {
        let saved = crate::report::errno();
        if !register_membarrier() {
            FLAGS_ON.store(false, Ordering::Release);
            if usize::from(mine) < FLAG_COUNT {
                with_thread(|t| t.flag.set(SHARDS_ONLY));
                OWNED[usize::from(mine) / 64].store(0, Ordering::Relaxed);
            }
        }
        crate::report::set_errno(saved);
    }
    after_fork_parent();
}
