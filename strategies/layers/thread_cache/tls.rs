//! Binding of records to threads (`std`): slots in a const-initialised `thread_local!`
//! without destructor, a separately registered exit guard, and the process-wide registry of
//! live roots that exiting threads consult (the binding of `strategies/tiered/tls.rs`).

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};

use super::record::{Record, Root};
use crate::source::PageSource;
use crate::sync::SpinLock;

/// Heaps one thread keeps a record for at once; one more evicts the least recently used.
const SLOTS: usize = 4;
const UNREGISTERED: u8 = 0;
const REGISTERING: u8 = 1;
const ACTIVE: u8 = 2;
const DEAD: u8 = 3;

/// One binding: the record this thread owns for the heap of generation `generation` (0: empty).
struct Slot {
    generation: Cell<u64>,
    root: Cell<*mut Root>,
    rec: Cell<*mut Record>,
}

struct Slots {
    state: Cell<u8>,
    /// Most recently used first.
    slot: [Slot; SLOTS],
}

#[cfg(not(all(feature = "initial-exec-tls", target_os = "linux")))]
std::thread_local! {
    // Const-initialised and without a destructor: using it never allocates or registers.
    static TC: Slots = const {
        Slots {
            state: Cell::new(UNREGISTERED),
            slot: [const { Slot { generation: Cell::new(0), root: Cell::new(ptr::null_mut()), rec: Cell::new(ptr::null_mut()) } }; SLOTS],
        }
    };
}
std::thread_local! {
    static GUARD: ExitGuard = const { ExitGuard };
}

/// Runs `f` with the calling thread's slots (`thread_local!`: const-initialised, without a
/// destructor, so always there).
#[cfg(not(all(feature = "initial-exec-tls", target_os = "linux")))]
#[inline(always)]
fn with_slots<R>(f: impl FnOnce(&Slots) -> R) -> R {
    TC.with(f)
}

// The slots' initial-exec block: `slots_block` (src/static_tls.rs).
#[cfg(all(feature = "initial-exec-tls", target_os = "linux"))]
crate::ie_tls_slots!(
    Slots,
    "stratalloc_tcache_slots",
    stratalloc_tcache_tls_block,
    fn slots_block,
    fn slots_block_measured
);

/// Runs `f` with the calling thread's slots (the initial-exec block).
#[cfg(all(feature = "initial-exec-tls", target_os = "linux"))]
#[inline(always)]
fn with_slots<R>(f: impl FnOnce(&Slots) -> R) -> R {
    // SAFETY: (1) the block is this thread's own (`slots_block`), 16-aligned and large
    // enough for a `Slots` (asserted by `ie_tls_slots!`), and lives until the thread's
    // descriptor is freed, after its exit destructors (the exit guard included) ran; (2) the
    // C runtime zeroes it at thread start, and all-zero bytes are the slots' initial value
    // (`UNREGISTERED`, generations 0, null roots and records), every field being a `Cell`
    // of an integer or a raw pointer; (3) only this thread touches it (its address is never
    // given to another thread), and `f` gets a borrow no longer than the call.
    f(unsafe { &*slots_block().cast::<Slots>() })
}

/// The list head of live roots (newest first), linked through `Root::next_root`.
struct Registry(*mut Root);
// SAFETY: the roots live in page-source memory tied to no thread; the list moves with the lock.
unsafe impl Send for Registry {}

/// Every live root of every `ThreadCache` heap. A root is on it from when it is made until
/// its heap releases everything; an exiting thread hands its records back only to a root
/// it finds here with the generation its slot remembers, under this lock, so it never
/// touches a released root. Each edit of the list is one store, so the list is whole at
/// every instant (what `fork_child` relies on).
static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry(ptr::null_mut()));

/// The last generation handed out (generations are never 0).
static LAST_GENERATION: AtomicU64 = AtomicU64::new(0);

/// A new process-wide unique generation.
pub fn next_generation() -> u64 {
    LAST_GENERATION.fetch_add(1, Ordering::Relaxed) + 1
}

/// Puts a new root on the registry.
pub fn register(root: NonNull<Root>) {
    let mut r = REGISTRY.lock();
    // SAFETY: a fresh root, not yet shared.
    unsafe { (*root.as_ptr()).next_root = r.0 };
    r.0 = root.as_ptr();
}

