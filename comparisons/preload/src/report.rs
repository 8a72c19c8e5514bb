//! Messages on stderr without allocating: a fixed stack buffer implementing `fmt::Write`,
//! written with `write(2)`.

use core::fmt;

/// A line being formatted on the stack; what does not fit is cut (and marked with `...`).
pub struct Line<const N: usize> {
    bytes: [u8; N],
    len: usize,
    cut: bool,
}

impl<const N: usize> Line<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Line { bytes: [0; N], len: 0, cut: false }
    }

    /// Writes the line (with a newline) to stderr.
    pub fn emit(mut self) {
        if self.cut && self.len >= 3 {
            self.bytes[self.len - 3..self.len].copy_from_slice(b"...");
        }
        if self.len < N {
            self.bytes[self.len] = b'\n';
            self.len += 1;
        }
        write_stderr(&self.bytes[..self.len]);
    }
}

impl<const N: usize> fmt::Write for Line<N> {
    /// Appends, keeping one byte free for the newline.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N.saturating_sub(1).saturating_sub(self.len);
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            self.cut = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// Writes all of `bytes` to file descriptor 2, retrying on EINTR and short writes; gives up
/// silently on other errors (there is nowhere to report them).
pub fn write_stderr(mut bytes: &[u8]) {
    let _no_cancel = NoCancel::new();
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer of `bytes.len()` bytes; `write` does not allocate.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[(n as usize).min(bytes.len())..];
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return;
        }
    }
}

/// This thread's errno slot (one call for a read and a later write).
#[inline]
pub fn errno_slot() -> *mut i32 {
    // SAFETY: `__errno_location` has no preconditions and returns this thread's errno slot.
    unsafe { libc::__errno_location() }
}

/// This thread's errno.
#[inline]
pub fn errno() -> i32 {
    // SAFETY: `__errno_location` returns this thread's errno slot, valid for the thread's life.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's errno.
#[inline]
pub fn set_errno(value: i32) {
    // SAFETY: `__errno_location` returns this thread's errno slot, valid for the thread's life.
    unsafe { *libc::__errno_location() = value };
}

unsafe extern "C" {
    /// POSIX; not in the `libc` crate.
    fn pthread_setcancelstate(state: libc::c_int, old: *mut libc::c_int) -> libc::c_int;
}

/// glibc's `PTHREAD_CANCEL_DISABLE` (`<pthread.h>`).
const PTHREAD_CANCEL_DISABLE: libc::c_int = 1;

/// Holds off thread cancellation while alive. `write`, `open` and `read` are cancellation
/// points; a thread cancelled inside one of them during a malloc call would unwind through
/// our `extern "C"` frames (which aborts) or leave the entry gate counted.
pub struct NoCancel {
    before: libc::c_int,
}

impl NoCancel {
    /// Disables cancellation for the calling thread until dropped.
    pub fn new() -> NoCancel {
        let mut before = 0;
        // SAFETY: `before` is a valid out-pointer; the call does not allocate.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut before) };
        NoCancel { before }
    }
}

impl Drop for NoCancel {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: restores the state saved by `new`; valid out-pointer.
        unsafe { pthread_setcancelstate(self.before, &mut ignored) };
    }
}
