//! Trace recording and replay.
//!
//! Glossary: an *event* is one call to the global allocator (alloc, free, realloc); an
//! *object* is one block from its allocation to its free (a realloc keeps the object).
//!
//! Recording: [`Recorder`] is a global allocator wrapping the system allocator. Between
//! [`start`] and [`stop`] it appends each event (three words: old address, new address,
//! size with kind and alignment) to a buffer mapped before recording begins, so recording
//! never allocates. It assumes a single-threaded program (the events of one thread are in
//! call order; the trace-record bin runs only single-threaded workloads).
//!
//! Encoding ([`encode`]): addresses become object ids (numbered in allocation order) and each
//! event is a kind byte and LEB128 varints: `0 size align_log2` (alloc), `1 back` (free of
//! object `newest - back`), `2 back size` (realloc). Frees of blocks allocated before
//! recording started are dropped. Header: `SATRACE1`, events, objects.
//!
//! Replay ([`replay`]): decodes the file as it goes and performs every event through the
//! process's global allocator with stamped [`Block`]s, so the allocator under test sees the
//! recorded program's sizes and lifetimes, and a corrupted block fails the check.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::check::{Block, Check, FNV0, fnv};
use crate::suite::{Ctx, Outcome};

/// Events the recording buffer can hold (24 bytes each, mapped lazily).
pub const MAX_EVENTS: usize = 16 << 20;

const KIND_ALLOC: u64 = 0;
const KIND_FREE: u64 = 1;
const KIND_REALLOC: u64 = 2;

static RECORDING: AtomicBool = AtomicBool::new(false);
static EVENTS: AtomicPtr<[u64; 3]> = AtomicPtr::new(ptr::null_mut());
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The recording global allocator (see the module header).
pub struct Recorder;

#[inline]
fn record(old: *mut u8, new: *mut u8, size: usize, kind: u64, align: usize) {
    if !RECORDING.load(Ordering::Relaxed) {
        return;
    }
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    let buf = EVENTS.load(Ordering::Relaxed);
    if i < MAX_EVENTS && !buf.is_null() {
        let meta = size as u64 | kind << 56 | (align.trailing_zeros() as u64) << 48;
        // SAFETY: `buf` maps MAX_EVENTS entries and `i` is in range and taken by this call only.
        unsafe { buf.add(i).write([old as u64, new as u64, meta]) };
    }
}

// SAFETY: every call is forwarded to `System`; recording only writes the event buffer.
unsafe impl GlobalAlloc for Recorder {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        record(ptr::null_mut(), p, layout.size(), KIND_ALLOC, layout.align());
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        record(ptr::null_mut(), p, layout.size(), KIND_ALLOC, layout.align());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        record(p, ptr::null_mut(), layout.size(), KIND_FREE, layout.align());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(p, layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            record(p, q, new_size, KIND_REALLOC, layout.align());
        }
        q
    }
}

/// Maps the event buffer and starts recording.
pub fn start() -> Check {
    let p = crate::check::map_lazily(MAX_EVENTS * size_of::<[u64; 3]>())
        .ok_or("trace: cannot map the event buffer")?;
    EVENTS.store(p.as_ptr().cast(), Ordering::Relaxed);
    NEXT.store(0, Ordering::Relaxed);
    RECORDING.store(true, Ordering::SeqCst);
    Ok(())
}

/// Stops recording and returns the events.
pub fn stop() -> Check<&'static [[u64; 3]]> {
    RECORDING.store(false, Ordering::SeqCst);
    let n = NEXT.load(Ordering::SeqCst);
    if n > MAX_EVENTS {
        return Err(format!("trace: {n} events overflow the buffer of {MAX_EVENTS}"));
    }
    let buf = EVENTS.load(Ordering::Relaxed);
    // SAFETY: the first `n` entries were written by `record` and recording has stopped.
    Ok(unsafe { std::slice::from_raw_parts(buf, n) })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Check<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*pos).ok_or("trace: truncated varint")?;
        *pos += 1;
        v |= ((x & 0x7f) as u64) << shift;
        if x < 0x80 {
            return Ok(v);
        }
    }
    Err("trace: varint too long".into())
}

const MAGIC: &[u8; 8] = b"SATRACE1";

/// Encodes recorded events compactly (see the module header).
pub fn encode(events: &[[u64; 3]]) -> Vec<u8> {
    let mut ids: HashMap<u64, u64> = HashMap::new();
    let mut body = Vec::with_capacity(events.len() * 4);
    let (mut next_id, mut count) = (0u64, 0u64);
    for &[old, new, meta] in events {
        let (size, kind, align_log2) = (meta & ((1 << 48) - 1), meta >> 56, (meta >> 48) & 0xff);
        let known = ids.remove(&old);
        match (kind, known) {
            (KIND_ALLOC, _) | (KIND_REALLOC, None) => {
                if new == 0 {
                    continue;
                }
                body.push(KIND_ALLOC as u8);
                put_varint(&mut body, size);
                body.push(align_log2 as u8);
                ids.insert(new, next_id);
                next_id += 1;
            }
            (KIND_FREE, Some(id)) => {
                body.push(KIND_FREE as u8);
                put_varint(&mut body, next_id - 1 - id);
            }
            (KIND_REALLOC, Some(id)) => {
                body.push(KIND_REALLOC as u8);
                put_varint(&mut body, next_id - 1 - id);
                put_varint(&mut body, size);
                ids.insert(new, id);
            }
            _ => continue,
        }
        count += 1;
    }
    let mut out = MAGIC.to_vec();
    put_varint(&mut out, count);
    put_varint(&mut out, next_id);
    out.extend_from_slice(&body);
    out
}

