//! `Mmap`: the operating system as a page source (Linux and other Unix systems).
//!
//! This is the only module in stratalloc that makes system calls. See the
//! [module docs](super) for the state machine; each method below maps one transition to the
//! call Go's `mem_linux.go` makes for it.

use core::ptr::{self, NonNull};

use super::{Op, PageSource, SourceError, check_range};
use crate::ConstInit;

/// The operating system's virtual memory, through `mmap`, `madvise` and `munmap`.
///
/// Fresh memory reads as zero, and [`unused`](PageSource::unused) returns memory to the OS
/// with `MADV_DONTNEED` (Go's default since 1.16: it lowers RSS at once, unlike `MADV_FREE`).
#[derive(Copy, Clone, Debug, Default)]
pub struct Mmap;

impl ConstInit for Mmap {
    const INIT: Self = Mmap;
}

/// OS page size assumed by [`Mmap`]: 4 KiB, the base page of x86-64 and of most aarch64 Linux
/// kernels. Larger kernel pages would still work for the calls, as long as every strategy
/// keeps to multiples of this; `Mmap::reserve` rounds alignment up to it.
const OS_PAGE_BYTES: usize = 4096;

#[inline]
fn last_errno() -> i32 {
    // SAFETY: `__errno_location` returns a pointer to this thread's `errno`, valid for reads
    // for the thread's lifetime.
    #[cfg(target_os = "linux")]
    unsafe {
        *libc::__errno_location()
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

impl Mmap {
    /// `mmap` with the given protection, at `hint` (`MAP_FIXED` when `fixed`).
    fn mmap(hint: *mut u8, bytes: usize, prot: i32, fixed: bool, op: Op) -> Result<NonNull<u8>, SourceError> {
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
        if fixed {
            flags |= libc::MAP_FIXED;
        }
        // SAFETY: an anonymous mapping touches no file; with MAP_FIXED the caller guarantees
        // that `hint..hint + bytes` is address space this source reserved and that nothing
        // there is still needed, so replacing the mapping cannot break anything else.
        let p = unsafe { libc::mmap(hint.cast(), bytes, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(SourceError::Os { op, errno: last_errno() });
        }
        NonNull::new(p.cast()).ok_or(SourceError::Os { op, errno: 0 })
    }

    fn munmap(base: *mut u8, bytes: usize, op: Op) -> Result<(), SourceError> {
        if bytes == 0 {
            return Ok(());
        }
        // SAFETY: the caller owns `base..base + bytes` (reserved from this source, or the
        // trimmed excess of a reservation in progress) and nothing uses it.
        if unsafe { libc::munmap(base.cast(), bytes) } != 0 {
            return Err(SourceError::Os { op, errno: last_errno() });
        }
        Ok(())
    }
}

// SAFETY: (1) `reserve` returns fresh mappings from the kernel, which never overlap live ones,
// trimmed to the requested alignment and length; (2) memory stays mapped read-write until the
// caller calls `unused` (contents dropped only then), `fault` or `free`; (3) anonymous
// mappings and MADV_DONTNEED'd pages read as zero; (4) nothing here panics or allocates.
unsafe impl PageSource for Mmap {
    const PAGE_BYTES: usize = OS_PAGE_BYTES;
    const FRESH_ZEROED: bool = true;
    const RELEASES_MEMORY: bool = true;

    // ANCHOR: mmap_reserve
    fn reserve(&self, bytes: usize, align: usize) -> Result<NonNull<u8>, SourceError> {
        let align = align.max(OS_PAGE_BYTES);
        if bytes == 0 || !bytes.is_multiple_of(OS_PAGE_BYTES) || !align.is_power_of_two() {
            return Err(SourceError::Invalid { op: Op::Reserve, addr: 0, bytes });
        }
        // Over-reserve by `align - page` and trim both ends (Go's sysReserveAligned).
        let Some(total) = bytes.checked_add(align - OS_PAGE_BYTES) else {
            return Err(SourceError::Exhausted { op: Op::Reserve, bytes });
        };
        let raw = Self::mmap(ptr::null_mut(), total, libc::PROT_NONE, false, Op::Reserve)?;
        let start = raw.addr().get();
        let head = ((start + align - 1) & !(align - 1)) - start;
        let tail = total - head - bytes;
        // The aligned part, as a pointer into the mapping (its provenance).
        let aligned = raw.as_ptr().wrapping_add(head);
        // Trimming cannot fail on ranges we own unless the kernel runs out of mapping slots;
        // if it does, the excess stays reserved (a leak of address space, not of memory).
        let _ = Self::munmap(raw.as_ptr(), head, Op::Reserve);
        let _ = Self::munmap(aligned.wrapping_add(bytes), tail, Op::Reserve);
        // `aligned` lies inside a successful mapping, so it is not null.
        NonNull::new(aligned).ok_or(SourceError::Os { op: Op::Reserve, errno: 0 })
    }
    // ANCHOR_END: mmap_reserve

    unsafe fn map(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        check_range(Op::Map, base, bytes, OS_PAGE_BYTES)?;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        Self::mmap(base.as_ptr(), bytes, prot, true, Op::Map).map(|_| ())
    }

    unsafe fn used(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        // Linux needs nothing: Prepared memory is already readable and writable.
        check_range(Op::Used, base, bytes, OS_PAGE_BYTES)
    }

    // ANCHOR: mmap_unused
    unsafe fn unused(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        check_range(Op::Unused, base, bytes, OS_PAGE_BYTES)?;
        // SAFETY: the caller guarantees the range is Ready memory of this source whose
        // contents are no longer needed; MADV_DONTNEED only drops those contents.
        let r = unsafe { libc::madvise(base.as_ptr().cast(), bytes, libc::MADV_DONTNEED) };
        if r != 0 {
            return Err(SourceError::Os { op: Op::Unused, errno: last_errno() });
        }
        Ok(())
    }
    // ANCHOR_END: mmap_unused

    unsafe fn fault(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        check_range(Op::Fault, base, bytes, OS_PAGE_BYTES)?;
        // A fresh PROT_NONE mapping over the range both drops the contents and makes any
        // touch fault, as Go's mprotect + MADV_DONTNEED does, in one call.
        Self::mmap(base.as_ptr(), bytes, libc::PROT_NONE, true, Op::Fault).map(|_| ())
    }

    unsafe fn free(&self, base: NonNull<u8>, bytes: usize) -> Result<(), SourceError> {
        check_range(Op::Free, base, bytes, OS_PAGE_BYTES)?;
        Self::munmap(base.as_ptr(), bytes, Op::Free)
    }
}
