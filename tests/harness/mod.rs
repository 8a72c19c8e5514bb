//! The shared test harness: one model-based suite that every strategy joins with one line.
//!
//! ```ignore
//! #[macro_use]
//! mod harness;
//! strategy_suite!(mmap, stratalloc::FirstFit, mmap);
//! strategy_suite!(fixed, stratalloc::FirstFit, fixed);
//! strategy_suite!(tracked, stratalloc::FirstFit, tracked);
//! // or all three at once: strategy_suites!(stratalloc::FirstFit);
//! ```
//!
//! # What the suite checks
//! - `random_ops` (proptest): random sequences of alloc / alloc_zeroed / dealloc / realloc
//!   (through `GlobalAlloc`) and allocate / allocate_zeroed / grow / grow_zeroed / shrink (through
//!   allocator-api2's `Allocator`, with changes of alignment), sizes 0..=256 KiB biased toward
//!   small with rare ones up to 1 MiB and rarer ones of 1 TiB..2^47 bytes (no machine backs
//!   them), alignments 1..=1 MiB with rare ones up to 1 GiB, run against a shadow model
//!   ([`Model`]). Every answer is judged by the [`Backing`] rules below. After every operation:
//!   the pointer is aligned; the block (up to its usable size) overlaps no other live block;
//!   zeroed memory reads zero; every block touched keeps its per-block pattern (checked on free,
//!   after realloc, and for all live blocks at `Verify` steps and at the end); the strategy's
//!   invariant walker (`Heap::check`) passes; `stats()` match the model (live bytes/objects,
//!   peak >= live, committed >= live); with `Tracked`, no illegal transition was attempted and
//!   the strategy's committed / reserved bytes equal the source's Ready / owned bytes.
//! - `threads`: 64 threads allocate (plain and zeroed), realloc and free, and free each
//!   other's blocks, sizes up to 1 MiB (256 KiB over `Fixed`) and alignments up to 1 MiB,
//!   every byte of every block checked; every thread is joined (its thread-local destructors
//!   have run) before the heap is checked consistent and empty.
//! - `collections`: allocator-api2 `Vec`/`Box` over the heap.
//! - `exhaustion` (with `fixed`): a small `Fixed` region runs out: null, consistent heap,
//!   freed memory reusable.
//! - `injected_failure` (with `tracked`): `Failing<Tracked<Mmap>>` refuses calls; null, a
//!   consistent heap, and after freeing everything and `trim()` no growth of held memory
//!   across cycles and the source agrees with the strategy's stats.
//! - `freed_and_trimmed` (with `tracked`): after everything is freed and trimmed, the Ready
//!   bytes of the source equal the strategy's committed bytes.
//!
//! # When a null is legal ([`Backing`])
//! A strategy that answers null too easily (one that always did would pass a suite that
//! accepted any null) is caught by a rule per source, applied to every alloc, realloc, grow
//! and shrink, with `live` the bytes the model holds live before the request:
//! - over the OS (`mmap`, `tracked`; [`Backing::Machine`]): with `machine` = RAM + swap
//!   ([`machine_bytes`]), a request of `size > machine` **must** be refused (a pointer to
//!   memory no machine can back gets the program killed when it touches it); a request with
//!   `size + align <= machine / 2` **must** be granted; in between a null is legal (only
//!   alignments of 1 GiB on a small machine land there). The harness never issues a size
//!   between 1 GiB and `machine`, which it would have to touch: on a machine with more than a
//!   TiB, such a drawn request is skipped.
//! - over a `Fixed` region of `region` bytes ([`Backing::Region`]): `size > region` must be
//!   refused; a null is legal only when `live + size + align > region / 2` (half the region
//!   is left to fragmentation, alignment gaps and metadata); anything else must be granted.
//! - over a source that fails on purpose ([`Backing::Failing`]): a null is always legal,
//!   except that `size > machine` must still be refused.
//!
//! # Reproducing a failure
//! `random_ops` prints its seed (`PROPTEST_RNG_SEED=...`) in the failure message and on
//! stderr: rerunning with that variable set replays the same sequences. Failures are also
//! persisted, as proptest does, in `tests/<test file>.proptest-regressions` next to the test
//! (commit that file): every later run replays them first.
//!
//! Knobs: `PROPTEST_CASES` (default 32 cases per strategy x source), `PROPTEST_RNG_SEED`;
//! sequences of up to 160 operations. With `--nocapture` each `random_ops` reports its
//! cases and operations (`.ci/deep.sh` sums them).
#![allow(dead_code, unused_macros, unused_imports)]

pub mod reference;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use allocator_api2::alloc::Allocator;
use proptest::prelude::{Just, prop_oneof};
use proptest::sample::Index;
use proptest::strategy::Strategy as PropStrategy;
use stratalloc::{ConstInit, Failing, Fixed, Heap, Mmap, PageSource, Strategy, Tracked};

/// Tunables of the suite for one strategy. `DEFAULT` is strict: exact statistics.
#[derive(Copy, Clone, Debug)]
pub struct Opts {
    /// `live_bytes` / `live_objects` equal the model's after every operation.
    pub exact_stats: bool,
    /// With `Tracked`: the strategy's committed bytes equal the source's Ready bytes, and its
    /// reserved bytes the source's owned bytes, after every operation.
    pub exact_committed: bool,
    /// Ready bytes of metadata the strategy may make Ready on first use and keep for good
    /// (so what it holds after free and trim may grow by up to this across `injected_failure`'s
    /// cycles, as allocations land on new places): `Tiered`'s head slots, made Ready 72 KiB
    /// at a time where small spans first begin, never given back while the heap lives
    /// (readers without a lock may read them at any time; see "head slots" in
    /// strategies/tiered/arena.rs), at most 4.5 MiB an arena.
    pub kept_metadata_bytes: usize,
}

impl Opts {
    /// Everything exact.
    pub const DEFAULT: Opts = Opts { exact_stats: true, exact_committed: true, kept_metadata_bytes: 0 };
}

/// Cases per proptest, from `PROPTEST_CASES` or a modest default.
pub fn config() -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
    proptest::test_runner::Config {
        cases,
        max_shrink_iters: 2048,
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..proptest::test_runner::Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Page sources the suite runs over.

/// A page source the suite can build a fresh heap over.
pub trait SourceKind {
    /// The source type.
    type P: PageSource;
    /// When a null answer is legal over this source.
    const BACKING: Backing;
    /// A fresh heap over a fresh source.
    fn env<S: Strategy + ConstInit>() -> Env<S, Self::P>;
    /// Checks of the source itself after an operation.
    fn check_source<S: Strategy>(_heap: &Heap<S, Self::P>, _opts: &Opts) -> Result<(), String> {
        Ok(())
    }
}

/// A heap and the memory its source lives in (dropped after the heap: field order).
pub struct Env<S: Strategy, P: PageSource> {
    pub heap: Heap<S, P>,
    _region: Option<OwnedRegion>,
}

/// Memory for a `Fixed` source, from the system allocator of the test process.
pub struct OwnedRegion {
    ptr: *mut u8,
    layout: Layout,
}

impl OwnedRegion {
    pub fn new(bytes: usize) -> Self {
        let layout = Layout::from_size_align(bytes, 4096).expect("region layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::System.alloc(layout) };
        assert!(!ptr.is_null(), "could not allocate a {bytes}-byte region for Fixed");
        OwnedRegion { ptr, layout }
    }

    /// A `Fixed` source over this region.
    pub fn source(&self) -> Fixed {
        // SAFETY: the region is valid for its whole size, outlives the heap built over it
        // (`Env` field order), and nothing else touches it.
        unsafe { Fixed::new(self.ptr, self.layout.size()) }
    }
}

impl Drop for OwnedRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::System.dealloc(self.ptr, self.layout) }
    }
}

/// Bytes of the `Fixed` region of the `fixed` kind.
pub const FIXED_REGION_BYTES: usize = 64 << 20;

#[allow(non_camel_case_types)]
pub mod kinds {
    /// The operating system.
    pub struct mmap;
    /// A caller's 64 MiB region.
    pub struct fixed;
    /// The operating system, every transition checked and counted.
    pub struct tracked;
}

