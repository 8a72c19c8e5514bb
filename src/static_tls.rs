//! Thread-local memory at a fixed offset from the thread pointer (the ELF *initial-exec* TLS
//! model), for code built into a shared library (feature `initial-exec-tls`, Linux).
//!
//! In a shared library (a `cdylib` such as the preload library), stable Rust gives
//! `thread_local!` the general-dynamic model: every access calls `__tls_get_addr`. A variable
//! defined in C with `__attribute__((tls_model("initial-exec")))` is instead placed by the
//! dynamic loader in the *static* TLS area of every thread, at one offset from the thread
//! pointer that is the same for all threads of the process. [`StaticTls`] asks a C accessor
//! for the calling thread's address once, keeps `address - thread pointer` as that offset
//! and, on x86_64, afterwards computes the address from the thread pointer (`fs:0`) alone:
//! two instructions and a load, inlined. On other architectures every access calls the C
//! accessor (one call, no `__tls_get_addr`).
//!
//! The model's condition: a library with an initial-exec variable must be loaded at start-up
//! (`LD_PRELOAD`, or a dependency of the program), or be `dlopen`ed while the loader still has
//! room in the static TLS area (glibc keeps a surplus for this); otherwise `dlopen` fails
//! with "cannot allocate memory in static TLS block", never a wrong address. The preload
//! library is loaded at start-up, which is its use.

use core::sync::atomic::{AtomicIsize, Ordering};

/// A C accessor of one initial-exec thread-local variable: the calling thread's address of it.
pub type BlockFn = unsafe extern "C" fn() -> *mut u8;

/// One thread-local block in the initial-exec model, reached by its offset from the thread
/// pointer (see the module docs).
pub struct StaticTls {
    /// `block() - thread pointer` once known (the same on every thread); 0 until then.
    offset: AtomicIsize,
    /// The C accessor.
    block: BlockFn,
}

impl StaticTls {
    /// A handle on the variable that `block` returns the address of.
    ///
    /// # Safety
    /// Callers must guarantee that `block` is safe to call on any thread at any time (no
    /// allocation, no lock), and that it returns the calling thread's address of one
    /// thread-local variable of the initial-exec (or local-exec) model, so that
    /// `address - thread pointer` is the same on every thread and the memory lives as long as
    /// its thread.
    pub const unsafe fn new(block: BlockFn) -> StaticTls {
        StaticTls { offset: AtomicIsize::new(0), block }
    }

    /// The calling thread's block: valid (for the block's size, as the C definition says)
    /// until the thread's descriptor is freed, after every thread-exit destructor has run.
    #[inline(always)]
    pub fn get(&self) -> *mut u8 {
        #[cfg(target_arch = "x86_64")]
        {
            let offset = self.offset.load(Ordering::Relaxed);
            if offset != 0 {
                // The offset was measured as `block() - thread pointer` on some thread; it is
                // the same on every thread (initial-exec model, `new`'s contract).
                return thread_pointer().wrapping_byte_offset(offset);
            }
        }
        self.get_slow()
    }

    /// The calling thread's block as [`get`](Self::get) gives it, without ever calling on
    /// x86_64: `None` until a first `get` measured the offset (on some thread). For fast paths
    /// that have a slower way to fall back on, so that they hold no value across a call.
    /// Elsewhere, as `get` (which calls the accessor every time).
    #[inline(always)]
    pub fn get_measured(&self) -> Option<*mut u8> {
        #[cfg(target_arch = "x86_64")]
        {
            let offset = self.offset.load(Ordering::Relaxed);
            // As in `get`: the same offset on every thread.
            (offset != 0).then(|| thread_pointer().wrapping_byte_offset(offset))
        }
        #[cfg(not(target_arch = "x86_64"))]
        Some(self.get_slow())
    }