/// Takes a root off the registry: from now on no exiting thread reaches it.
pub fn unregister(root: NonNull<Root>) {
    let mut r = REGISTRY.lock();
    let mut link: *mut *mut Root = &raw mut r.0;
    // SAFETY: `link` is the head or the `next_root` of a registered root, all valid while
    // the lock is held.
    unsafe {
        while !(*link).is_null() {
            if *link == root.as_ptr() {
                *link = (*root.as_ptr()).next_root;
                return;
            }
            link = &raw mut (**link).next_root;
        }
    }
}

/// The fork protocol in the child: the registry lock may have been held by a thread that
/// does not exist there. The list is whole at every instant (one store per edit).
///
/// # Safety
/// Called in a fork child, whose only thread is not inside a registry section.
pub unsafe fn registry_after_fork() {
    // SAFETY: the caller's guarantee: no holder exists in the child.
    unsafe { REGISTRY.force_unlock() };
}

/// Gives a record back to its root if that root is still registered with generation `generation`;
/// otherwise the heap was released and the record with it: forget it untouched.
fn retire(generation: u64, root: *mut Root, rec: *mut Record) {
    let r = REGISTRY.lock();
    let mut q = r.0;
    // SAFETY: registered roots are valid while the lock is held (a release unregisters
    // first, under this lock).
    unsafe {
        while !q.is_null() {
            if q == root && (*q).generation == generation {
                (*q).retire(rec);
                return;
            }
            q = (*q).next_root;
        }
    }
}

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        with_slots(|t| {
            t.state.set(DEAD);
            for s in &t.slot {
                let generation = s.generation.replace(0);
                if generation != 0 {
                    retire(generation, s.root.replace(ptr::null_mut()), s.rec.replace(ptr::null_mut()));
                }
            }
        });
    }
}

/// The calling thread's record and root for the heap of generation `generation`, if it is the heap
/// it used last (the fast path: one thread-local load and compare).
#[inline(always)]
pub fn current(generation: u64) -> Option<(NonNull<Record>, NonNull<Root>)> {
    with_slots(|t| {
        let s = &t.slot[0];
        if s.generation.get() != generation || generation == 0 {
            return None;
        }
        Some((NonNull::new(s.rec.get())?, NonNull::new(s.root.get())?))
    })
}

/// The calling thread's record for the heap of generation `generation` (root `root`), bound now if
/// needed; `None` when the thread must go without (registering its exit guard, exiting, or
/// no memory for a record).
#[cold]
pub fn bind<P: PageSource>(generation: u64, root: NonNull<Root>, src: &P) -> Option<NonNull<Record>> {
    with_slots(|t| {
        for i in 0..SLOTS {
            if t.slot[i].generation.get() == generation {
                let rec = NonNull::new(t.slot[i].rec.get())?;
                to_front(t, i);
                return Some(rec);
            }
        }
        match t.state.get() {
            UNREGISTERED => {
                t.state.set(REGISTERING);
                // Registers the exit guard's destructor; may allocate (re-entering us, which
                // then sees REGISTERING and goes without a cache).
                GUARD.with(|_| {});
                t.state.set(ACTIVE);
            }
            ACTIVE => {}
            _ => return None,
        }
        // SAFETY: `root` is the live, registered root of the calling heap (caller).
        let rec = NonNull::new(unsafe { root.as_ref() }.take_record(src))?;
        let last = &t.slot[SLOTS - 1];
        if last.generation.get() != 0 {
            retire(last.generation.get(), last.root.get(), last.rec.get());
            last.generation.set(0);
        }
        last.generation.set(generation);
        last.root.set(root.as_ptr());
        last.rec.set(rec.as_ptr());
        to_front(t, SLOTS - 1);
        Some(rec)
    })
}

/// Moves slot `i` to the front, shifting the ones before it down.
fn to_front(t: &Slots, i: usize) {
    for j in (0..i).rev() {
        t.slot[j].generation.swap(&t.slot[j + 1].generation);
        t.slot[j].root.swap(&t.slot[j + 1].root);
        t.slot[j].rec.swap(&t.slot[j + 1].rec);
    }
}
