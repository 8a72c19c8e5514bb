//! Decoding, profiling and replaying v2 traces; damaged files of every kind are errors.

use proptest::prelude::*;

use super::*;
use crate::program_replay::{Options, Order, Plan, flat_file, flat_ops, plan_checksum, replay};

fn run(t: &Trace, order: Order) -> crate::program_replay::Replayed {
    run_with(t, Options { order, whole: true })
}

fn run_with(t: &Trace, opts: Options) -> crate::program_replay::Replayed {
    let ops = flat_ops(t);
    replay(&Plan::new(&ops, t.objects, t.threads), opts, || None).unwrap()
}

/// Two threads: thread 1 allocates A and B, reallocs A; thread 2 frees B (cross-thread),
/// allocates C aligned, callocs D; thread 1 frees A; a free of an unknown block.
fn sample() -> Vec<u8> {
    let mut w = Writer::new(100, 1);
    w.chunk(
        1,
        &[
            Rec::Alloc { seq: 0, size: 24, addr: 0x1000 },
            Rec::Alloc { seq: 1, size: 100, addr: 0x2000 },
            Rec::Realloc { seq: 3, seq_after: 4, old: 0x1000, size: 300, new: 0x3000 },
        ],
    );
    w.chunk(
        2,
        &[
            Rec::Free { seq: 2, addr: 0x2000 },
            Rec::Aligned { seq: 5, align_log2: 6, size: 64, addr: 0x1000 },
            Rec::Calloc { seq: 6, size: 48, addr: 0x2000 },
            Rec::Free { seq: 7, addr: 0x9999 },
        ],
    );
    w.chunk(1, &[Rec::Free { seq: 8, addr: 0x3000 }]);
    w.finish()
}

#[test]
fn decodes_objects_threads_and_order() {
    let t = decode(&sample(), false).unwrap();
    assert_eq!((t.pid, t.ppid, t.records, t.threads, t.objects), (100, 1, 8, 2, 4));
    assert_eq!(t.unknown_frees, 1);
    assert_eq!(t.rebound, 0);
    let kinds: Vec<(u32, u32, u32, OpKind)> =
        t.ops.iter().map(|o| (o.thread, o.object, o.stage, o.kind)).collect();
    assert_eq!(
        kinds,
        [
            (0, 0, 0, OpKind::Alloc { size: 24, align_log2: 4, zeroed: false }),
            (0, 1, 0, OpKind::Alloc { size: 100, align_log2: 4, zeroed: false }),
            (1, 1, 1, OpKind::Free),
            (0, 0, 1, OpKind::Realloc { size: 300 }),
            (1, 2, 0, OpKind::Alloc { size: 64, align_log2: 6, zeroed: false }),
            (1, 3, 0, OpKind::Alloc { size: 48, align_log2: 4, zeroed: true }),
            (0, 0, 2, OpKind::Free),
        ]
    );
}

#[test]
fn profile_counts_sizes_lifetimes_and_cross_thread_frees() {
    let t = decode(&sample(), false).unwrap();
    let p = profile(&t);
    assert_eq!((p.allocs, p.reallocs, p.frees, p.cross_thread_frees, p.never_freed), (4, 1, 2, 1, 2));
    // Live: 24, 124, 24, 300, 364, 412, 112.
    assert_eq!(p.peak_live_bytes, 412);
    assert_eq!(p.peak_live_objects, 3);
    // 24 -> (16, 32], 100 -> (64, 128], 64 -> (32, 64], 48 -> (32, 64].
    assert_eq!(p.sizes, [0, 0, 0, 0, 0, 1, 2, 1]);
    // B lived 0 allocations (freed before the next), A lived 4.
    assert_eq!(p.lifetimes.iter().sum::<u64>(), 2);
    let text = p.render(&t);
    assert!(text.contains("cross-thread frees: 1 of 3"), "{text}");
    assert!(text.contains("peak live: 412 B"), "{text}");
}

#[test]
fn replays_with_threads_and_serially() {
    let t = decode(&sample(), false).unwrap();
    let threaded = run(&t, Order::Threads);
    let serial = run(&t, Order::Serial);
    let recorded = run(&t, Order::Recorded);
    assert_eq!(threaded.threads, 2);
    assert_eq!(serial.threads, 1);
    assert_eq!(recorded.threads, 2);
    assert_eq!(threaded.checksum, serial.checksum);
    assert_eq!(threaded.checksum, recorded.checksum);
    let ops = flat_ops(&t);
    assert_eq!(threaded.checksum, plan_checksum(&Plan::new(&ops, t.objects, t.threads)));
    // The flat file reads back to the same plan (from 8-aligned memory).
    let file = flat_file(&t);
    let mut aligned = vec![0u64; file.len().div_ceil(8)];
    // SAFETY: `aligned` has at least `file.len()` bytes; u64 has no invalid bit patterns.
    let bytes = unsafe { std::slice::from_raw_parts_mut(aligned.as_mut_ptr().cast::<u8>(), file.len()) };
    bytes.copy_from_slice(&file);
    let plan = Plan::from_bytes(bytes).unwrap();
    assert_eq!(plan.ops, &ops[..]);
    bytes[40] ^= 1;
    assert!(Plan::from_bytes(bytes).is_err(), "a damaged ops file");
    assert_eq!(threaded.samples.last().unwrap().live, 64 + 48);
}