    /// [`get_measured`](Self::get_measured) for a caller that knows the offset is measured:
    /// no test of it on x86_64.
    ///
    /// # Safety
    /// A call of [`get`](Self::get) on this `StaticTls` (on any thread) returned before this
    /// call (happens-before: for example, it was sequenced before a Release store that this
    /// thread's Acquire load read), so that the offset read here is the measured one.
    #[inline(always)]
    pub unsafe fn get_known(&self) -> *mut u8 {
        #[cfg(target_arch = "x86_64")]
        {
            let offset = self.offset.load(Ordering::Relaxed);
            debug_assert!(offset != 0, "StaticTls::get_known before any get");
            // As in `get`: the same offset on every thread.
            thread_pointer().wrapping_byte_offset(offset)
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.get_slow()
    }

    /// The first access (x86_64) or every access (elsewhere): asks the C accessor.
    #[cold]
    #[inline(never)]
    fn get_slow(&self) -> *mut u8 {
        // SAFETY: `new`'s contract: callable on any thread at any time.
        let p = unsafe { (self.block)() };
        #[cfg(target_arch = "x86_64")]
        self.offset.store(p.addr().wrapping_sub(thread_pointer().addr()) as isize, Ordering::Relaxed);
        p
    }
}

/// Bytes of each C block of thread slots in `src/tls_blocks.c` (`ie_tls_slots!`).
pub const SLOTS_BLOCK_BYTES: usize = 128;

/// Declares, in the invoking module, the accessors of one thread-slot block of
/// `src/tls_blocks.c`: the initial-exec `__thread` array `$sym`
/// ([`SLOTS_BLOCK_BYTES`] bytes, 16-aligned, zeroed at thread start) and its C accessor
/// `$accessor`. Tiered's cache slots and the thread cache's slots are two such blocks.
///
/// - `fn $block() -> *mut u8`: the calling thread's block; on x86_64 by its link-time offset
///   ([`ie_tls_block!`]: one load, no call, no test), elsewhere through a [`StaticTls`].
/// - `fn $measured() -> Option<*mut u8>`: the same for fast paths that never call: on x86_64
///   always `Some`; elsewhere `None` until some thread measured the offset
///   ([`StaticTls::get_measured`]).
///
/// It also asserts at compile time that `$ty`, the slots' Rust type, fits the block. Reading
/// the block as a `$ty` is the invoking module's unsafe step: it argues that all-zero bytes
/// are a valid `$ty` and that only the owning thread touches it.
#[macro_export]
#[doc(hidden)]
macro_rules! ie_tls_slots {
    ($ty:ty, $sym:literal, $accessor:ident, fn $block:ident, fn $measured:ident) => {
        const _: () = assert!(
            ::core::mem::size_of::<$ty>() <= $crate::static_tls::SLOTS_BLOCK_BYTES
                && ::core::mem::align_of::<$ty>() <= 16
        );

        #[cfg(not(target_arch = "x86_64"))]
        unsafe extern "C" {
            /// The calling thread's block (src/tls_blocks.c).
            fn $accessor() -> *mut u8;
        }

        /// The block through its C accessor, where it is not reached by its link-time offset.
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: the accessor is a C function that only takes the address of an initial-exec
        // `__thread` array (src/tls_blocks.c): no allocation, no lock, callable on any thread.
        static SLOTS_BLOCK: $crate::static_tls::StaticTls =
            unsafe { $crate::static_tls::StaticTls::new($accessor) };

        /// The calling thread's slot block (see `ie_tls_slots!`).
        #[inline(always)]
        fn $block() -> *mut u8 {
            #[cfg(target_arch = "x86_64")]
            {
                // The symbol is src/tls_blocks.c's initial-exec `__thread` array, linked into
                // the same library as this code.
                $crate::ie_tls_block!($sym)
            }
            #[cfg(not(target_arch = "x86_64"))]
            SLOTS_BLOCK.get()
        }

        /// The calling thread's slot block without a call (see `ie_tls_slots!`).
        #[inline(always)]
        #[allow(dead_code)]
        fn $measured() -> Option<*mut u8> {
            #[cfg(target_arch = "x86_64")]
            {
                Some($block())
            }
            #[cfg(not(target_arch = "x86_64"))]
            SLOTS_BLOCK.get_measured()
        }
    };
}

/// The calling thread's address of the initial-exec `__thread` variable named `$sym` (a C
/// symbol of the same link, not `static`), on x86_64, by its offset from the thread pointer
/// as the linker and the dynamic loader fixed it: one load of the offset from the GOT (a
/// `R_X86_64_TPOFF64` entry, written by the loader before the library's first instruction
/// runs, never again) and the thread pointer. No call and no test: unlike
/// [`StaticTls::get_measured`], it is valid from the first instruction on any thread.
///
/// Computing the address is safe (a name that is no TLS variable is refused by the linker,
/// or, left undefined in a shared library, by the dynamic loader); dereferencing it is the
/// caller's unsafe step, valid when `$sym` names a C variable of the initial-exec (or
/// local-exec) model linked into the same shared object or executable, for that variable's
/// size, on the calling thread, until the thread's descriptor is freed.
#[cfg(target_arch = "x86_64")]
#[macro_export]
#[doc(hidden)]
macro_rules! ie_tls_block {
    ($sym:literal) => {{
        let offset: isize;
        // SAFETY: the instruction reads the GOT entry of the variable's TLS offset, which the
        // dynamic loader wrote at load and never changes (hence `pure`, `nomem`: no Rust
        // memory is read, the same value every time); it writes nothing and touches no flag.
        unsafe {
            ::core::arch::asm!(
                concat!("mov {}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                out(reg) offset,
                options(nostack, preserves_flags, nomem, pure)
            );
        }
        $crate::static_tls::thread_pointer().wrapping_byte_offset(offset)
    }};
}

/// The calling thread's thread pointer: on x86_64 Linux the TCB's self-pointer at `fs:0`
/// (the psABI's TLS rules), the base from which initial-exec variables are addressed.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[doc(hidden)]
pub fn thread_pointer() -> *mut u8 {
    let tp: *mut u8;
    // SAFETY: reading `fs:0` is always allowed on x86_64 Linux (the C runtime points `fs` at
    // the thread's TCB before any code of the thread runs); it writes no memory, touches no
    // flag and is the same for the whole life of the thread (hence `pure`). The word it reads
    // (the TCB's self-pointer) is set by the C runtime before the thread's first instruction
    // and never written again while the thread runs, by Rust code or any other, so no write
    // the compiler sees can change the result: `nomem` (not `readonly`) lets it reuse one
    // read across the stores between two block lookups (the preload's fast paths reach two
    // blocks). The pointer comes from outside Rust's allocations: the thread's static TLS
    // area and TCB are one block that the C runtime made, and `StaticTls::get` offsets it to
    // a variable inside that block.
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, preserves_flags, nomem, pure));
    }
    tp
}