/// Decoded header: (events, objects, offset of the first event).
fn header(b: &[u8]) -> Check<(u64, u64, usize)> {
    if b.get(..8) != Some(&MAGIC[..]) {
        return Err("trace: not a stratalloc trace file".into());
    }
    let mut pos = 8;
    let events = get_varint(b, &mut pos)?;
    let objects = get_varint(b, &mut pos)?;
    Ok((events, objects, pos))
}

/// Replays one pass of the trace with stamped blocks; returns a checksum of what it did.
fn replay_once(b: &[u8]) -> Check<u64> {
    let (events, objects, mut pos) = header(b)?;
    let mut live: Vec<Option<Block>> = (0..objects).map(|_| None).collect();
    let (mut newest, mut h) = (0u64, FNV0);
    for _ in 0..events {
        let kind = *b.get(pos).ok_or("trace: truncated")? as u64;
        pos += 1;
        let take = |pos: &mut usize| -> Check<usize> {
            let back = get_varint(b, pos)?;
            newest.checked_sub(1 + back).map(|id| id as usize).ok_or_else(|| "trace: bad object id".into())
        };
        match kind {
            KIND_ALLOC => {
                let size = get_varint(b, &mut pos)? as usize;
                let align = 1usize << *b.get(pos).ok_or("trace: truncated")?;
                pos += 1;
                live[newest as usize] = Some(Block::new(size.max(1), align, newest)?);
                newest += 1;
                h = fnv(h, &(size as u64).to_le_bytes());
            }
            KIND_FREE => {
                let id = take(&mut pos)?;
                live[id].take().ok_or("trace: free of a dead object")?.free()?;
            }
            KIND_REALLOC => {
                let id = take(&mut pos)?;
                let size = get_varint(b, &mut pos)? as usize;
                live[id].as_mut().ok_or("trace: realloc of a dead object")?.realloc(size.max(1))?;
                h = fnv(h, &(size as u64).to_le_bytes());
            }
            _ => return Err(format!("trace: unknown event kind {kind}")),
        }
    }
    crate::check::free_all(live.into_iter().flatten())?;
    Ok(h ^ events)
}

/// The trace-replay workload: the recorded trace, `max(1, round(scale))` times.
pub fn replay(c: &Ctx) -> Check<Outcome> {
    let path = c.trace.as_ref().ok_or("trace-replay needs --trace FILE (the driver records one)")?;
    let bytes = std::fs::read(path).map_err(|e| format!("trace: cannot read {}: {e}", path.display()))?;
    let mut h = 0u64;
    for _ in 0..(c.scale.round() as usize).max(1) {
        h = replay_once(&bytes)?;
    }
    let (events, objects, _) = header(&bytes)?;
    Ok(Outcome {
        checksum: h,
        metrics: vec![("trace_events", events as f64), ("trace_objects", objects as f64)],
    })
}

/// Main of the `trace_record` bin: `trace_record OUT [SCALE] [SEED]` records the
/// single-threaded program workloads and writes the encoded trace to OUT.
pub fn record_main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        eprintln!("usage: trace_record OUT [SCALE] [SEED]");
        std::process::exit(2);
    };
    let scale = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(42);
    let ctx = Ctx { scale, threads: 1, seed, trace: None };
    let run = || -> Check<Vec<u8>> {
        start()?;
        for name in RECORDED {
            let w = crate::suite::find(name).ok_or("unknown workload")?;
            (w.run)(&ctx)?;
        }
        Ok(encode(stop()?))
    };
    match run().and_then(|b| std::fs::write(out, &b).map(|_| b.len()).map_err(|e| e.to_string())) {
        Ok(n) => println!("wrote {n} bytes to {out}"),
        Err(e) => {
            eprintln!("FAILED: {e}");
            std::process::exit(2);
        }
    }
}

/// The workloads whose allocations the trace records (a single-threaded "real program").
pub const RECORDED: [&str; 4] = ["json", "btree-hash", "strings", "parser"];

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(old: u64, new: u64, size: u64, kind: u64) -> [u64; 3] {
        [old, new, size | kind << 56 | 3 << 48]
    }

    #[test]
    fn encode_then_replay() {
        let events = [
            ev(0, 0x1000, 32, KIND_ALLOC),
            ev(0, 0x2000, 64, KIND_ALLOC),
            ev(0x1000, 0x3000, 128, KIND_REALLOC),
            ev(0x2000, 0, 64, KIND_FREE),
            ev(0x9999, 0, 8, KIND_FREE), // allocated before recording: dropped
            ev(0x3000, 0, 128, KIND_FREE),
            ev(0, 0x2000, 16, KIND_ALLOC), // address reused: a new object
        ];
        let bytes = encode(&events);
        assert_eq!(header(&bytes).unwrap().0, 6, "events kept");
        assert_eq!(header(&bytes).unwrap().1, 3, "objects");
        // Body: alloc(32), alloc(64), realloc(back 1, 128), free(back 0), free(back 1), alloc(16).
        let body = &bytes[header(&bytes).unwrap().2..];
        assert_eq!(body, [0, 32, 3, 0, 64, 3, 2, 1, 128, 1, 1, 0, 1, 1, 0, 16, 3]);
        replay_once(&bytes).unwrap();
    }

    #[test]
    fn damaged_traces_are_rejected() {
        let bytes = encode(&[ev(0, 0x1000, 32, KIND_ALLOC), ev(0x1000, 0, 32, KIND_FREE)]);
        assert!(replay_once(&bytes[..bytes.len() - 1]).is_err(), "truncated");
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() = 5; // free of an object that does not exist yet
        assert!(replay_once(&bad).is_err(), "bad id");
        assert!(replay_once(b"NOTATRACE").is_err(), "magic");
    }

    #[test]
    fn varints_round_trip() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(get_varint(&b, &mut 0).unwrap(), v);
        }
    }
}
