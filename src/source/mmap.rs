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
///
/// # Memory that cannot be backed is refused
///
/// Only [`reserve`](PageSource::reserve) and [`fault`](PageSource::fault) map with
/// `MAP_NORESERVE`: their mappings are `PROT_NONE`, cost no memory and are not charged to the
/// kernel's commit accounting. [`map`](PageSource::map) maps read-write *without*
/// `MAP_NORESERVE`, as Go's `sysMap` does, so the kernel charges the range to its overcommit
/// accounting and refuses (`ENOMEM`) what it will not promise: in the default heuristic mode
/// (`vm.overcommit_memory = 0`) a single range larger than RAM + swap, in strict mode (`2`)
/// anything past the commit limit. So that the answer does not depend on that setting, `map`
/// also refuses on its own, with the same `ENOMEM`, any range larger than RAM + swap (as
/// `sysinfo(2)` reports them, read on each such call; ranges up to 1 GiB skip the check), also
/// when the kernel would overcommit (`vm.overcommit_memory = 1`).
///
/// A strategy reaches memory only through `map`, so every entry point of every strategy over
/// `Mmap` (`alloc`, `alloc_zeroed`, `realloc`, `grow`, ...) gives the same answer for a
/// request no machine can back: null, with the heap unchanged. A program is never handed
/// memory that gets it killed when it touches it.
///
/// # Alignment without doubling the address space
///
/// [`reserve`](PageSource::reserve) with an alignment above the page first reserves exactly
/// `bytes` and keeps it if it is aligned, then asks for `bytes` at the aligned addresses just
/// below and above as hints (never `MAP_FIXED`), and only then over-reserves by
/// `align - page` and trims. Each try holds no more address space than the request, so an
/// address-space limit (`RLIMIT_AS`) does not refuse an aligned reservation that fits.
///
/// Cost: a read-write private mapping is charged to `Committed_AS` when it is mapped, not when
/// it is touched; nothing else changes. Address-space limits (`ulimit -v`, `RLIMIT_AS`) count
/// reservations and mappings alike, as before.
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
    /// `mmap` with the given protection, at `hint` (`MAP_FIXED` when `fixed`). Inaccessible
    /// (`PROT_NONE`) mappings are made with `MAP_NORESERVE`; accessible ones are charged to
    /// the kernel's commit accounting (see the type's docs).
    fn mmap(hint: *mut u8, bytes: usize, prot: i32, fixed: bool, op: Op) -> Result<NonNull<u8>, SourceError> {
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        if prot == libc::PROT_NONE {
            flags |= libc::MAP_NORESERVE;
        }
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

    /// Whether `bytes` of read-write memory exceed what the machine could ever back: RAM +
    /// swap, the line the kernel's heuristic overcommit mode draws for one mapping.
    #[cfg(target_os = "linux")]
    fn beyond_machine(bytes: usize) -> bool {
        /// Ranges up to this size are left to the kernel without asking `sysinfo`.
        const UNCHECKED_BYTES: usize = 1 << 30;
        if bytes <= UNCHECKED_BYTES {
            return false;
        }
        // SAFETY: `sysinfo` only writes the struct it is given, which is a valid, exclusive,
        // properly aligned `libc::sysinfo` (all-zero is a valid value of it).
        let info = unsafe {
            let mut info: libc::sysinfo = core::mem::zeroed();
            if libc::sysinfo(&mut info) != 0 {
                // No answer: leave the decision to the kernel.
                return false;
            }
            info
        };
        let unit = (info.mem_unit as usize).max(1);
        let ram = (info.totalram as usize).saturating_mul(unit);
        let swap = (info.totalswap as usize).saturating_mul(unit);
        bytes > ram.saturating_add(swap)
    }

    #[cfg(not(target_os = "linux"))]
    fn beyond_machine(_bytes: usize) -> bool {
        false
    }

    /// A reservation of `bytes` at exactly `addr`, asked for as a hint (never `MAP_FIXED`):
    /// `None` if the kernel put it elsewhere (then given back at once) or refused.
    fn reserve_at(addr: usize, bytes: usize) -> Option<NonNull<u8>> {
        if addr == 0 || addr.checked_add(bytes).is_none() {
            return None;
        }
        // The hint is only an address for the kernel to consider: no memory is reached
        // through it, so it carries no provenance; the result is the kernel's pointer.
        let hint = ptr::without_provenance_mut::<u8>(addr);
        let p = Self::mmap(hint, bytes, libc::PROT_NONE, false, Op::Reserve).ok()?;
        if p.addr().get() == addr {
            return Some(p);
        }
        let _ = Self::munmap(p.as_ptr(), bytes, Op::Reserve);
        None
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
        // First a reservation of exactly `bytes`: page alignment needs nothing more, and a
        // larger alignment may happen to hold (Go's `sysReserveAligned` also tries this).
        let raw = Self::mmap(ptr::null_mut(), bytes, libc::PROT_NONE, false, Op::Reserve)?;
        let start = raw.addr().get();
        if start & (align - 1) == 0 {
            return Ok(raw);
        }
        // Not aligned: give it back and ask for `bytes` at the aligned addresses on either
        // side of it, as hints (no MAP_FIXED, so nothing mapped there is replaced). The kernel
        // places mappings top-down, so the space just below the one it chose is often free.
        // Each try costs only `bytes` of address space, so this works under an address-space
        // limit (`RLIMIT_AS`) that the over-reserve below would exceed.
        let _ = Self::munmap(raw.as_ptr(), bytes, Op::Reserve);
        let down = start & !(align - 1);
        for hint in [down, down.wrapping_add(align)] {
            if let Some(p) = Self::reserve_at(hint, bytes) {
                return Ok(p);
            }
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
        if Self::beyond_machine(bytes) {
            return Err(SourceError::Os { op: Op::Map, errno: libc::ENOMEM });
        }
        // Without MAP_NORESERVE (see `mmap`): the kernel refuses what it will not commit.
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        Self::mmap(base.as_ptr(), bytes, prot, true, Op::Map).map(|_| ())
    }

    // ANCHOR: mmap_hint_dense
    unsafe fn hint_dense(&self, base: NonNull<u8>, bytes: usize) {
        // SAFETY: the caller guarantees the range is mapped memory of this source;
        // MADV_HUGEPAGE changes no contents and no protection, only how the kernel may back
        // the range. A kernel without transparent huge pages refuses it (EINVAL): a hint,
        // so the result is ignored.
        let _ = unsafe { libc::madvise(base.as_ptr().cast(), bytes, libc::MADV_HUGEPAGE) };
    }
    // ANCHOR_END: mmap_hint_dense

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
