//! The allocator table: every allocator and composition the project measures, one line each.
//!
//! [`for_each_allocator!`](crate::for_each_allocator) is the single list. Everything that
//! runs allocators reads it: the harness's runner bins (one source, the allocator chosen by
//! the bin's name at compile time), the preload library's heaps (the `strategies` part), the
//! criterion benches and the examples. Adding an allocator or a composition is one line:
//!
//! ```text
//! "first-fit-tracked", variant, stratalloc::FirstFit, stratalloc::Tracked<stratalloc::Mmap>;
//! "my-fit", strategy, my_crate::MyFit, stratalloc::Mmap;
//! ```
//!
//! Anchors that need an arena (talc, linked_list_allocator) reserve one 4 GiB region of
//! address space with `mmap(MAP_NORESERVE)` on their first allocation: pages are only backed
//! when touched, as with a static arena, without a 4 GiB array in the binary.

#[cfg(feature = "run")]
pub use anchors::*;

/// The list of allocators, in table order. The callback macro (an identifier in scope)
/// receives its own leading arguments, a `;`, then two groups:
///
/// - `strategies { "name", kind, Strategy, Source; ... }`: stratalloc strategies, each a
///   `Heap<Strategy, Source>` (`Heap::with_source(Source)`, the source a const expression).
///   `kind` is `strategy` (a design the harness runs by default, the preload serves and the
///   tables list) or `variant` (another index or source of a design: benches, examples, and
///   the harness or the preload when named).
/// - `anchors { "name", anchor, Type = const initialiser; ... }`: allocators we compare against.
#[macro_export]
macro_rules! for_each_allocator {
    ($callback:ident $(, $arg:tt)*) => {
        $callback! { $($arg)* ;
            strategies {
                "first-fit", strategy, stratalloc::FirstFit, stratalloc::Mmap;
                "next-fit", strategy, stratalloc::NextFit, stratalloc::Mmap;
                "best-fit", strategy, stratalloc::BestFit, stratalloc::Mmap;
                "segregated-fit", strategy, stratalloc::SegregatedFit, stratalloc::Mmap;
                "tiered", strategy, stratalloc::Tiered, stratalloc::Mmap;
                "first-fit-linear", variant, stratalloc::FirstFit<stratalloc::Linear>, stratalloc::Mmap;
                "first-fit-tree", variant, stratalloc::FirstFit<stratalloc::AddrTree>, stratalloc::Mmap;
                "next-fit-linear", variant, stratalloc::NextFit<stratalloc::Linear>, stratalloc::Mmap;
                "next-fit-tree", variant, stratalloc::NextFit<stratalloc::AddrTree>, stratalloc::Mmap;
                "best-fit-linear", variant, stratalloc::BestFit<stratalloc::Linear>, stratalloc::Mmap;
                "best-fit-tree", variant, stratalloc::BestFit<stratalloc::SizeTree>, stratalloc::Mmap;
                "tcache(arenas(best-fit))", variant, stratalloc::ThreadCache<stratalloc::Arenas<stratalloc::BestFit>>, stratalloc::Mmap;
                "tcache(arenas(first-fit))", variant, stratalloc::ThreadCache<stratalloc::Arenas<stratalloc::FirstFit>>, stratalloc::Mmap;
                "tcache(arenas(next-fit))", variant, stratalloc::ThreadCache<stratalloc::Arenas<stratalloc::NextFit>>, stratalloc::Mmap;
                "tcache(arenas(segregated-fit))", variant, stratalloc::ThreadCache<stratalloc::Arenas<stratalloc::SegregatedFit>>, stratalloc::Mmap;
                "arenas(best-fit)", variant, stratalloc::Arenas<stratalloc::BestFit>, stratalloc::Mmap;
                "tcache(best-fit)", variant, stratalloc::ThreadCache<stratalloc::BestFit>, stratalloc::Mmap;
                "segregate(1024,segregated-fit,best-fit)", variant, stratalloc::Segregate<1024, stratalloc::SegregatedFit, stratalloc::BestFit>, stratalloc::Mmap;
                "identity(best-fit)", variant, stratalloc::Identity<stratalloc::BestFit>, stratalloc::Mmap;
            }
            anchors {
                "mimalloc", anchor, $crate::allocators::MiMalloc = $crate::allocators::MiMalloc;
                "system", anchor, std::alloc::System = std::alloc::System;
                "talc", anchor, $crate::allocators::TalcArena = $crate::allocators::TalcArena::new();
                "linked-list", anchor, $crate::allocators::LinkedListArena
                    = $crate::allocators::LinkedListArena::new();
            }
        }
    };
}