/// The whole-block replay writes every allocated byte and reads every freed one: the
/// sample's count, worked out by hand, threaded and serial; only the stamps without it.
#[test]
fn the_whole_block_replay_touches_every_byte() {
    let t = decode(&sample(), false).unwrap();
    // alloc A 24 + alloc B 100 + free B 100 + realloc A 24 -> 300 (read 24, write the 276
    // added bytes and the 8 of A's old tail stamp) + aligned C 64 + calloc D 48 + free A
    // 300; C and D, live at the end, are checked and freed after the measured replay.
    let want = 24 + 100 + 100 + (24 + 276 + 8) + 64 + 48 + 300;
    for order in [Order::Threads, Order::Recorded, Order::Serial] {
        assert_eq!(run_with(&t, Options { order, whole: true }).touched_bytes, want, "{order:?}");
        assert_eq!(run_with(&t, Options { order, whole: false }).touched_bytes, 0, "{order:?}");
    }
}

/// Many threads freeing each other's blocks: the stage waits keep every object's ops in order.
#[test]
fn replays_a_cross_thread_ring() {
    let mut w = Writer::new(1, 0);
    let mut seq = 0;
    let threads = 6u32;
    let mut per: Vec<Vec<Rec>> = vec![Vec::new(); threads as usize];
    for i in 0..600u64 {
        let t = (i % u64::from(threads)) as usize;
        let addr = 0x10_0000 + i * 0x100;
        per[t].push(Rec::Alloc { seq, size: 8 + i % 200, addr });
        seq += 1;
        per[(t + 1) % threads as usize].push(Rec::Free { seq, addr });
        seq += 1;
    }
    for (t, recs) in per.iter().enumerate() {
        w.chunk(t as u32 + 1, recs);
    }
    let t = decode(&w.finish(), false).unwrap();
    assert_eq!(t.objects, 600);
    assert_eq!(profile(&t).cross_thread_frees, 600);
    for order in [Order::Threads, Order::Recorded] {
        let r = run(&t, order);
        assert_eq!(r.threads, threads as usize, "{order:?}");
        assert_eq!(r.samples.last().unwrap().live, 0, "{order:?}");
    }
}

fn message(b: &[u8]) -> String {
    decode(b, false).unwrap_err().to_string()
}

#[test]
fn foreign_and_versioned_files_are_named() {
    assert!(message(b"").contains("not a trace file"), "{}", message(b""));
    assert!(message(b"\x7fELF\x02\x01\x01\0\0").contains("not a trace file"));
    let mut newer = sample();
    newer[7] = 3;
    let m = message(&newer);
    assert!(m.contains("at byte 7") && m.contains("newer"), "{m}");
    let mut v1 = sample();
    v1[7] = b'1';
    assert!(message(&v1).contains("version 1"), "{}", message(&v1));
}

#[test]
fn truncation_is_an_error_naming_the_offset() {
    let b = sample();
    let m = message(&b[..b.len() - 3]);
    assert!(m.contains("cut short") || m.contains("truncated"), "{m}");
    let unfinished = {
        let mut w = Writer::new(5, 1);
        w.chunk(1, &[Rec::Alloc { seq: 0, size: 8, addr: 16 }]);
        w.unfinished()
    };
    let m = message(&unfinished);
    assert!(m.contains(&format!("at byte {}", unfinished.len())) && m.contains("--partial"), "{m}");
    let t = decode(&unfinished, true).unwrap();
    assert!(t.partial);
    assert_eq!(t.objects, 1);
}

#[test]
fn corrupted_chunks_fail_their_checksum() {
    let mut b = sample();
    b[20] ^= 0x10;
    let m = message(&b);
    assert!(m.contains("corrupted") || m.contains("expected") || m.contains("found"), "{m}");
    let mut b = sample();
    let n = b.len();
    b.push(0);
    assert!(message(&b).contains(&format!("at byte {n}")), "{}", message(&b));
}

/// A signal handler's malloc can take a later seq and be recorded before the call it
/// interrupted: seqs may go back within a chunk.
#[test]
fn seqs_may_go_back_within_a_chunk() {
    let mut w = Writer::new(1, 0);
    w.chunk(
        1,
        &[
            Rec::Alloc { seq: 0, size: 8, addr: 16 },
            Rec::Alloc { seq: 3, size: 24, addr: 48 },
            Rec::Free { seq: 2, addr: 16 },
            Rec::Free { seq: 4, addr: 48 },
        ],
    );
    let t = decode(&w.finish(), false).unwrap();
    let kinds: Vec<(u32, OpKind)> = t.ops.iter().map(|o| (o.object, o.kind)).collect();
    assert_eq!(kinds[1], (0, OpKind::Free), "{kinds:?}");
    assert_eq!(t.unknown_frees, 0);
}

#[test]
fn duplicate_sequence_numbers_are_refused() {
    let mut w = Writer::new(1, 0);
    w.chunk(1, &[Rec::Alloc { seq: 4, size: 8, addr: 16 }]);
    w.chunk(2, &[Rec::Alloc { seq: 4, size: 8, addr: 32 }]);
    assert!(message(&w.finish()).contains("twice"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes, with or without a valid header: an error or a trace, never a panic.
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300), header in any::<bool>()) {
        let mut b = if header { sample()[..10].to_vec() } else { Vec::new() };
        b.extend_from_slice(&body);
        let _ = decode(&b, false);
        let _ = decode(&b, true);
    }

    /// Every cut of a valid file is an error (the end record is last).
    #[test]
    fn every_truncation_is_an_error(cut in 0usize..1000) {
        let b = sample();
        let cut = cut % b.len();
        prop_assert!(decode(&b[..cut], false).is_err());
    }

    /// One flipped byte: an error, or (a flip in the header's process ids) the same ops.
    #[test]
    fn a_flipped_byte_is_caught(at in 0usize..1000, bits in 1u8..=255) {
        let good = sample();
        let mut b = good.clone();
        let at = at % b.len();
        b[at] ^= bits;
        if let Ok(t) = decode(&b, false) {
            prop_assert_eq!(t.ops, decode(&good, false).unwrap().ops, "flip at {} decoded to other ops", at);
        }
    }
}
