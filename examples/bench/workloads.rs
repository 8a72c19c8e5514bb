// The workloads of the quick allocator comparison, included by each `bench_*` example, which
// sets its own `#[global_allocator]`.
//
// Run: `cargo run --release --example bench_tiered` (and `bench_mimalloc`, `bench_system`).
// With no argument, the example runs each workload in a child process of its own (itself,
// with the workload's name as argument), so that the peak RSS each reports is that
// workload's alone (the kernel's high-water mark is per process). With workload names as
// arguments it runs those in this process, one after the other (the peak RSS printed is then
// the process's peak so far). One line per workload:
//
//     <allocator> <workload> <wall seconds> s <CPU seconds> s-cpu <peak RSS> MiB
//
// Seconds are those of the timed part (not the setup, e.g. not the generation of the JSON
// document); CPU seconds are user + system time of all the process's threads over it, the
// better figure on a shared machine. The peak RSS is the process's (setup included).
//
// `python3 examples/bench/compare.py` builds the three examples and runs them alternately,
// several rounds, and prints the least time, the peak RSS and the ratios to mimalloc.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Mixed sizes: mostly small, some medium, a few up to 32 KiB.
    fn size(&mut self) -> usize {
        match self.next() % 100 {
            0..=59 => 8 + (self.next() % 120) as usize,
            60..=94 => 128 + (self.next() % 900) as usize,
            _ => 1024 + (self.next() % 31_000) as usize,
        }
    }
}

/// A block whose first and last bytes are written (the rest stays uninitialised, as a
/// program's fresh buffer would be before it fills it).
type Block = Box<[MaybeUninit<u8>]>;

fn block(size: usize, tag: u8) -> Block {
    let mut b = Box::<[u8]>::new_uninit_slice(size);
    b[0].write(tag);
    b[size - 1].write(tag);
    b
}

fn ends(b: &Block) -> (u8, u8) {
    // SAFETY: `block` wrote both ends.
    unsafe { (b[0].assume_init(), b[b.len() - 1].assume_init()) }
}

/// Wall-clock and CPU seconds (user + system, all threads of the process) of a timed part.
struct Times {
    wall: f64,
    cpu: f64,
}

/// Starts timing: wall clock and the process's CPU time.
struct Clock {
    wall: Instant,
    cpu: Duration,
}

impl Clock {
    fn start() -> Clock {
        Clock { wall: Instant::now(), cpu: process_cpu() }
    }

    fn stop(&self) -> Times {
        Times { wall: self.wall.elapsed().as_secs_f64(), cpu: (process_cpu() - self.cpu).as_secs_f64() }
    }
}

/// CPU time (user + system) of the whole process so far, exited threads included.
fn process_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(r, 0, "getrusage");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Iterations scaled by `BENCH_SCALE` (percent, default 100), e.g. for callgrind runs.
fn scaled(n: u32) -> u32 {
    let pct: u64 = std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    (n as u64 * pct / 100).max(1) as u32
}

/// One thread, 10,000 live objects of mixed sizes, 4M replacements.
fn churn() -> Times {
    let mut rng = Rng(42);
    let mut slots: Vec<Block> = (0..10_000).map(|i| block(rng.size(), i as u8)).collect();
    let t = Clock::start();
    for i in 0..scaled(4_000_000) {
        let k = (rng.next() % slots.len() as u64) as usize;
        let old = std::mem::replace(&mut slots[k], block(rng.size(), i as u8));
        let (a, b) = ends(&old);
        assert_eq!(a, b);
    }
    let s = t.stop();
    drop(slots);
    s
}

/// Two threads replace objects in one shared table of slots (larson-like): about half of the
/// frees are of objects the other thread allocated.
fn larson2() -> Times {
    const SLOTS: usize = 5000;
    let slots: Vec<AtomicPtr<u8>> = (0..SLOTS).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect();
    let sizes: Vec<AtomicUsize> = (0..SLOTS).map(|_| AtomicUsize::new(0)).collect();
    let t = Clock::start();
    std::thread::scope(|s| {
        for th in 0..2u64 {
            let (slots, sizes) = (&slots, &sizes);
            s.spawn(move || {
                let mut rng = Rng(7 + th);
                for _ in 0..scaled(2_000_000) {
                    let k = (rng.next() % SLOTS as u64) as usize;
                    let size = 8 + (rng.next() % 1000) as usize;
                    let b = Box::into_raw(block(size, 1)) as *mut u8;
                    // Claim the slot (spin while the other thread holds it).
                    let old = loop {
                        let p = slots[k].swap(std::ptr::null_mut(), Ordering::Acquire);
                        if !p.is_null() || sizes[k].load(Ordering::Acquire) == 0 {
                            break p;
                        }
                        std::hint::spin_loop();
                    };
                    if !old.is_null() {
                        let n = sizes[k].load(Ordering::Acquire);
                        // SAFETY: the slot held a Block of `n` bytes.
                        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(old.cast::<MaybeUninit<u8>>(), n)) });
                    }
                    sizes[k].store(size, Ordering::Release);
                    slots[k].store(b, Ordering::Release);
                }
            });
        }
    });
    let s = t.stop();
    for (p, n) in slots.iter().zip(&sizes) {
        let p = p.load(Ordering::Relaxed);
        if !p.is_null() {
            let n = n.load(Ordering::Relaxed);
            // SAFETY: the slot holds a Block of `n` bytes.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p.cast::<MaybeUninit<u8>>(), n)) });
        }
    }
    s
}

