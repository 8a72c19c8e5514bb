//! Entries into the allocator: the re-entry guard and the fork gate (see lib.rs).
//!
//! Thread-local state is one `Cell<u8>` with a `const` initialiser and no destructor: in a
//! library loaded at start-up it lives in the static TLS block, so reading it never
//! allocates, never registers a destructor and works on threads created by C code.
//!
//! The gate is a Dekker handshake over sharded in-flight counters:
//! - an entry increments its thread's shard, then reads `FORKING`; if set it steps back
//!   (decrement) and waits;
//! - `fork`'s prepare handler sets `FORKING`, then waits for every shard to read 0.
//!
//! With sequentially consistent operations one of the two always sees the other, so once
//! prepare returns no entry is in flight and none starts until the gate opens. The shards
//! (one cache line each) keep threads from contending on one counter.
//!
//! Invariant: `sum(IN_FLIGHT) == entries in flight + entries stepping back`, and it is 0
//! whenever the thread that forks is between prepare and parent/child.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Not inside the allocator.
const OUTSIDE: u8 = 0;
/// Inside an exported function.
const INSIDE: u8 = 1;
/// The thread that is forking, between prepare and parent/child; passes the gate.
const FORKER: u8 = 2;

std::thread_local! {
    static THREAD_STATE: Cell<u8> = const { Cell::new(OUTSIDE) };
}

const SHARD_COUNT: usize = 16;

#[repr(align(64))]
struct Shard(AtomicUsize);

static IN_FLIGHT: [Shard; SHARD_COUNT] = [const { Shard(AtomicUsize::new(0)) }; SHARD_COUNT];
static FORKING: AtomicBool = AtomicBool::new(false);

/// Proof that this thread is inside the allocator and fork waits for it; leaves on drop.
pub struct Entry {
    /// This thread's state cell (in its static TLS block, alive as long as the thread).
    state: *const Cell<u8>,
    /// The shard incremented on entry, `None` for the forking thread (which is not counted).
    shard: Option<&'static AtomicUsize>,
    /// The thread state to restore on drop.
    before: u8,
}

impl Entry {
    /// Enters, waiting while a fork is being prepared by another thread. `None` when this
    /// thread is already inside the allocator (a re-entered call).
    #[inline]
    pub fn enter() -> Option<Entry> {
        // One TLS lookup per entry: the cell's address serves for the state and the shard.
        let state: *const Cell<u8> = THREAD_STATE.with(|cell| cell as *const Cell<u8>);
        // SAFETY: the cell lives as long as this thread, and only this thread touches it.
        let cell = unsafe { &*state };
        let before = cell.get();
        if before == INSIDE {
            return None;
        }
        cell.set(INSIDE);
        let shard = if before == FORKER { None } else { Some(pass_gate(shard_of(state as usize))) };
        Some(Entry { state, shard, before })
    }
}

impl Drop for Entry {
    #[inline]
    fn drop(&mut self) {
        if let Some(shard) = self.shard {
            shard.fetch_sub(1, Ordering::SeqCst);
        }
        // SAFETY: the entry never leaves the thread that made it (`Entry` is neither Send
        // nor Sync, holding a raw pointer), so the cell is this thread's, still alive.
        unsafe { (*self.state).set(self.before) };
    }
}

/// The shard of the thread whose TLS block is at `tls_addr`.
#[inline]
fn shard_of(tls_addr: usize) -> &'static AtomicUsize {
    let hash = (tls_addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    &IN_FLIGHT[hash >> (usize::BITS - SHARD_COUNT.trailing_zeros())].0
}

#[inline]
fn pass_gate(shard: &'static AtomicUsize) -> &'static AtomicUsize {
    shard.fetch_add(1, Ordering::SeqCst);
    if FORKING.load(Ordering::SeqCst) {
        wait_for_fork(shard);
    }
    shard
}

#[cold]
fn wait_for_fork(shard: &AtomicUsize) {
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

/// `pthread_atfork` prepare: close the gate and wait until no entry is in flight.
pub extern "C" fn before_fork() {
    THREAD_STATE.set(FORKER);
    FORKING.store(true, Ordering::SeqCst);
    for shard in &IN_FLIGHT {
        while shard.0.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
}

/// `pthread_atfork` parent and child: open the gate.
pub extern "C" fn after_fork() {
    FORKING.store(false, Ordering::SeqCst);
    THREAD_STATE.set(OUTSIDE);
}
