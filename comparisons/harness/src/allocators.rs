//! The allocator table: every allocator the harness and the benches know, one line each.
//!
//! [`for_each_allocator!`](crate::for_each_allocator) is the single list. The runner bins
//! (`src/bin/alloc_<name>.rs`, one per allocator the project plans) select their global
//! allocator from it by name at compile time; a bin whose name is not in the table builds
//! a runner that answers "absent" and is left out of every table (never replaced by another
//! allocator). The criterion benches iterate over the same list.
//!
//! Adding a strategy: one line in the table, e.g.
//! `"first-fit", strategy, stratalloc::Heap<stratalloc::FirstFit> = stratalloc::Heap::new();`
//!
//! Anchors that need an arena (talc, linked_list_allocator) reserve one 4 GiB region of
//! address space with `mmap(MAP_NORESERVE)` on their first allocation: pages are only backed
//! when touched, as with a static arena, without a 4 GiB array in the binary.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

pub use mimalloc::MiMalloc;

/// The list of allocators: `name, kind, type = const initialiser;`, in table order.
///
/// `kind` is `strategy` (a stratalloc design) or `anchor` (an allocator we compare against).
/// The callback macro (an identifier in scope) receives its own leading arguments, a `;`, then the entries.
#[macro_export]
macro_rules! for_each_allocator {
    ($callback:ident $(, $arg:tt)*) => {
        $callback! { $($arg)* ;
            // Strategies (stratalloc), each with its default index and the Mmap source.
            "first-fit", strategy, stratalloc::Heap<stratalloc::FirstFit> = stratalloc::Heap::new();
            "next-fit", strategy, stratalloc::Heap<stratalloc::NextFit> = stratalloc::Heap::new();
            "best-fit", strategy, stratalloc::Heap<stratalloc::BestFit> = stratalloc::Heap::new();
            "segregated-fit", strategy, stratalloc::Heap<stratalloc::SegregatedFit> = stratalloc::Heap::new();
            "tiered", strategy, stratalloc::Heap<stratalloc::Tiered> = stratalloc::Heap::new();
            // Anchors.
            "mimalloc", anchor, $crate::allocators::MiMalloc = $crate::allocators::MiMalloc;
            "system", anchor, std::alloc::System = std::alloc::System;
            "talc", anchor, $crate::allocators::TalcArena = $crate::allocators::TalcArena::new();
            "linked-list", anchor, $crate::allocators::LinkedListArena
                = $crate::allocators::LinkedListArena::new();
        }
    };
}

/// Builds a runner bin for the allocator `name` of the table (absent if not listed).
#[macro_export]
macro_rules! runner {
    ($name:literal) => {
        use $crate::__runner_from_table as __pick_from_table;
        $crate::for_each_allocator!(__pick_from_table, $name);
    };
}

/// Implementation of [`runner!`]: picks the table entry whose name hashes like `$want`.
#[doc(hidden)]
#[macro_export]
macro_rules! __runner_from_table {
    ($want:literal ; $($name:literal, $kind:ident, $ty:ty = $init:expr;)*) => {
        struct Table;
        trait Slot<const H: u64> {
            type A: ::core::alloc::GlobalAlloc + Sync + 'static;
            const INIT: Self::A;
            const KIND: &'static str;
        }
        $(impl Slot<{ $crate::allocators::name_hash($name) }> for Table {
            type A = $ty;
            const INIT: $ty = $init;
            const KIND: &'static str = stringify!($kind);
        })*
        impl Slot<0> for Table {
            type A = ::std::alloc::System;
            const INIT: ::std::alloc::System = ::std::alloc::System;
            const KIND: &'static str = "absent";
        }
        const WANT: u64 = $crate::allocators::select(&[$($name),*], $want);
        #[global_allocator]
        static GLOBAL: <Table as Slot<WANT>>::A = <Table as Slot<WANT>>::INIT;
        fn main() {
            $crate::runner::main($want, <Table as Slot<WANT>>::KIND)
        }
    };
}

/// FNV-1a of a name, never 0 (0 marks "absent").
pub const fn name_hash(name: &str) -> u64 {
    let b = name.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    if h == 0 { 1 } else { h }
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The slot of `want` in `names`: its hash when listed, 0 (absent) otherwise.
pub const fn select(names: &[&str], want: &str) -> u64 {
    let mut i = 0;
    while i < names.len() {
        if str_eq(names[i], want) {
            return name_hash(want);
        }
        i += 1;
    }
    0
}

/// Names in the table, in table order, with their kind.
pub fn table() -> Vec<(&'static str, &'static str)> {
    macro_rules! names {
        (; $($name:literal, $kind:ident, $ty:ty = $init:expr;)*) => {
            vec![$(($name, stringify!($kind))),*]
        };
    }
    for_each_allocator!(names)
}

/// Bytes of address space reserved for an arena anchor.
pub const ARENA_BYTES: usize = 4 << 30;

/// Reserves the arena: readable, writable, backed lazily, not counted against commit.
fn map_arena() -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choice touches no
    // existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            ARENA_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED { None } else { NonNull::new(p.cast()) }
}

/// talc's `Source` that claims one mmap'd arena on the first out-of-memory (then fails).
#[derive(Debug)]
pub struct ClaimArenaOnOom {
    claimed: bool,
}

// SAFETY: `acquire` touches only `talc` (through `claim`) and the kernel (mmap); it never uses
// the global allocator.
unsafe impl talc::source::Source for ClaimArenaOnOom {
    fn acquire<B: talc::base::binning::Binning>(
        talc: &mut talc::base::Talc<Self, B>,
        _layout: Layout,
    ) -> Result<(), ()> {
        if talc.source.claimed {
            return Err(());
        }
        talc.source.claimed = true;
        let base = map_arena().ok_or(())?;
        // SAFETY: the arena is fresh, writable, exclusively ours, and lives for the process.
        unsafe { talc.claim(base.as_ptr(), ARENA_BYTES) }.map(|_| ()).ok_or(())
    }
}

/// talc 5 as a global allocator: `TalcLock` (spin lock) claiming a 4 GiB arena on OOM.
pub struct TalcArena(talc::TalcLock<spinning_top::RawSpinlock, ClaimArenaOnOom>);

impl TalcArena {
    /// An empty talc; the arena is claimed by its first allocation.
    pub const fn new() -> Self {
        TalcArena(talc::TalcLock::new(ClaimArenaOnOom { claimed: false }))
    }
}

impl Default for TalcArena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: forwards to `TalcLock`'s GlobalAlloc implementation.
unsafe impl GlobalAlloc for TalcArena {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.alloc(layout) }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// linked_list_allocator's `LockedHeap` over a 4 GiB arena mapped at its first allocation.
pub struct LinkedListArena(linked_list_allocator::LockedHeap);

impl LinkedListArena {
    /// An empty heap; the arena is mapped by its first allocation.
    pub const fn new() -> Self {
        LinkedListArena(linked_list_allocator::LockedHeap::empty())
    }
}

impl Default for LinkedListArena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call takes the heap's lock; the arena is initialised once under that lock
// before any block is handed out, and linked_list_allocator's blocks are valid and disjoint.
unsafe impl GlobalAlloc for LinkedListArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.0.lock();
        if heap.size() == 0 {
            let Some(base) = map_arena() else { return ptr::null_mut() };
            // SAFETY: the arena is fresh, writable, exclusively ours, and lives for the process.
            unsafe { heap.init(base.as_ptr(), ARENA_BYTES) };
        }
        heap.allocate_first_fit(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the caller passes a block of this heap with its layout.
            unsafe { self.0.lock().deallocate(p, layout) }
        }
    }
}