/// One producer allocates 64 B objects in batches of 1000, one consumer frees them.
fn prodcons64() -> Times {
    let (tx, rx) = mpsc::sync_channel::<Vec<Box<[u8; 64]>>>(16);
    let t = Clock::start();
    let c = std::thread::spawn(move || {
        let mut n = 0usize;
        for v in rx {
            n += v.iter().map(|b| b[0] as usize).sum::<usize>();
        }
        n
    });
    for _ in 0..scaled(4000) {
        let v: Vec<Box<[u8; 64]>> = (0..1000).map(|i| Box::new([i as u8; 64])).collect();
        tx.send(v).unwrap();
    }
    drop(tx);
    c.join().unwrap();
    t.stop()
}

/// A JSON record: nested objects, arrays, strings, integers, floats, booleans, nulls.
fn json_record(rng: &mut Rng, i: u64) -> Value {
    const WORDS: [&str; 8] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];
    let word = |rng: &mut Rng| Value::from(WORDS[(rng.next() % 8) as usize]);
    let mut stats = Map::new();
    stats.insert("scores".into(), (0..rng.next() % 12).map(|_| Value::from(rng.next() % 1_000_000)).collect());
    // Quarters: exactly representable, so the text survives a parse and a print unchanged.
    stats.insert("mean".into(), Value::from((rng.next() % 400_000) as f64 / 4.0));
    stats.insert("note".into(), Value::from(WORDS[(i % 8) as usize].repeat(1 + (rng.next() % 4) as usize)));
    let mut r = Map::new();
    r.insert("id".into(), Value::from(i));
    r.insert("name".into(), Value::from(format!("user-{i}-{}", rng.next() % 10_000)));
    r.insert("active".into(), Value::from(rng.next().is_multiple_of(2)));
    r.insert("tags".into(), (0..rng.next() % 6).map(|_| word(rng)).collect());
    r.insert("stats".into(), Value::Object(stats));
    r.insert("parent".into(), if i.is_multiple_of(5) { Value::Null } else { Value::from(i / 5) });
    r
        .into()
}

/// serde_json: a ~25 MB document (generated once, untimed), then parsed into a `Value` and
/// serialised back, twice; each round trip must give the same text.
fn serde_json() -> Times {
    let mut rng = Rng(2024);
    let doc: Value = (0..130_000).map(|i| json_record(&mut rng, i)).collect();
    let text = serde_json::to_string(&doc).unwrap();
    drop(doc);
    assert!((24_000_000..27_000_000).contains(&text.len()), "document of {} bytes", text.len());
    let t = Clock::start();
    for _ in 0..scaled(2) {
        let v: Value = serde_json::from_str(&text).unwrap();
        let again = serde_json::to_string(&v).unwrap();
        drop(v);
        assert!(again == text, "round trip changed the document");
    }
    t.stop()
}

/// The process's peak resident set size so far, in MiB (Linux `VmHWM`; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

type Workload = (&'static str, fn() -> Times);
const WORKLOADS: [Workload; 4] =
    [("churn", churn), ("larson2", larson2), ("prodcons64", prodcons64), ("serde_json", serde_json)];

fn run(name: &str) {
    let which: Vec<String> = std::env::args().skip(1).collect();
    if which.is_empty() {
        // Each workload in a fresh process: this program again, with the workload's name.
        let me = std::env::current_exe().expect("current_exe");
        for (w, _) in WORKLOADS {
            let st = std::process::Command::new(&me).arg(w).status().expect("spawn");
            assert!(st.success(), "{name} {w}: {st}");
        }
        return;
    }
    for a in &which {
        assert!(WORKLOADS.iter().any(|(w, _)| w == a), "unknown workload {a}");
    }
    for (w, f) in WORKLOADS {
        if which.iter().any(|a| a == w) {
            let t = f();
            println!("{name} {w} {:.3} s {:.3} s-cpu {:.1} MiB", t.wall, t.cpu, peak_rss_mib());
        }
    }
}
