//! Reading the settings from the environment without allocating.
//!
//! The first allocation can come before the C library has set `environ` (the dynamic loader
//! switches to our malloc while it is still starting the process), so:
//! 1. scan `environ` when it is set (every later call);
//! 2. otherwise read `/proc/self/environ` (the environment the process was started with)
//!    with `open`/`read` into a stack buffer;
//! 3. otherwise (no /proc): no settings, the defaults.

use core::ffi::{CStr, c_char};

/// Names the settings are read from.
pub const STRATEGY_VAR: &[u8] = b"STRATALLOC_STRATEGY=";
/// `STRATALLOC_STATS=1` (anything but empty or `0`) prints statistics at exit.
pub const STATS_VAR: &[u8] = b"STRATALLOC_STATS=";
/// `STRATALLOC_BAD_FREE=abort|report|ignore`: what a bad free does (see [`crate::bad`]).
pub const BAD_FREE_VAR: &[u8] = b"STRATALLOC_BAD_FREE=";

/// Longest strategy name kept; longer values are reported as unknown (truncated).
const NAME_BYTES: usize = 40;

/// The value of a setting (`STRATALLOC_STRATEGY`, `STRATALLOC_BAD_FREE`), copied into a fixed
/// buffer.
#[derive(Copy, Clone)]
pub struct Name {
    bytes: [u8; NAME_BYTES],
    len: usize,
}

impl Name {
    fn from(value: &[u8]) -> Name {
        let mut n = Name { bytes: [0; NAME_BYTES], len: value.len().min(NAME_BYTES) };
        n.bytes[..n.len].copy_from_slice(&value[..n.len]);
        n
    }

    /// The bytes of the name (possibly truncated to 40 bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What the environment asks for.
#[derive(Copy, Clone, Default)]
pub struct Settings {
    /// `STRATALLOC_STRATEGY`, if set.
    pub strategy: Option<Name>,
    /// Whether `STRATALLOC_STATS` asks for statistics at exit.
    pub stats: bool,
    /// `STRATALLOC_BAD_FREE`, if set.
    pub bad_free: Option<Name>,
}

impl Settings {
    /// Takes note of one `NAME=value` entry.
    fn entry(&mut self, entry: &[u8]) {
        if let Some(value) = entry.strip_prefix(STRATEGY_VAR) {
            self.strategy = Some(Name::from(value));
        } else if let Some(value) = entry.strip_prefix(STATS_VAR) {
            self.stats = !(value.is_empty() || value == b"0");
        } else if let Some(value) = entry.strip_prefix(BAD_FREE_VAR) {
            self.bad_free = Some(Name::from(value));
        }
    }
}

unsafe extern "C" {
    static environ: *const *const c_char;
}

/// Reads the settings; never allocates.
pub fn read() -> Settings {
    // SAFETY: `environ` is a C library global, written only by the C library (and by
    // programs through setenv/putenv); reading the pointer value is a plain load.
    let env = unsafe { environ };
    if env.is_null() { from_proc() } else { from_environ(env) }
}

fn from_environ(mut env: *const *const c_char) -> Settings {
    let mut settings = Settings::default();
    loop {
        // SAFETY: `environ` is a NULL-terminated array of pointers to NUL-terminated strings
        // (the C library's invariant); we stop at the NULL.
        let entry = unsafe { *env };
        if entry.is_null() {
            return settings;
        }
        // SAFETY: a non-null entry of `environ` points at a NUL-terminated string.
        settings.entry(unsafe { CStr::from_ptr(entry) }.to_bytes());
        // SAFETY: the array goes on at least up to its NULL terminator.
        env = unsafe { env.add(1) };
    }
}

/// Longest prefix of an entry kept while streaming `/proc/self/environ`.
const ENTRY_BYTES: usize = 64;

fn from_proc() -> Settings {
    let _no_cancel = crate::report::NoCancel::new();
    let mut settings = Settings::default();
    // SAFETY: a NUL-terminated path literal; `open` does not allocate.
    let fd = unsafe { libc::open(c"/proc/self/environ".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return settings;
    }
    let mut chunk = [0u8; 512];
    let mut entry = [0u8; ENTRY_BYTES];
    let mut entry_len = 0;
    loop {
        // SAFETY: `chunk` is a writable buffer of `chunk.len()` bytes.
        let got = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if got <= 0 {
            if got < 0 && crate::report::errno() == libc::EINTR {
                continue;
            }
            break;
        }
        for &byte in chunk.iter().take(got as usize) {
            if byte == 0 {
                settings.entry(&entry[..entry_len]);
                entry_len = 0;
            } else if entry_len < ENTRY_BYTES {
                entry[entry_len] = byte;
                entry_len += 1;
            }
        }
    }
    // SAFETY: `fd` is the descriptor opened above, closed once.
    unsafe { libc::close(fd) };
    settings
}