impl SourceKind for kinds::mmap {
    type P = Mmap;
    const BACKING: Backing = Backing::Machine;
    fn env<S: Strategy + ConstInit>() -> Env<S, Mmap> {
        Env { heap: Heap::with_source(Mmap), _region: None }
    }
}

impl SourceKind for kinds::fixed {
    type P = Fixed;
    const BACKING: Backing = Backing::Region(FIXED_REGION_BYTES);
    fn env<S: Strategy + ConstInit>() -> Env<S, Fixed> {
        let region = OwnedRegion::new(FIXED_REGION_BYTES);
        Env { heap: Heap::with_source(region.source()), _region: Some(region) }
    }
    fn check_source<S: Strategy>(heap: &Heap<S, Fixed>, _opts: &Opts) -> Result<(), String> {
        fixed_consistent(heap.source())
    }
}

/// The `Fixed` source's own bookkeeping (its list of freed ranges) is intact.
pub fn fixed_consistent(f: &Fixed) -> Result<(), String> {
    f.check().map(|_| ()).map_err(|e| format!("Fixed source broken: {e}"))
}

impl SourceKind for kinds::tracked {
    type P = Tracked<Mmap>;
    const BACKING: Backing = Backing::Machine;
    fn env<S: Strategy + ConstInit>() -> Env<S, Tracked<Mmap>> {
        Env { heap: Heap::with_source(Tracked::new(Mmap)), _region: None }
    }
    fn check_source<S: Strategy>(heap: &Heap<S, Tracked<Mmap>>, opts: &Opts) -> Result<(), String> {
        tracked_agrees(heap.source(), heap, opts)
    }
}

/// The source's view agrees with the strategy's: no illegal transition, and (if exact)
/// Ready bytes == committed bytes and owned bytes == reserved bytes.
pub fn tracked_agrees<S: Strategy, P: PageSource>(
    t: &Tracked<Mmap>,
    heap: &Heap<S, P>,
    opts: &Opts,
) -> Result<(), String> {
    let c = t.counts();
    if c.illegal != 0 {
        return Err(format!("the strategy attempted {} illegal transition(s): {c:?}", c.illegal));
    }
    let s = heap.stats();
    if opts.exact_committed && (c.ready != s.committed_bytes || c.owned() != s.reserved_bytes) {
        return Err(format!(
            "source and strategy disagree: Tracked ready {} owned {} vs stats committed {} reserved {}",
            c.ready,
            c.owned(),
            s.committed_bytes,
            s.reserved_bytes
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// When a null is legal.

/// What a source can back, and so when a refused request is legal (the rules are in the
/// [module docs](self)).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// The operating system: only requests past the machine's memory may (and must) fail.
    Machine,
    /// A `Fixed` region of this many bytes.
    Region(usize),
    /// A source that fails on purpose: any refusal is legal.
    Failing,
}

/// What the model expects of one request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A null is the only correct answer: no source behind this heap can back the request.
    Refuse,
    /// Either answer is correct.
    Either,
    /// A null is a bug.
    Grant,
    /// The harness does not issue this request (it would have to touch more than it should).
    Skip,
}

/// Requests above this are only issued when the machine cannot back them (see [`Backing`]).
pub const TOUCHABLE_MAX: usize = 1 << 30;

/// RAM + swap of this machine (`sysinfo(2)`), the line past which no request can be backed.
/// Miri cannot make the system call, and its programs run over `Fixed` regions only: there a
/// nominal 64 GiB machine stands in.
pub fn machine_bytes() -> usize {
    if cfg!(miri) {
        return 64 << 30;
    }
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        // SAFETY: `sysinfo` writes only the struct it is given, a valid exclusive
        // `libc::sysinfo` for which all-zero is a valid value.
        let info = unsafe {
            let mut info: libc::sysinfo = core::mem::zeroed();
            assert_eq!(libc::sysinfo(&mut info), 0, "sysinfo failed");
            info
        };
        let unit = (info.mem_unit as usize).max(1);
        (info.totalram as usize).saturating_add(info.totalswap as usize).saturating_mul(unit)
    })
}

