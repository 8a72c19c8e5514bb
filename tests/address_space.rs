//! Address space as a resource (issue #16, items 2 and 5).
//!
//! - Under an address-space limit (`RLIMIT_AS`) 128 MiB above what the process already
//!   holds, every strategy over `Mmap` serves 64 blocks of 1 MiB. The limit applies to the
//!   whole process, so each strategy runs in a child process: this test binary re-executes
//!   itself with `STRATALLOC_ASLIMIT_CHILD` naming the strategy, and the child sets the limit
//!   (current `VmSize` + 128 MiB) before it makes its heap, which serves a few small blocks
//!   before the 1 MiB ones.
//! - After blocks aligned to 256 MiB and 1 GiB are freed and the heap trimmed, `Tiered`
//!   holds about the address space it held before them.

use core::alloc::Layout;
use std::process::Command;

use stratalloc::{AnyStrategy, Heap, Mmap, Strategy, StrategyKind, Tiered, Tracked};

const CHILD_VAR: &str = "STRATALLOC_ASLIMIT_CHILD";
const BLOCKS: usize = 64;
const BLOCK_BYTES: usize = 1 << 20;
const LIMIT_ABOVE_CURRENT: u64 = 128 << 20;

/// `VmSize` of this process, in bytes.
fn vm_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmSize:")).expect("VmSize line");
    let kib: u64 = line.split_whitespace().nth(1).expect("VmSize value").parse().expect("VmSize number");
    kib * 1024
}

/// The child's side: limit the address space, then count how many 1 MiB blocks the
/// strategy serves (each one written to), and print the count.
fn child(kind: StrategyKind) -> ! {
    let limit = vm_size() + LIMIT_ABOVE_CURRENT;
    let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: `setrlimit` only reads the struct it is given, a valid `rlimit`.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0, "setrlimit");
    let heap: Heap<AnyStrategy, Mmap> = Heap::from_parts(AnyStrategy::new(kind), Mmap);
    // A few small blocks first, as a real program has before it asks for 1 MiB blocks:
    // they take pages of the heap, so the 1 MiB blocks do not fill one region exactly.
    let small = Layout::from_size_align(64, 8).unwrap();
    let mut smalls = [core::ptr::null_mut::<u8>(); 256];
    for s in &mut smalls {
        *s = heap.alloc_layout(small).map_or(core::ptr::null_mut(), |p| p.as_ptr());
    }
    let layout = Layout::from_size_align(BLOCK_BYTES, 16).unwrap();
    let mut blocks = [core::ptr::null_mut::<u8>(); BLOCKS];
    let mut served = 0;
    for b in &mut blocks {
        let Some(p) = heap.alloc_layout(layout) else { break };
        // SAFETY: a fresh block of `BLOCK_BYTES` bytes.
        unsafe { p.as_ptr().write_bytes(0xA5, BLOCK_BYTES) };
        *b = p.as_ptr();
        served += 1;
    }
    println!("served {served}");
    assert!(smalls.iter().all(|p| !p.is_null()), "small blocks refused");
    std::process::exit(0)
}

fn kind_named(name: &str) -> StrategyKind {
    StrategyKind::ALL.into_iter().find(|k| k.name() == name).expect("known strategy")
}

#[test]
fn every_strategy_serves_64_x_1mib_under_128mib_as_limit() {
    if let Ok(name) = std::env::var(CHILD_VAR) {
        child(kind_named(&name));
    }
    let exe = std::env::current_exe().unwrap();
    let mut failed = Vec::new();
    for kind in StrategyKind::ALL {
        let out = Command::new(&exe)
            .args(["--exact", "every_strategy_serves_64_x_1mib_under_128mib_as_limit"])
            .args(["--test-threads=1", "--nocapture"])
            .env(CHILD_VAR, kind.name())
            .output()
            .expect("spawn child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let served = stdout
            .lines()
            .find_map(|l| l.split("served ").nth(1))
            .and_then(|n| n.trim().parse::<usize>().ok());
        println!("{}: {served:?} of {BLOCKS} x 1 MiB (exit {:?})", kind.name(), out.status.code());
        if served != Some(BLOCKS) {
            failed.push((kind.name(), served, String::from_utf8_lossy(&out.stderr).into_owned()));
        }
    }
    assert!(failed.is_empty(), "strategies short of {BLOCKS} x 1 MiB: {failed:?}");
}

#[test]
fn tiered_gives_back_address_space_of_over_aligned_blocks() {
    static HEAP: Heap<Tiered, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let small = Layout::from_size_align(64, 8).unwrap();
    let keep = HEAP.alloc_layout(small).unwrap();
    HEAP.trim();
    let baseline = HEAP.source().counts().owned();
    let layouts = [
        Layout::from_size_align(1 << 20, 256 << 20).unwrap(),
        Layout::from_size_align(1 << 20, 1 << 30).unwrap(),
        Layout::from_size_align(300 << 20, 256 << 20).unwrap(),
        Layout::from_size_align(1 << 30, 1 << 30).unwrap(),
    ];
    let mut peak = 0;
    // Arena records stay with the heap, for reuse, when their arenas go back (see "Reuse of
    // arena records" in strategies/tiered/arena.rs): as many as arenas were registered at
    // once, each under 72 KiB (the span map, 64 KiB, and the page bitmaps).
    let mut records = 0;
    for l in layouts {
        records = records.max(l.size().div_ceil(64 << 20));
        let p = HEAP.alloc_layout(l).expect("over-aligned block");
        assert_eq!(p.as_ptr().addr() % l.align(), 0);
        peak = peak.max(HEAP.source().counts().owned());
        // SAFETY: a live block of `HEAP` with layout `l`, freed once.
        unsafe { core::alloc::GlobalAlloc::dealloc(&HEAP, p.as_ptr(), l) };
    }
    HEAP.trim();
    let after = HEAP.source().counts().owned();
    println!("baseline {baseline} peak {peak} after trim {after}");
    assert!(
        after <= baseline + (1 << 20) + records * (72 << 10),
        "after trim {after} bytes owned, baseline {baseline}"
    );
    // SAFETY: a live block of `HEAP`, freed once.
    unsafe { core::alloc::GlobalAlloc::dealloc(&HEAP, keep.as_ptr(), small) };
    // SAFETY: the heap is used by this thread only.
    unsafe { HEAP.strategy().check(HEAP.source()) }.unwrap();
}