/// Defines `static $static: <the allocator of the table called $name>`, const-initialised,
/// with the given attributes (`#[global_allocator]`). A name not in the table gives the
/// system allocator: ask [`kind_of`] first. One per module.
#[macro_export]
macro_rules! table_static {
    ($(#[$m:meta])* static $static:ident = $name:expr;) => {
        use $crate::__table_static_pick;
        $crate::for_each_allocator!(__table_static_pick, ([$(#[$m])*] $static ($name)));
    };
}

/// Implementation of [`table_static!`]: one impl of a trait per entry, keyed by the name's
/// hash, and the static of the key `$want` hashes to (0, the system allocator, if none).
#[doc(hidden)]
#[macro_export]
macro_rules! __table_static_pick {
    (([$(#[$m:meta])*] $static:ident ($want:expr)) ;
        strategies { $($sname:literal, $skind:ident, $sty:ty, $src:ty;)* }
        anchors { $($aname:literal, $akind:ident, $aty:ty = $ainit:expr;)* }
    ) => {
        struct __Table;
        trait __Slot<const H: u64> {
            type A: ::core::alloc::GlobalAlloc + Sync + 'static;
            const INIT: Self::A;
        }
        $(impl __Slot<{ $crate::allocators::name_hash($sname) }> for __Table {
            type A = stratalloc::Heap<$sty, $src>;
            const INIT: Self::A = stratalloc::Heap::new();
        })*
        $(impl __Slot<{ $crate::allocators::name_hash($aname) }> for __Table {
            type A = $aty;
            const INIT: $aty = $ainit;
        })*
        impl __Slot<0> for __Table {
            type A = ::std::alloc::System;
            const INIT: ::std::alloc::System = ::std::alloc::System;
        }
        const __WANT: u64 = $crate::allocators::select(&[$($sname,)* $($aname),*], $want);
        $(#[$m])*
        static $static: <__Table as __Slot<__WANT>>::A = <__Table as __Slot<__WANT>>::INIT;
    };
}

/// Runs `$body` once per allocator of the table whose kind is in `[$($kind),*]`, with
/// `$name: &'static str`, `$kind_var: &'static str` and `$a: &'static` the allocator (a
/// `static` of its own, so each is a distinct, monomorphised instance).
#[macro_export]
macro_rules! each_allocator {
    (|$name:ident, $kind:ident, $a:ident| $body:block) => {{
        use $crate::__each_allocator_body;
        $crate::for_each_allocator!(__each_allocator_body, (|$name, $kind, $a| $body));
    }};
}

/// Implementation of [`each_allocator!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __each_allocator_body {
    ((|$name:ident, $kind:ident, $a:ident| $body:block) ;
        strategies { $($sname:literal, $skind:ident, $sty:ty, $src:ty;)* }
        anchors { $($aname:literal, $akind:ident, $aty:ty = $ainit:expr;)* }
    ) => {
        $({
            static ALLOCATOR: stratalloc::Heap<$sty, $src> = stratalloc::Heap::new();
            let ($name, $kind, $a): (&'static str, &'static str, _) =
                ($sname, stringify!($skind), &ALLOCATOR);
            $body
        })*
        $({
            static ALLOCATOR: $aty = $ainit;
            let ($name, $kind, $a): (&'static str, &'static str, _) =
                ($aname, stringify!($akind), &ALLOCATOR);
            $body
        })*
    };
}

/// The table name of runner slot `bin` (`alloc_NN`: row NN of the table), or "" for a
/// spare slot or another name.
pub const fn slot_name(bin: &str) -> &'static str {
    let b = bin.as_bytes();
    let prefix = b"alloc_";
    if b.len() != prefix.len() + 2 {
        return "";
    }
    let mut row = 0;
    let mut i = 0;
    while i < b.len() {
        if i < prefix.len() {
            if b[i] != prefix[i] {
                return "";
            }
        } else if b[i].is_ascii_digit() {
            row = row * 10 + (b[i] - b'0') as usize;
        } else {
            return "";
        }
        i += 1;
    }
    if row < NAMES.len() { NAMES[row].0 } else { "" }
}

macro_rules! names {
    (; strategies { $($sname:literal, $skind:ident, $sty:ty, $src:ty;)* }
       anchors { $($aname:literal, $akind:ident, $aty:ty = $ainit:expr;)* }) => {
        &[$(($sname, stringify!($skind)),)* $(($aname, stringify!($akind))),*]
    };
}

/// Every name in the table, in table order, with its kind (`strategy`, `variant`, `anchor`).
pub const NAMES: &[(&str, &str)] = for_each_allocator!(names);

/// The kind of the table's `name` (`strategy`, `variant`, `anchor`), or `spare`.
pub const fn kind_of(name: &str) -> &'static str {
    let mut i = 0;
    while i < NAMES.len() {
        if str_eq(NAMES[i].0, name) {
            return NAMES[i].1;
        }
        i += 1;
    }
    "spare"
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

/// The anchors that need code of ours: talc and linked_list_allocator over an arena.
#[cfg(feature = "run")]
mod anchors {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ptr::{self, NonNull};

    pub use mimalloc::MiMalloc;

    /// Bytes of address space reserved for an arena anchor.
    pub const ARENA_BYTES: usize = 4 << 30;

    /// Reserves the arena: readable, writable, backed lazily, not counted against commit.
    fn map_arena() -> Option<NonNull<u8>> {
        crate::check::map_lazily(ARENA_BYTES)
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

    /// talc 5 with a spin lock over memory claimed by hand (for arenas the caller owns).
    pub type ManualTalc = talc::TalcLock<spinning_top::RawSpinlock, talc::source::Manual>;

    /// A [`ManualTalc`] that has claimed `base..base + bytes`.
    ///
    /// # Safety
    /// The region is writable, used by nothing else, and outlives every use of the result.
    pub unsafe fn talc_over(base: *mut u8, bytes: usize) -> ManualTalc {
        let t = ManualTalc::new(talc::source::Manual);
        // SAFETY: the caller gives the region to talc alone for as long as talc is used.
        unsafe { t.lock().claim(base, bytes) }.expect("talc claims the arena");
        t
    }
}