impl Backing {
    /// The verdict on a request of `size` bytes aligned to `align`, `live` bytes being live.
    pub fn expect(self, size: usize, align: usize, live: usize) -> Expect {
        let machine = machine_bytes();
        if size > machine {
            return Expect::Refuse;
        }
        if size > TOUCHABLE_MAX {
            return Expect::Skip;
        }
        let want = size.saturating_add(align);
        match self {
            Backing::Machine if want > machine / 2 => Expect::Either,
            Backing::Machine => Expect::Grant,
            Backing::Region(region) if size > region => Expect::Refuse,
            Backing::Region(region) if live.saturating_add(want) > region / 2 => Expect::Either,
            Backing::Region(_) => Expect::Grant,
            Backing::Failing => Expect::Either,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Patterns.

/// The byte at offset `i` of the block with seed `seed`.
#[inline]
pub fn pattern_byte(seed: u64, i: usize) -> u8 {
    let x = seed ^ (i as u64 >> 8).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8 ^ (x as u8) ^ (i as u8).wrapping_mul(151)
}

/// The offsets of a `len`-byte block that the pattern covers: every byte, or under Miri (where
/// each byte costs thousands of times more) the first [`MIRI_EDGE_BYTES`] and one byte in
/// every [`MIRI_EDGE_BYTES`] after them. The set does not depend on `len`, so a prefix kept by
/// realloc holds the pattern at every offset it checks.
#[inline]
fn pattern_offsets(len: usize) -> impl Iterator<Item = usize> {
    let step = if cfg!(miri) { MIRI_EDGE_BYTES } else { 1 };
    let head = if cfg!(miri) { len.min(MIRI_EDGE_BYTES) } else { len };
    (0..head).chain((head + step - 1..len).step_by(step))
}

/// Under Miri: the pattern's dense head, and its stride after it.
pub const MIRI_EDGE_BYTES: usize = 64;

/// Writes the pattern of `seed` over `ptr..ptr + len`.
///
/// # Safety
/// The range is valid for writes.
pub unsafe fn fill(ptr: *mut u8, len: usize, seed: u64) {
    if !cfg!(miri) {
        for (run, at) in (0..len).step_by(PATTERN_RUN).enumerate() {
            let n = PATTERN_RUN.min(len - at);
            // SAFETY: `at + n <= len`, inside the caller's range.
            unsafe { ptr.add(at).copy_from_nonoverlapping(pattern_run(seed, run).as_ptr(), n) };
        }
        return;
    }
    // The last byte too, so that a write touches both ends of the block whatever the stride.
    for i in pattern_offsets(len).chain(len.checked_sub(1)) {
        // SAFETY: `i < len`, inside the caller's range.
        unsafe { *ptr.add(i) = pattern_byte(seed, i) };
    }
}

/// Offsets a pattern run covers: [`pattern_byte`] is `x ^ (i as u8 * 151)` with `x` the same
/// for every `i` of one run of 256 offsets.
const PATTERN_RUN: usize = 256;

/// `(i as u8).wrapping_mul(151)` for `i` in `0..256`.
const PATTERN_MIX: [u8; PATTERN_RUN] = {
    let mut t = [0u8; PATTERN_RUN];
    let mut i = 0;
    while i < PATTERN_RUN {
        t[i] = (i as u8).wrapping_mul(151);
        i += 1;
    }
    t
};

/// The pattern bytes of offsets `run * 256 .. run * 256 + 256`: equal to [`pattern_byte`] at
/// each, computed eight bytes at a time, so that every byte of a block is written and checked
/// at memory speed (`copy` and `==` on slices) even where the tests are not optimised.
#[inline]
fn pattern_run(seed: u64, run: usize) -> [u8; PATTERN_RUN] {
    let x = seed ^ (run as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let splat = u64::from_ne_bytes([(x >> 56) as u8 ^ (x as u8); 8]);
    let mut out = PATTERN_MIX;
    for w in out.chunks_exact_mut(8) {
        let v = u64::from_ne_bytes(w.try_into().unwrap()) ^ splat;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    out
}

fn corrupted(what: &str, ptr: *const u8, len: usize, i: usize, got: u8, want: u8) -> String {
    format!(
        "{what}: block {ptr:p} ({len} bytes) corrupted at offset {i} ({:p}): {got:#04x}, expected {want:#04x}",
        ptr.wrapping_add(i)
    )
}

/// Checks `ptr..ptr + len` holds the pattern of `seed`.
///
/// # Safety
/// The range is valid for reads.
pub unsafe fn verify(ptr: *const u8, len: usize, seed: u64, what: &str) -> Result<(), String> {
    if !cfg!(miri) {
        for (run, at) in (0..len).step_by(PATTERN_RUN).enumerate() {
            let n = PATTERN_RUN.min(len - at);
            // SAFETY: `at + n <= len`, inside the caller's range.
            let got = unsafe { core::slice::from_raw_parts(ptr.add(at), n) };
            let want = pattern_run(seed, run);
            if got != &want[..n] {
                let j = (0..n).find(|&j| got[j] != want[j]).unwrap_or(0);
                return Err(corrupted(what, ptr, len, at + j, got[j], want[j]));
            }
        }
        return Ok(());
    }
    for i in pattern_offsets(len) {
        // SAFETY: `i < len`, inside the caller's range.
        let got = unsafe { *ptr.add(i) };
        let want = pattern_byte(seed, i);
        if got != want {
            return Err(corrupted(what, ptr, len, i, got, want));
        }
    }
    Ok(())
}

/// Checks `ptr..ptr + len` is zero.
///
/// # Safety
/// The range is valid for reads.
pub unsafe fn verify_zero(ptr: *const u8, len: usize, what: &str) -> Result<(), String> {
    if !cfg!(miri) {
        const ZERO: [u8; PATTERN_RUN] = [0; PATTERN_RUN];
        for at in (0..len).step_by(PATTERN_RUN) {
            let n = PATTERN_RUN.min(len - at);
            // SAFETY: `at + n <= len`, inside the caller's range.
            let got = unsafe { core::slice::from_raw_parts(ptr.add(at), n) };
            if got != &ZERO[..n] {
                let j = (0..n).find(|&j| got[j] != 0).unwrap_or(0);
                return Err(format!(
                    "{what}: block {ptr:p} ({len} bytes) not zero at offset {}: {:#04x}",
                    at + j,
                    got[j]
                ));
            }
        }
        return Ok(());
    }
    for i in pattern_offsets(len) {
        // SAFETY: `i < len`, inside the caller's range.
        let got = unsafe { *ptr.add(i) };
        if got != 0 {
            return Err(format!("{what}: block {ptr:p} ({len} bytes) not zero at offset {i}: {got:#04x}"));
        }
    }
    Ok(())
}

#[test]
fn pattern_runs_match_pattern_bytes() {
    for seed in [0u64, 1, 0xDEAD_BEEF, u64::MAX] {
        for run in [0usize, 1, 7, 1 << 20] {
            let r = pattern_run(seed, run);
            for (j, &b) in r.iter().enumerate() {
                assert_eq!(b, pattern_byte(seed, run * PATTERN_RUN + j), "seed {seed} run {run} byte {j}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Operations and their generators.

/// Which interface an allocation goes through.
#[derive(Copy, Clone, Debug)]
pub enum Api {
    /// `GlobalAlloc`.
    Global,
    /// allocator-api2's `Allocator`.
    Allocator,
    /// Frees by address alone ([`Heap::free`]); allocates as `Global`.
    Address,
}

/// One step of a random sequence.
#[derive(Clone, Debug)]
pub enum Op {
    Alloc {
        size: usize,
        align: usize,
        zeroed: bool,
        api: Api,
    },
    Dealloc {
        which: Index,
        api: Api,
    },
    /// `GlobalAlloc::realloc` (same alignment).
    Realloc {
        which: Index,
        size: usize,
    },
    /// `Allocator::grow` / `grow_zeroed` / `shrink`, chosen by the sizes, maybe a new alignment.
    Resize {
        which: Index,
        size: usize,
        align: usize,
        zeroed: bool,
    },
    /// A bad free by address (a freed block, an interior or a foreign pointer): must be
    /// refused and change nothing.
    BadFree {
        which: Index,
        kind: u8,
    },
    /// Check every live block's pattern.
    Verify,
}

/// Sizes 0..=256 KiB, mostly small; about one in 200 up to 1 MiB, and one in 300 of
/// 1 TiB..2^47 bytes, which no machine can back ([`Backing`]).
pub fn sizes() -> impl PropStrategy<Value = usize> + Clone {
    prop_oneof![
        200 => 0usize..=64,
        100 => 65usize..=1024,
        40 => 1025usize..=16 << 10,
        20 => (16usize << 10) + 1..=256 << 10,
        2 => (256usize << 10) + 1..=1 << 20,
        1 => (40u32..=46, proptest::num::usize::ANY).prop_map(|(s, x)| (1usize << s) + x % (1usize << s)),
    ]
}

/// Alignments 1..=1 MiB, mostly small; about one in 800 of 2 MiB..=1 GiB. (Rare because
/// they are slow to check, not to make: a free-list chunk grown for such an alignment has
/// a fresh tail of up to the alignment, which the free lists' checker reads whole after every
/// operation.)
pub fn aligns() -> impl PropStrategy<Value = usize> + Clone {
    prop_oneof![
        600 => (0u32..=4).prop_map(|s| 1usize << s),
        150 => (5u32..=12).prop_map(|s| 1usize << s),
        50 => (13u32..=20).prop_map(|s| 1usize << s),
        1 => (21u32..=30).prop_map(|s| 1usize << s),
    ]
}

fn apis() -> impl PropStrategy<Value = Api> + Clone {
    prop_oneof![Just(Api::Global), Just(Api::Allocator), Just(Api::Address)]
}

/// One operation.
pub fn op() -> impl PropStrategy<Value = Op> {
    prop_oneof![
        8 => (sizes(), aligns(), proptest::bool::weighted(0.25), apis())
            .prop_map(|(size, align, zeroed, api)| Op::Alloc { size, align, zeroed, api }),
        5 => (proptest::arbitrary::any::<Index>(), apis()).prop_map(|(which, api)| Op::Dealloc { which, api }),
        2 => (proptest::arbitrary::any::<Index>(), sizes()).prop_map(|(which, size)| Op::Realloc { which, size }),
        2 => (proptest::arbitrary::any::<Index>(), sizes(), aligns(), proptest::bool::ANY)
            .prop_map(|(which, size, align, zeroed)| Op::Resize { which, size, align, zeroed }),
        1 => (proptest::arbitrary::any::<Index>(), 0u8..4).prop_map(|(which, kind)| Op::BadFree { which, kind }),
        1 => Just(Op::Verify),
    ]
}

/// A sequence of operations.
pub fn ops() -> impl PropStrategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..160)
}

// ---------------------------------------------------------------------------------------------
// The shadow model.

/// A live block as the model knows it.
#[derive(Copy, Clone, Debug)]
pub struct Block {
    pub ptr: NonNull<u8>,
    pub layout: Layout,
    pub seed: u64,
    /// Bytes the strategy says the block can hold (>= size).
    pub usable: usize,
}

// SAFETY: a block is a plain address handed between test threads; the heap is thread-safe.
unsafe impl Send for Block {}

/// What the heap must contain: the live blocks, by address.
#[derive(Default)]
pub struct Model {
    pub blocks: Vec<Block>,
    /// Live non-empty blocks: start -> (end of usable range, seed).
    by_addr: BTreeMap<usize, (usize, u64)>,
    next_seed: u64,
    /// Starts of recently freed non-empty blocks (the newest last), for double frees.
    pub freed: std::collections::VecDeque<usize>,
    /// Σ usable sizes of the live blocks (what `StrategyStats::live_bytes` counts).
    pub live_bytes: usize,
    pub live_objects: usize,
}

impl Model {
    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        self.next_seed.wrapping_mul(0xD6E8_FEB8_6659_FD93)
    }

    /// Records a new live block after checking alignment and overlap.
    fn insert(&mut self, b: Block) -> Result<(), String> {
        let addr = b.ptr.as_ptr() as usize;
        if !addr.is_multiple_of(b.layout.align()) {
            return Err(format!("{:p} is not aligned to {} ({:?})", b.ptr, b.layout.align(), b.layout));
        }
        if b.usable < b.layout.size() {
            return Err(format!("usable size {} < requested {} at {:p}", b.usable, b.layout.size(), b.ptr));
        }
        if b.layout.size() > 0 {
            let end = addr + b.usable;
            if let Some((&lo, &(lo_end, _))) = self.by_addr.range(..end).next_back()
                && lo_end > addr
            {
                return Err(format!(
                    "block {addr:#x}..{end:#x} ({:?}) overlaps live block {lo:#x}..{lo_end:#x}",
                    b.layout
                ));
            }
            self.by_addr.insert(addr, (end, b.seed));
            self.live_bytes += b.usable;
            self.live_objects += 1;
        }
        self.blocks.push(b);
        Ok(())
    }

    /// Forgets block `i` (which the caller has just freed or moved).
    fn remove(&mut self, i: usize) -> Block {
        let b = self.blocks.swap_remove(i);
        if b.layout.size() > 0 {
            self.by_addr.remove(&(b.ptr.as_ptr() as usize));
            self.live_bytes -= b.usable;
            self.live_objects -= 1;
            if self.freed.len() == 16 {
                self.freed.pop_front();
            }
            self.freed.push_back(b.ptr.as_ptr() as usize);
        }
        b
    }

    /// Whether `addr` is the start of a live non-empty block.
    pub fn is_live_start(&self, addr: usize) -> bool {
        self.by_addr.contains_key(&addr)
    }

    /// Checks every live block's pattern.
    pub fn verify_all(&self) -> Result<(), String> {
        for b in &self.blocks {
            // SAFETY: the block is live, valid for `size` bytes.
            unsafe { verify(b.ptr.as_ptr(), b.layout.size(), b.seed, "live block")? };
        }
        Ok(())
    }
}

/// Runs the model's checks on a heap; `S`/`P` any.
pub struct Runner<'h, S: Strategy, P: PageSource> {
    pub heap: &'h Heap<S, P>,
    pub model: Model,
    /// When a null is legal.
    pub backing: Backing,
    /// Requests refused (each one legal by the [`Backing`] rules).
    pub refused: usize,
    /// Requests the harness skipped ([`Expect::Skip`]).
    pub skipped: usize,
}

impl<'h, S: Strategy, P: PageSource> Runner<'h, S, P> {
    pub fn new(heap: &'h Heap<S, P>, backing: Backing) -> Self {
        Runner { heap, model: Model::default(), backing, refused: 0, skipped: 0 }
    }

    /// The verdict on a request for `layout`.
    fn expect(&self, size: usize, align: usize) -> Expect {
        if size == 0 {
            return Expect::Grant; // a dangling pointer, no memory
        }
        self.backing.expect(size, align, self.model.live_bytes)
    }

    /// A null answer to a request the verdict `e` was given for.
    fn refused(&mut self, e: Expect, what: &str) -> Result<(), String> {
        self.refused += 1;
        if e == Expect::Grant {
            Err(format!(
                "{what} refused, though {:?} can back it ({} live blocks, {} bytes live)",
                self.backing,
                self.model.blocks.len(),
                self.model.live_bytes
            ))
        } else {
            Ok(())
        }
    }

    /// A pointer returned for a request the verdict `e` was given for: an error if no machine
    /// can back it (the block is left untouched, and leaked).
    fn granted(&self, e: Expect, what: &str) -> Result<(), String> {
        if e == Expect::Refuse {
            Err(format!(
                "{what} granted, though {:?} cannot back it (machine: {} bytes)",
                self.backing,
                machine_bytes()
            ))
        } else {
            Ok(())
        }
    }

    /// Records a fresh block: checks zeroing, writes its pattern over the usable size.
    fn adopt(&mut self, ptr: NonNull<u8>, layout: Layout, zeroed_from: Option<usize>) -> Result<(), String> {
        if let Some(from) = zeroed_from {
            // SAFETY: the block is live for `layout.size()` bytes.
            unsafe {
                verify_zero(ptr.as_ptr().add(from), layout.size() - from, "zeroed allocation")?;
            }
        }
        // SAFETY: the block is live and was allocated here for `layout`.
        let usable = unsafe { self.heap.usable_size(ptr, layout) };
        let seed = self.model.seed();
        let block = Block { ptr, layout, seed, usable };
        self.model.insert(block)?;
        // SAFETY: the block can hold `usable` bytes (the strategy says so), and overlaps no
        // other live block (checked by `insert`).
        unsafe { fill(ptr.as_ptr(), usable.max(layout.size()), seed) };
        Ok(())
    }

    /// Allocates and records a block.
    pub fn alloc(&mut self, size: usize, align: usize, zeroed: bool, api: Api) -> Result<bool, String> {
        let layout = Layout::from_size_align(size, align).expect("generated layouts are valid");
        let e = self.expect(size, align);
        if e == Expect::Skip {
            self.skipped += 1;
            return Ok(false);
        }
        let p = match api {
            // SAFETY: Heap accepts every layout (zero size included).
            Api::Global | Api::Address => unsafe {
                NonNull::new(if zeroed { self.heap.alloc_zeroed(layout) } else { self.heap.alloc(layout) })
            },
            Api::Allocator => {
                let r = if zeroed { self.heap.allocate_zeroed(layout) } else { self.heap.allocate(layout) };
                r.ok().map(|s| s.cast::<u8>())
            }
        };
        let what = format!("alloc{} {layout:?} ({api:?})", if zeroed { "_zeroed" } else { "" });
        let Some(p) = p else {
            self.refused(e, &what)?;
            return Ok(false);
        };
        self.granted(e, &what)?;
        self.adopt(p, layout, zeroed.then_some(0))?;
        Ok(true)
    }

    /// Frees block `i` after checking its pattern.
    pub fn dealloc(&mut self, i: usize, api: Api) -> Result<(), String> {
        let b = self.model.blocks[i];
        // SAFETY: live block of `size` bytes.
        unsafe { verify(b.ptr.as_ptr(), b.layout.size(), b.seed, "block at free")? };
        self.model.remove(i);
        match api {
            // SAFETY: a live block of this heap with its layout.
            Api::Global => unsafe { self.heap.dealloc(b.ptr.as_ptr(), b.layout) },
            // SAFETY: a live block of this heap with its layout, freed once.
            Api::Allocator => unsafe { self.heap.deallocate(b.ptr, b.layout) },
            Api::Address => {
                // SAFETY: a live block of this heap (or a zero-size block's dangling pointer,
                // which is no block and must be refused), freed once.
                let r = unsafe { self.heap.free(b.ptr) };
                match (b.layout.size(), r) {
                    (0, Err(_)) => {}
                    (0, Ok(n)) => {
                        return Err(format!(
                            "free by address of a zero-size block {:p} freed {n} bytes",
                            b.ptr
                        ));
                    }
                    (_, Ok(n)) if n == b.usable => {}
                    (_, r) => {
                        return Err(format!(
                            "free by address of live block {:p} ({:?}, usable {}): {r:?}",
                            b.ptr, b.layout, b.usable
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A pointer that is not the start of a live block: a recently freed block (`kind` 0), an
    /// interior pointer of a live block (1), a stack address (2) or a block of the system
    /// allocator (3); `None` when the kind has no candidate now.
    fn not_a_block(&self, which: &Index, kind: u8, stack: &u64, boxed: &u64) -> Option<NonNull<u8>> {
        let m = &self.model;
        let p = match kind {
            0 if !m.freed.is_empty() => {
                let a = m.freed[which.index(m.freed.len())];
                // The address only: it is compared and passed back, never dereferenced here.
                NonNull::new(core::ptr::without_provenance_mut::<u8>(a))?
            }
            1 if !m.blocks.is_empty() => {
                let b = m.blocks[which.index(m.blocks.len())];
                if b.layout.size() == 0 || b.usable < 2 {
                    return None;
                }
                let off = 1 + which.index(b.usable - 1);
                // SAFETY: `off < usable`, inside the block.
                unsafe { b.ptr.add(off) }
            }
            2 => NonNull::from(stack).cast(),
            3 => NonNull::from(boxed).cast(),
            _ => return None,
        };
        (!m.is_live_start(p.as_ptr() as usize)).then_some(p)
    }

    /// A bad free by address: must be refused, and change nothing the checks can see.
    pub fn bad_free(&mut self, which: &Index, kind: u8) -> Result<(), String> {
        let stack = 0u64;
        let boxed = Box::new(0u64);
        let Some(p) = self.not_a_block(which, kind, &stack, &boxed) else { return Ok(()) };
        let before = self.heap.stats();
        // SAFETY: `p` is no live block of this heap, so the call must refuse it and change
        // nothing; nothing of ours is given up.
        let r = unsafe { self.heap.free(p) };
        let after = self.heap.stats();
        if r.is_ok() || (before.live_bytes, before.live_objects) != (after.live_bytes, after.live_objects) {
            return Err(format!(
                "bad free (kind {kind}) of {p:p} answered {r:?}; stats {before:?} -> {after:?}"
            ));
        }
        Ok(())
    }

    /// `block_of` knows every live block exactly and refuses everything else: interior
    /// pointers, recently freed blocks, the stack, the system allocator's blocks, null.
    pub fn check_block_of(&self) -> Result<(), String> {
        let m = &self.model;
        for b in &m.blocks {
            let p = b.ptr.as_ptr();
            if b.layout.size() == 0 {
                if let Some(i) = self.heap.block_of(p) {
                    return Err(format!("block_of of a zero-size block's dangling {p:p}: {i:?}"));
                }
                continue;
            }
            match self.heap.block_of(p) {
                Some(i) if i.start == p as usize && i.usable == b.usable && i.align >= b.layout.align() => {}
                other => {
                    return Err(format!(
                        "block_of({p:p}) of a live block ({:?}, usable {}) = {other:?}",
                        b.layout, b.usable
                    ));
                }
            }
            for off in [1, b.usable / 2, b.usable - 1] {
                let q = p.wrapping_add(off);
                if off > 0 && !m.is_live_start(q as usize) && self.heap.block_of(q).is_some() {
                    return Err(format!("block_of({q:p}), {off} bytes into live block {p:p}, is Some"));
                }
            }
        }
        for &a in &m.freed {
            if !m.is_live_start(a) && self.heap.block_of(core::ptr::without_provenance(a)).is_some() {
                return Err(format!("block_of({a:#x}) of a freed block is Some"));
            }
        }
        let stack = 0u64;
        let boxed = Box::new(0u64);
        for q in [(&raw const stack).cast::<u8>(), (&raw const *boxed).cast::<u8>(), core::ptr::null()] {
            if let Some(i) = self.heap.block_of(q) {
                return Err(format!("block_of({q:p}), not from this heap, = {i:?}"));
            }
        }
        Ok(())
    }

    /// `GlobalAlloc::realloc` of block `i` to `size` (same alignment).
    pub fn realloc(&mut self, i: usize, size: usize) -> Result<(), String> {
        let b = self.model.blocks[i];
        if size == 0 || Layout::from_size_align(size, b.layout.align()).is_err() {
            return Ok(()); // GlobalAlloc::realloc requires a non-zero, valid new size.
        }
        let e = self.expect(size, b.layout.align());
        if e == Expect::Skip {
            self.skipped += 1;
            return Ok(());
        }
        // SAFETY: a live block of this heap with its layout; `size` is valid for its alignment.
        let p = unsafe { self.heap.realloc(b.ptr.as_ptr(), b.layout, size) };
        let Some(p) = NonNull::new(p) else {
            // SAFETY: on failure the old block is untouched and live.
            unsafe { verify(b.ptr.as_ptr(), b.layout.size(), b.seed, "block after failed realloc")? };
            return self.refused(e, &format!("realloc {:?} -> {size}", b.layout));
        };
        self.granted(e, &format!("realloc {:?} -> {size}", b.layout))?;
        self.moved(i, p, Layout::from_size_align(size, b.layout.align()).unwrap(), None)
    }

    /// `Allocator::grow` / `grow_zeroed` / `shrink` of block `i`.
    pub fn resize(&mut self, i: usize, size: usize, align: usize, zeroed: bool) -> Result<(), String> {
        let b = self.model.blocks[i];
        let new = Layout::from_size_align(size, align).expect("generated layouts are valid");
        let grow = size >= b.layout.size();
        let e = self.expect(size, align);
        if e == Expect::Skip {
            self.skipped += 1;
            return Ok(());
        }
        // SAFETY: a live block of this heap with its layout; grow gets new.size >= old.size,
        // shrink new.size <= old.size, as the API requires.
        let r = unsafe {
            match (grow, zeroed) {
                (true, true) => self.heap.grow_zeroed(b.ptr, b.layout, new),
                (true, false) => self.heap.grow(b.ptr, b.layout, new),
                (false, _) => self.heap.shrink(b.ptr, b.layout, new),
            }
        };
        let Ok(p) = r else {
            // SAFETY: on failure the old block is untouched and live.
            unsafe { verify(b.ptr.as_ptr(), b.layout.size(), b.seed, "block after failed resize")? };
            return self.refused(e, &format!("resize {:?} -> {new:?}", b.layout));
        };
        self.granted(e, &format!("resize {:?} -> {new:?}", b.layout))?;
        let zero_from = (grow && zeroed).then_some(b.layout.size());
        self.moved(i, p.cast(), new, zero_from)
    }

    /// Block `i` now lives at `p` with `new`: check the kept prefix, then re-adopt it.
    fn moved(
        &mut self,
        i: usize,
        p: NonNull<u8>,
        new: Layout,
        zero_from: Option<usize>,
    ) -> Result<(), String> {
        let old = self.model.remove(i);
        let kept = old.layout.size().min(new.size());
        // SAFETY: the new block is live for `new.size() >= kept` bytes.
        unsafe { verify(p.as_ptr(), kept, old.seed, "contents kept by realloc")? };
        self.adopt(p, new, zero_from)
    }

    /// Applies one operation.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        let n = self.model.blocks.len();
        match *op {
            Op::Alloc { size, align, zeroed, api } => self.alloc(size, align, zeroed, api).map(|_| ()),
            Op::Dealloc { ref which, api } if n > 0 => self.dealloc(which.index(n), api),
            Op::Realloc { ref which, size } if n > 0 => self.realloc(which.index(n), size),
            Op::Resize { ref which, size, align, zeroed } if n > 0 => {
                self.resize(which.index(n), size, align, zeroed)
            }
            Op::BadFree { ref which, kind } => self.bad_free(which, kind),
            Op::Verify => self.model.verify_all(),
            _ => Ok(()),
        }
    }

    /// The heap's walker and statistics agree with the model.
    pub fn check(&self, opts: &Opts) -> Result<(), String> {
        // SAFETY: single-threaded use of the heap here.
        unsafe { self.heap.check() }.map_err(|e| format!("Heap::check: {e}"))?;
        self.check_block_of()?;
        let s = self.heap.stats();
        if opts.exact_stats
            && (s.live_bytes != self.model.live_bytes || s.live_objects != self.model.live_objects)
        {
            return Err(format!(
                "stats say {} bytes in {} objects live, the model {} bytes (usable sizes) in {} objects",
                s.live_bytes, s.live_objects, self.model.live_bytes, self.model.live_objects
            ));
        }
        if s.peak_live_bytes < s.live_bytes {
            return Err(format!("peak_live_bytes {} < live_bytes {}", s.peak_live_bytes, s.live_bytes));
        }
        if s.committed_bytes < s.live_bytes || s.reserved_bytes < s.committed_bytes {
            return Err(format!(
                "expected live {} <= committed {} <= reserved {}",
                s.live_bytes, s.committed_bytes, s.reserved_bytes
            ));
        }
        Ok(())
    }

    /// Frees every live block (checking each) in an order that mixes addresses.
    pub fn free_all(&mut self) -> Result<(), String> {
        let mut k = 0usize;
        while !self.model.blocks.is_empty() {
            k = k.wrapping_mul(31).wrapping_add(7);
            let i = k % self.model.blocks.len();
            self.dealloc(i, [Api::Global, Api::Allocator, Api::Address][k % 3])?;
        }
        Ok(())
    }
}

/// Runs `ops` on a fresh heap over source kind `K`, checking everything after every step,
/// then frees everything and trims.
pub fn run_ops<S: Strategy + ConstInit, K: SourceKind>(ops: &[Op], opts: &Opts) -> Result<(), String> {
    let env = K::env::<S>();
    run_ops_on::<S, K::P>(&env.heap, ops, opts, K::BACKING, K::check_source::<S>)
}

/// [`run_ops`] on a given heap.
pub fn run_ops_on<S: Strategy, P: PageSource>(
    heap: &Heap<S, P>,
    ops: &[Op],
    opts: &Opts,
    backing: Backing,
    check_source: fn(&Heap<S, P>, &Opts) -> Result<(), String>,
) -> Result<(), String> {
    let mut r = Runner::new(heap, backing);
    for (step, op) in ops.iter().enumerate() {
        let at = |e: String| format!("step {step} ({op:?}): {e}");
        r.apply(op).map_err(at)?;
        r.check(opts).map_err(at)?;
        check_source(heap, opts).map_err(at)?;
    }
    r.model.verify_all().map_err(|e| format!("at the end: {e}"))?;
    r.free_all().map_err(|e| format!("freeing everything: {e}"))?;
    r.check(opts).map_err(|e| format!("after freeing everything: {e}"))?;
    heap.trim();
    r.check(opts).map_err(|e| format!("after trim: {e}"))?;
    check_source(heap, opts).map_err(|e| format!("after trim: {e}"))?;
    Ok(())
}

/// A seed for a run that was given none: random, so that every run explores new sequences,
/// and printed, so that any of them can be replayed.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// The `random_ops` property for strategy `S` over source kind `K`: [`config`]'s cases of
/// [`ops`], each run by [`run_ops`]. `source_file` (the test's `file!()`) names the file
/// failures persist in, `name` the test. The seed (`PROPTEST_RNG_SEED`, or a fresh one) is
/// printed on stderr and in the failure message, with the minimal failing sequence.
pub fn random_ops<S: Strategy + ConstInit, K: SourceKind>(
    opts: &Opts,
    source_file: &'static str,
    name: &'static str,
) {
    use proptest::test_runner::{RngSeed, TestCaseError, TestError, TestRunner};
    let mut config = config();
    config.source_file = Some(source_file);
    config.test_name = Some(name);
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => fresh_seed(),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    let cases = config.cases;
    let operations = core::cell::Cell::new(0usize);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops(), |ops| {
        operations.set(operations.get() + ops.len());
        run_ops::<S, K>(&ops, opts).map_err(TestCaseError::fail)
    });
    eprintln!("random_ops {name}: {cases} cases, {} operations, PROPTEST_RNG_SEED={seed}", operations.get());
    let rerun = format!(
        "rerun with PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases} (the failing sequence is also \
         persisted next to {source_file}, as {})",
        source_file.replace(".rs", ".proptest-regressions")
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => {
            panic!("{name} failed: {why}\nminimal failing sequence ({} ops): {ops:#?}\n{rerun}", ops.len())
        }
        Err(TestError::Abort(why)) => panic!("{name} aborted: {why}\n{rerun}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness for the non-proptest tests.

/// The project's one generator (the workloads crate's), with the harness's size and
/// alignment mixes on top.
pub use workloads::Rng;

/// The harness's draws from an [`Rng`].
pub trait Draw {
    /// A size biased toward small, up to `max`.
    fn size(&mut self, max: usize) -> usize;
    /// An alignment biased toward small, up to `max`.
    fn align(&mut self, max: usize) -> usize;
}

impl Draw for Rng {
    fn size(&mut self, max: usize) -> usize {
        let r = match self.below(16) {
            0..=9 => 1 + self.below(64),
            10..=13 => 65 + self.below(960),
            14 => 1025 + self.below(15 << 10),
            _ => 1 + self.below(max),
        };
        r.min(max)
    }
    fn align(&mut self, max: usize) -> usize {
        let shift = match self.below(16) {
            0..=11 => self.below(5),
            12..=14 => 5 + self.below(8),
            _ => self.below(21),
        };
        (1usize << shift).min(max)
    }
}

// ---------------------------------------------------------------------------------------------
// Threads.

/// Threads of the `threads` test, and steps each.
pub const THREADS: usize = 64;
/// Steps per thread of the `threads` test.
pub const THREAD_STEPS: usize = 400;
/// Live blocks a thread of the `threads` test keeps at most (it frees when it has this many).
pub const THREAD_LIVE_MAX: usize = 16;

/// [`THREADS`] threads allocate, realloc and free, and free each other's blocks; every byte
/// checked. Sizes up to 1 MiB (256 KiB over a `Fixed` region), alignments up to 1 MiB.
pub fn threads<S: Strategy + ConstInit, K: SourceKind>(opts: &Opts) {
    let env = K::env::<S>();
    let max_size = if matches!(K::BACKING, Backing::Region(_)) { 256 << 10 } else { 1 << 20 };
    let shape = ThreadShape { threads: THREADS, steps: THREAD_STEPS, max_size, max_align: 1 << 20 };
    threads_on(&env.heap, shape, K::BACKING, opts, K::check_source::<S>);
}

/// The shape of a threads test.
#[derive(Copy, Clone, Debug)]
pub struct ThreadShape {
    /// Threads.
    pub threads: usize,
    /// Steps per thread.
    pub steps: usize,
    /// Largest size.
    pub max_size: usize,
    /// Largest alignment.
    pub max_align: usize,
}

/// [`threads`] on a given heap. Every thread is joined (`pthread_join`: its thread-local
/// destructors have run, so a strategy's thread cache has been flushed) before the heap is
/// checked; a null is judged by `backing` (with the heap's live bytes at that moment).
pub fn threads_on<S: Strategy, P: PageSource>(
    heap: &Heap<S, P>,
    shape: ThreadShape,
    backing: Backing,
    opts: &Opts,
    check_source: fn(&Heap<S, P>, &Opts) -> Result<(), String>,
) {
    let pool: Mutex<Vec<Block>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..shape.threads)
            .map(|t| {
                let pool = &pool;
                s.spawn(move || thread_worker(heap, pool, t as u64, shape, backing))
            })
            .collect();
        // `scope` alone returns when the closures have returned, which can be before the
        // threads' TLS destructors have run; `join` waits for the threads to be gone.
        for (t, w) in workers.into_iter().enumerate() {
            if let Err(e) = w.join() {
                let why =
                    e.downcast_ref::<String>().map(String::as_str).or(e.downcast_ref::<&str>().copied());
                panic!("thread {t} panicked: {}", why.unwrap_or("(no message)"));
            }
        }
    });
    // Free what is left in the pool, checking it.
    for b in pool.into_inner().unwrap() {
        // SAFETY: a live block of `heap`.
        unsafe {
            verify(b.ptr.as_ptr(), b.layout.size(), b.seed, "pooled block").unwrap();
            heap.dealloc(b.ptr.as_ptr(), b.layout);
        }
    }
    // SAFETY: all threads have finished.
    unsafe { heap.check() }.unwrap_or_else(|e| panic!("after threads: Heap::check: {e}"));
    let s = heap.stats();
    if opts.exact_stats {
        assert_eq!((s.live_bytes, s.live_objects), (0, 0), "after all threads freed everything: {s:?}");
    }
    assert!(s.peak_live_bytes > 0, "the heap was not used: {s:?}");
    heap.trim();
    check_source(heap, opts).unwrap();
}

/// Frees a live block by address from a worker thread, after checking that `block_of` knows
/// it (a zero-size block's dangling pointer must be refused instead).
fn free_by_address<S: Strategy, P: PageSource>(heap: &Heap<S, P>, b: Block, t: u64) {
    let info = heap.block_of(b.ptr.as_ptr());
    if b.layout.size() == 0 {
        assert!(info.is_none(), "thread {t}: block_of of a zero-size block's dangling pointer: {info:?}");
        // SAFETY: no block; the heap must refuse it.
        assert!(unsafe { heap.free(b.ptr) }.is_err(), "thread {t}: freed a zero-size block's pointer");
        return;
    }
    let info = info.unwrap_or_else(|| panic!("thread {t}: block_of({:p}) of a live block is None", b.ptr));
    assert!(
        info.usable >= b.layout.size() && info.align >= b.layout.align(),
        "thread {t}: {info:?} for {:?}",
        b.layout
    );
    // SAFETY: a live block of this heap, given up.
    let r = unsafe { heap.free(b.ptr) };
    assert_eq!(r, Ok(info.usable), "thread {t}: free by address of live block {:p}", b.ptr);
}

/// A null from the heap in a thread: legal or a panic, by `backing`.
fn thread_refused<S: Strategy, P: PageSource>(
    heap: &Heap<S, P>,
    backing: Backing,
    t: u64,
    what: &str,
    layout: Layout,
) {
    let e = backing.expect(layout.size(), layout.align(), heap.stats().live_bytes);
    assert!(e != Expect::Grant, "thread {t}: {what} {layout:?} refused, though {backing:?} can back it");
}

fn thread_worker<S: Strategy, P: PageSource>(
    heap: &Heap<S, P>,
    pool: &Mutex<Vec<Block>>,
    t: u64,
    shape: ThreadShape,
    backing: Backing,
) {
    let mut rng = Rng::seeded(t + 1);
    let mut mine: Vec<Block> = Vec::new();
    for step in 0..shape.steps {
        let roll = match rng.below(10) {
            0..=3 if mine.len() >= THREAD_LIVE_MAX => 4,
            roll => roll,
        };
        match roll {
            0..=3 => {
                let size = rng.size(shape.max_size);
                let layout = Layout::from_size_align(size, rng.align(shape.max_align)).unwrap();
                let zeroed = rng.below(4) == 0;
                // SAFETY: Heap accepts every layout.
                let p = unsafe { if zeroed { heap.alloc_zeroed(layout) } else { heap.alloc(layout) } };
                let Some(p) = NonNull::new(p) else {
                    thread_refused(heap, backing, t, "alloc", layout);
                    continue;
                };
                assert!((p.as_ptr() as usize).is_multiple_of(layout.align()), "thread {t}: {p:p} misaligned");
                if zeroed {
                    // SAFETY: a fresh live block of `size` bytes.
                    unsafe { verify_zero(p.as_ptr(), size, "zeroed block in a thread").unwrap() };
                }
                let seed = (t << 48) ^ step as u64 ^ 0x5555;
                // SAFETY: a fresh live block of `size` bytes.
                unsafe { fill(p.as_ptr(), layout.size(), seed) };
                mine.push(Block { ptr: p, layout, seed, usable: layout.size() });
            }
            4..=5 if !mine.is_empty() => {
                let b = mine.swap_remove(rng.below(mine.len()));
                // SAFETY: a live block of this heap.
                unsafe { verify(b.ptr.as_ptr(), b.layout.size(), b.seed, "own block").unwrap() };
                if roll == 4 {
                    // SAFETY: a live block of this heap with its layout, given up.
                    unsafe { heap.dealloc(b.ptr.as_ptr(), b.layout) };
                } else {
                    free_by_address(heap, b, t);
                }
            }
            6 if !mine.is_empty() => {
                let i = rng.below(mine.len());
                let b = mine[i];
                let size = rng.size(shape.max_size);
                // SAFETY: a live block of this heap; `size > 0` and valid for its alignment.
                let p = unsafe { heap.realloc(b.ptr.as_ptr(), b.layout, size) };
                let Some(p) = NonNull::new(p) else {
                    let new = Layout::from_size_align(size, b.layout.align()).unwrap();
                    thread_refused(heap, backing, t, "realloc to", new);
                    // SAFETY: a refused realloc leaves the block live and intact.
                    unsafe {
                        verify(b.ptr.as_ptr(), b.layout.size(), b.seed, "block after failed realloc").unwrap()
                    };
                    continue;
                };
                let kept = size.min(b.layout.size());
                // SAFETY: the new block is live for `size >= kept` bytes.
                unsafe {
                    verify(p.as_ptr(), kept, b.seed, "realloc'd block").unwrap();
                    fill(p.as_ptr(), size, b.seed);
                }
                mine[i] =
                    Block { ptr: p, layout: Layout::from_size_align(size, b.layout.align()).unwrap(), ..b };
            }
            7 if !mine.is_empty() => {
                // Hand a block to whichever thread takes it.
                pool.lock().unwrap().push(mine.swap_remove(rng.below(mine.len())));
            }
            8..=9 => {
                // Free a block another thread (probably) allocated.
                let b = {
                    let mut p = pool.lock().unwrap();
                    if p.is_empty() {
                        continue;
                    }
                    let i = rng.below(p.len());
                    p.swap_remove(i)
                };
                // SAFETY: a live block of this heap, now owned by this thread.
                unsafe {
                    verify(b.ptr.as_ptr(), b.layout.size(), b.seed, "block from another thread").unwrap()
                };
                if rng.below(2) == 0 {
                    // SAFETY: a live block of this heap with its layout, given up.
                    unsafe { heap.dealloc(b.ptr.as_ptr(), b.layout) };
                } else {
                    free_by_address(heap, b, t);
                }
            }
            _ => {}
        }
    }
    for b in mine {
        // SAFETY: a live block of this heap.
        unsafe {
            verify(b.ptr.as_ptr(), b.layout.size(), b.seed, "own block at exit").unwrap();
            heap.dealloc(b.ptr.as_ptr(), b.layout);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Collections through allocator-api2.

/// `Vec`, `Box` and a growing vector of vectors over the heap, with checked contents.
pub fn collections<S: Strategy + ConstInit, K: SourceKind>(opts: &Opts) {
    let env = K::env::<S>();
    let heap = &env.heap;
    {
        let mut v: allocator_api2::vec::Vec<u64, _> = allocator_api2::vec::Vec::new_in(heap);
        for i in 0..200_000u64 {
            v.push(i.wrapping_mul(0x9E37_79B9));
        }
        let mut rows: allocator_api2::vec::Vec<allocator_api2::vec::Vec<u8, _>, _> =
            allocator_api2::vec::Vec::new_in(heap);
        for r in 0..500usize {
            let mut row = allocator_api2::vec::Vec::with_capacity_in(r % 97, heap);
            row.extend((0..r * 3).map(|i| (i ^ r) as u8));
            rows.push(row);
        }
        rows.retain(|r| r.len() % 2 == 0);
        let b = allocator_api2::boxed::Box::new_in([7u8; 3000], heap);
        let sum: u64 = v.iter().copied().fold(0u64, u64::wrapping_add);
        let want: u64 = (0..200_000u64).map(|i| i.wrapping_mul(0x9E37_79B9)).fold(0, u64::wrapping_add);
        assert_eq!(sum, want);
        for row in rows.iter() {
            let r = row.len() / 3;
            assert!(row.iter().enumerate().all(|(i, &x)| x == (i ^ r) as u8), "row {r} corrupted");
        }
        assert!(b.iter().all(|&x| x == 7));
        assert!(heap.stats().live_objects > 0);
        // SAFETY: single-threaded.
        unsafe { heap.check() }.unwrap();
    }
    // SAFETY: single-threaded.
    unsafe { heap.check() }.unwrap();
    if opts.exact_stats {
        assert_eq!(heap.stats().live_objects, 0);
    }
    heap.trim();
    K::check_source(heap, opts).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Exhaustion of a Fixed source.

/// Fills a small `Fixed` region until it runs out; the heap stays consistent and freed
/// memory is reused.
pub fn exhaustion<S: Strategy + ConstInit>(opts: &Opts) {
    const REGION_BYTES: usize = 8 << 20;
    let region = OwnedRegion::new(REGION_BYTES);
    let heap: Heap<S, Fixed> = Heap::with_source(region.source());
    let mut r = Runner::new(&heap, Backing::Region(REGION_BYTES));
    let mut rng = Rng::seeded(42);
    let fill_up = |r: &mut Runner<S, Fixed>, rng: &mut Rng| -> usize {
        let refused_before = r.refused;
        for _ in 0..100_000 {
            let (size, align) = (rng.size(256 << 10), rng.align(1 << 16));
            r.alloc(size, align, rng.below(4) == 0, Api::Global).unwrap();
            if r.refused > refused_before {
                break;
            }
        }
        assert!(r.refused > refused_before, "an {REGION_BYTES}-byte Fixed region never ran out");
        r.check(opts).unwrap_or_else(|e| panic!("after exhaustion: {e}"));
        fixed_consistent(r.heap.source()).unwrap();
        r.model.live_bytes
    };
    let first = fill_up(&mut r, &mut rng);
    r.model.verify_all().unwrap();
    // Once full, a freed block's layout can be allocated again.
    let big = (0..r.model.blocks.len()).max_by_key(|&i| r.model.blocks[i].layout.size()).unwrap();
    let layout = r.model.blocks[big].layout;
    r.dealloc(big, Api::Global).unwrap();
    r.check(opts).unwrap();
    assert!(
        r.alloc(layout.size(), layout.align(), false, Api::Global).unwrap(),
        "a freed {layout:?} block could not be allocated again in a full heap"
    );
    // Free every other block, fill again.
    let mut i = 0;
    while i < r.model.blocks.len() {
        r.dealloc(i, Api::Global).unwrap();
        i += 1;
    }
    r.check(opts).unwrap();
    r.model.verify_all().unwrap();
    fill_up(&mut r, &mut rng);
    r.model.verify_all().unwrap();
    // Free everything; the region is reusable as a whole.
    r.free_all().unwrap();
    r.check(opts).unwrap();
    heap.trim();
    r.check(opts).unwrap();
    let second = fill_up(&mut r, &mut rng);
    assert!(
        second * 2 >= first,
        "after freeing everything only {second} bytes fit where {first} fitted before"
    );
    r.free_all().unwrap();
    r.check(opts).unwrap();
    fixed_consistent(heap.source()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Injected page-source failures.

/// Heap over a source that fails on request, checked by `Tracked`.
pub type FailingHeap<S> = Heap<S, Failing<Tracked<Mmap>>>;

/// Page-source calls fail on request: allocations return null, the heap stays consistent,
/// and after freeing everything and trimming, what the heap holds does not grow from cycle to
/// cycle and the source agrees with the strategy's statistics.
pub fn injected_failure<S: Strategy + ConstInit>(opts: &Opts) {
    let heap: FailingHeap<S> = Heap::with_source(Failing::new(Tracked::new(Mmap)));
    let tracked = heap.source().inner();
    let mut held_after_cycle = Vec::new();
    let mut rng = Rng::seeded(7);
    for cycle in 0..6usize {
        let mut r = Runner::new(&heap, Backing::Failing);
        for k in 0..300usize {
            if k % 50 == 25 {
                // A request larger than anything this heap has seen must reach the source,
                // and the source refuses it.
                heap.source().fail_after_calls(0);
                let huge = (32 << 20) + (cycle * 10 + k / 50) * (1 << 20);
                let before = r.refused;
                r.alloc(huge, 8, false, Api::Global).unwrap();
                assert_eq!(
                    r.refused,
                    before + 1,
                    "an allocation of {huge} bytes succeeded with a refusing source"
                );
                r.check(opts).unwrap_or_else(|e| panic!("after refused huge alloc: {e}"));
                heap.source().heal();
            } else if k % 10 == 5 {
                // Arm a failure a few calls ahead; small and medium requests may or may not
                // need the source.
                heap.source().fail_after_calls(rng.below(3));
            } else if k % 10 == 9 {
                heap.source().heal();
            }
            if rng.below(3) == 0 && !r.model.blocks.is_empty() {
                let i = rng.below(r.model.blocks.len());
                r.dealloc(i, Api::Global).unwrap();
            } else {
                let size = if rng.below(8) == 0 { 64 << 10 | rng.below(1 << 20) } else { rng.size(16 << 10) };
                r.alloc(size, rng.align(1 << 16), rng.below(4) == 0, Api::Global).unwrap();
            }
            r.check(opts).unwrap_or_else(|e| panic!("cycle {cycle} step {k}: {e}"));
            tracked_agrees(tracked, &heap, opts).unwrap_or_else(|e| panic!("cycle {cycle} step {k}: {e}"));
        }
        heap.source().heal();
        // A set byte budget: the heap runs out, consistently.
        heap.source().set_budget(tracked.counts().owned() + (4 << 20));
        let before = r.refused;
        for _ in 0..64 {
            r.alloc(1 << 20, 64, false, Api::Global).unwrap();
            if r.refused > before {
                break;
            }
        }
        assert!(r.refused > before, "a 4 MiB budget never ran out");
        r.check(opts).unwrap();
        heap.source().heal();
        r.model.verify_all().unwrap();
        r.free_all().unwrap();
        r.check(opts).unwrap();
        heap.trim();
        r.check(opts).unwrap();
        tracked_agrees(tracked, &heap, opts).unwrap_or_else(|e| panic!("cycle {cycle} after trim: {e}"));
        let c = tracked.counts();
        held_after_cycle.push((c.ready, c.owned()));
        assert!(r.refused > 0, "cycle {cycle}: no failure was injected");
    }
    let first = held_after_cycle[1];
    for (cycle, held) in held_after_cycle.iter().enumerate().skip(2) {
        assert!(
            held.0 <= first.0 + opts.kept_metadata_bytes && held.1 <= first.1,
            "memory held after free+trim grows across failure cycles: (ready, owned) = \
             {held_after_cycle:?} (cycle {cycle})"
        );
    }
    let s = heap.stats();
    assert!(s.source.failed > 0 && s.source.total() > 0, "{s:?}");
}

/// With `Tracked`: after a mixed workload frees everything and trims, the source's Ready and
/// owned bytes are what the strategy says it holds, and a second identical run holds no more.
pub fn freed_and_trimmed<S: Strategy + ConstInit>(opts: &Opts) {
    let heap: Heap<S, Tracked<Mmap>> = Heap::with_source(Tracked::new(Mmap));
    let mut held = Vec::new();
    for round in 0..3 {
        let mut r = Runner::new(&heap, Backing::Machine);
        let mut rng = Rng::seeded(99);
        for _ in 0..2000 {
            if rng.below(3) == 0 && !r.model.blocks.is_empty() {
                let i = rng.below(r.model.blocks.len());
                r.dealloc(i, Api::Global).unwrap();
            } else {
                r.alloc(rng.size(256 << 10), rng.align(1 << 12), false, Api::Global).unwrap();
            }
        }
        r.check(opts).unwrap();
        r.free_all().unwrap();
        heap.trim();
        r.check(opts).unwrap();
        tracked_agrees(heap.source(), &heap, opts).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let c = heap.source().counts();
        held.push(c.ready);
        let s = heap.stats();
        assert_eq!(
            s.committed_bytes, c.ready,
            "round {round}: committed bytes vs Tracked Ready: {s:?} {c:?}"
        );
    }
    assert!(held[2] <= held[1], "held memory grows from round to round: {held:?}");
}

// ---------------------------------------------------------------------------------------------
// The macro.

/// Instantiates the suite for strategy `$s` over source kind `mmap`, `fixed` or `tracked`
/// (optionally with [`Opts`]), as a module `$name`.
macro_rules! strategy_suite {
    ($name:ident, $s:ty, $kind:ident) => {
        strategy_suite!($name, $s, $kind, $crate::harness::Opts::DEFAULT);
    };
    ($name:ident, $s:ty, $kind:ident, $opts:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            type K = $crate::harness::kinds::$kind;
            const OPTS: $crate::harness::Opts = $opts;

            #[test]
            fn random_ops() {
                $crate::harness::random_ops::<$s, K>(&OPTS, file!(), concat!(module_path!(), "::random_ops"));
            }

            #[test]
            fn threads() {
                $crate::harness::threads::<$s, K>(&OPTS);
            }

            #[test]
            fn collections() {
                $crate::harness::collections::<$s, K>(&OPTS);
            }

            strategy_suite!(@extra $kind, $s);
        }
    };
    (@extra mmap, $s:ty) => {};
    (@extra fixed, $s:ty) => {
        #[test]
        fn exhaustion() {
            $crate::harness::exhaustion::<$s>(&OPTS);
        }
    };
    (@extra tracked, $s:ty) => {
        #[test]
        fn injected_failure() {
            $crate::harness::injected_failure::<$s>(&OPTS);
        }

        #[test]
        fn freed_and_trimmed() {
            $crate::harness::freed_and_trimmed::<$s>(&OPTS);
        }
    };
}

/// The suite over all three sources, as modules `mmap`, `fixed` and `tracked`.
macro_rules! strategy_suites {
    ($s:ty) => {
        strategy_suites!($s, $crate::harness::Opts::DEFAULT);
    };
    ($s:ty, $opts:expr) => {
        strategy_suite!(mmap, $s, mmap, $opts);
        strategy_suite!(fixed, $s, fixed, $opts);
        strategy_suite!(tracked, $s, tracked, $opts);
    };
}
