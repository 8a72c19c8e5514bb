//! Program trace format, version 2: the allocation calls of any program, recorded by the
//! preload library (`STRATALLOC_TRACE=out.trace`), read by [`program_trace`](crate::program_trace).
//! The full description, with an example, is comparisons/harness/TRACE.md.
//!
//! ```text
//! file    := header chunk* end
//! header  := "SATRACE" 0x02 varint(pid) varint(parent pid)
//! chunk   := 0xC1 varint(thread) varint(base seq) varint(body bytes) body checksum
//! checksum:= u32 little-endian, FNV-1a 32 of the chunk from its 0xC1 to the end of body
//! body    := record*
//! record  := kind:u8 zigzag varint(seq - previous seq, first: - base seq) fields
//!   ALLOC   0x01  size addr                  malloc, valloc, pvalloc
//!   CALLOC  0x02  size addr                  calloc (size = count * size)
//!   ALIGNED 0x03  align_log2:u8 size addr    posix_memalign, aligned_alloc, memalign
//!   FREE    0x04  addr                       free, realloc(p, 0)
//!   REALLOC 0x05  varint(seq after - seq) old_addr size new_addr
//! addr    := zigzag varint of (address - previous address in this chunk)
//! end     := 0xE1 varint(records) varint(highest thread id handed out; ids start at 1)
//! ```
//!
//! Invariants: every record has a global sequence number (`seq`) from one process-wide
//! counter, unique; an allocation's seq is taken after the allocator returned, a free's
//! before it was called, so an address is never handed out again before the free that
//! released it in seq order. A realloc takes two: one before the call (the old address is
//! released there) and one after (the new address is bound there). Within a chunk seqs
//! mostly increase (one thread's calls in order; a signal handler's call can take a later
//! seq and be recorded before the call it interrupted, hence the signed delta); chunks of
//! different threads interleave in the file in flush order. Only calls that succeeded are
//! recorded.

/// The first 7 bytes of every trace file.
pub const MAGIC: &[u8; 7] = b"SATRACE";
/// The version byte this code writes and reads (byte 7). The harness's own v1 traces have
/// `'1'` there.
pub const VERSION: u8 = 2;

/// Chunk tag.
pub const TAG_CHUNK: u8 = 0xC1;
/// End tag.
pub const TAG_END: u8 = 0xE1;

/// `malloc` and the page-aligned `valloc`/`pvalloc` (alignment 16).
pub const KIND_ALLOC: u8 = 1;
/// `calloc`.
pub const KIND_CALLOC: u8 = 2;
/// The memalign family.
pub const KIND_ALIGNED: u8 = 3;
/// `free`.
pub const KIND_FREE: u8 = 4;
/// `realloc` of a live block to a non-zero size.
pub const KIND_REALLOC: u8 = 5;

/// Longest varint (a `u64` takes at most 10 bytes).
pub const VARINT_MAX_BYTES: usize = 10;
/// Longest record: kind, two seqs, align, size, two addresses.
pub const RECORD_MAX_BYTES: usize = 1 + 6 * VARINT_MAX_BYTES + 1;

/// Writes `v` as a LEB128 varint at `out[pos..]`; returns the position after it.
/// `out` must have [`VARINT_MAX_BYTES`] free from `pos` (the caller checks once a record).
#[inline]
pub fn put_varint(out: &mut [u8], mut pos: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        out[pos] = v as u8 | 0x80;
        pos += 1;
        v >>= 7;
    }
    out[pos] = v as u8;
    pos + 1
}

/// Zigzag: small negative and positive deltas both become small numbers.
#[inline]
pub fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
pub fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

/// FNV-1a 32's starting value.
pub const FNV32_START: u32 = 0x811c_9dc5;

/// FNV-1a, 32 bits, continued over `bytes` from `h`.
#[inline]
pub fn fnv32(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The chunk checksum (FNV-1a 32 over the chunk from its tag to the end of its body).
#[inline]
pub fn chunk_checksum(bytes: &[u8]) -> u32 {
    fnv32(FNV32_START, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips() {
        for d in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN, 0x7fff_0000_1000] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }
}
