//! The child side: `alloc_NN run WORKLOAD ...` runs one workload under the bin's global
//! allocator and prints one `RESULT {json}` line, or `FAILED: why` with exit code 2.
//!
//! Protocol (what the driver reads):
//! - `--describe`: prints `{"name":..,"kind":..}`; kind `spare` means a runner slot past the
//!   end of the table, which runs nothing.
//! - `run WORKLOAD --scale X --threads N --seed S [--trace FILE]`: exit 0 and a RESULT line
//!   on success; exit 2 on a failed check; a panic or a crash is a non-zero exit or a signal.
//! - `replay FILE [--serial | --recorded] [--partial] [--ends-only] [--series OUT]`: replays the flat ops file the
//!   driver writes (read in place from a mapping, so nothing is decoded through the
//!   allocator under test), or a program trace (format v2, decoded here), with its threads
//!   (`--recorded`: each call also waits for its turn in the recorded global order; `--serial`:
//!   every call on one thread), and prints a RESULT line whose metrics
//!   are `replay_s`, `peak_resident_bytes`, `peak_rss_bytes`, `threads`, `touched_bytes` (0 with
//!   `--ends-only`: the stamps alone, no whole-block traffic), and for a stratalloc heap
//!   `peak_committed_bytes` and `page_source_calls`; `--series` writes the memory series as
//!   JSON (`[[op, live, resident, committed], ...]`). A bad trace file is exit 65.

use workloads::Ctx;

/// Exit code of a failed check.
pub const EXIT_FAILED: i32 = 2;
/// Exit code of a spare slot asked to run.
pub const EXIT_ABSENT: i32 = 3;

fn fail(msg: &str, code: i32) -> ! {
    eprintln!("FAILED: {msg}");
    std::process::exit(code)
}

fn parse_run(args: &[String]) -> Result<(&'static workloads::Workload, Ctx), String> {
    let name = args.first().ok_or("missing workload name")?;
    let w = workloads::find(name).ok_or_else(|| format!("unknown workload {name}"))?;
    let mut ctx = Ctx { scale: 1.0, threads: 2, seed: 42, trace: None };
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scale" => ctx.scale = v.parse().map_err(|_| "bad --scale")?,
            "--threads" => ctx.threads = v.parse().map_err(|_| "bad --threads")?,
            "--seed" => ctx.seed = v.parse().map_err(|_| "bad --seed")?,
            "--trace" => ctx.trace = Some(v.into()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((w, ctx))
}

/// A file mapped read-only (page-aligned, so the flat ops can be read in place).
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn open(path: &str) -> Result<Mapped, String> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len() as usize;
        if len == 0 {
            return Ok(Mapped { ptr: std::ptr::null_mut(), len: 0 });
        }
        // SAFETY: a private read-only mapping of an open file at an address of the kernel's
        // choice; it touches no existing memory.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives (unmapped on
        // drop only); a file changed underneath is caught by the ops file's checksum.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping made in `open`, unmapped once.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

/// Exit code of an unreadable trace.
pub const EXIT_BAD_TRACE: i32 = 65;

/// `replay FILE [--serial | --recorded] [--partial] [--ends-only] [--series OUT]` (see the module header).
fn replay(args: &[String], probe: fn() -> Option<[u64; 2]>) {
    use workloads::{program_replay, program_trace};
    let Some(path) = args.first() else { fail("replay needs a trace file", 64) };
    let (mut order, mut partial, mut whole, mut series) = (program_replay::Order::Threads, false, true, None);
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--serial" => order = program_replay::Order::Serial,
            "--recorded" => order = program_replay::Order::Recorded,
            "--partial" => partial = true,
            "--ends-only" => whole = false,
            "--series" => {
                series = Some(it.next().unwrap_or_else(|| fail("--series needs a file", 64)).clone())
            }
            _ => fail(&format!("unknown flag {flag}"), 64),
        }
    }
    let map =
        Mapped::open(path).unwrap_or_else(|e| fail(&format!("cannot read {path}: {e}"), EXIT_BAD_TRACE));
    let owned;
    let plan = if map.bytes().starts_with(workloads::trace_format::MAGIC) {
        // A trace file (run by hand): decoded here, through the allocator under test.
        let trace = program_trace::decode(map.bytes(), partial)
            .unwrap_or_else(|e| fail(&format!("{path}: {e}"), EXIT_BAD_TRACE));
        owned = (program_replay::flat_ops(&trace), trace.objects, trace.threads);
        program_replay::Plan::new(&owned.0, owned.1, owned.2)
    } else {
        // The driver's flat ops file, read in place: nothing allocated before the replay.
        program_replay::Plan::from_bytes(map.bytes())
            .unwrap_or_else(|e| fail(&format!("{path}: {e}"), EXIT_BAD_TRACE))
    };
    let r = program_replay::replay(&plan, program_replay::Options { order, whole }, probe)
        .unwrap_or_else(|e| fail(&format!("replay: {e}"), EXIT_FAILED));
    if let Some(out) = series {
        let points: Vec<[u64; 4]> =
            r.samples.iter().map(|s| [s.op, s.live, s.resident, s.committed]).collect();
        if let Err(e) = std::fs::write(&out, serde_json::json!(points).to_string()) {
            fail(&format!("cannot write {out}: {e}"), EXIT_FAILED);
        }
    }
    let line = serde_json::json!({
        "checksum": format!("{:016x}", r.checksum),
        "metrics": {
            "replay_s": r.seconds,
            "peak_resident_bytes": r.peak_resident as f64,
            "threads": r.threads as f64,
            "touched_bytes": r.touched_bytes as f64,
            // VmHWM of this program (wait4's ru_maxrss also counts the forked driver before exec).
            "peak_rss_bytes": workloads::check::peak_rss_bytes() as f64,
        },
    });
    let mut line = line;
    if let Some([committed, calls]) = r.heap {
        line["metrics"]["peak_committed_bytes"] = serde_json::json!(committed as f64);
        line["metrics"]["page_source_calls"] = serde_json::json!(calls as f64);
    }
    println!("RESULT {line}");
}

/// The main of every runner bin; `kind` is the table's kind, or `spare`.
pub fn main(name: &str, kind: &str) {
    main_with_probe(name, kind, || None)
}

/// [`main`], with the allocator's committed bytes and page-source calls for `replay`
/// (`None`: not a stratalloc heap).
pub fn main_with_probe(name: &str, kind: &str, probe: fn() -> Option<[u64; 2]>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--describe") => println!("{}", serde_json::json!({ "name": name, "kind": kind })),
        Some("run") if kind == "spare" => {
            fail(&format!("{name} is a spare runner slot (no row of the allocator table)"), EXIT_ABSENT)
        }
        Some("replay") if kind == "spare" => {
            fail(&format!("{name} is a spare runner slot (no row of the allocator table)"), EXIT_ABSENT)
        }
        Some("replay") => replay(&args[1..], probe),
        Some("run") => {
            let (w, ctx) = parse_run(&args[1..]).unwrap_or_else(|e| fail(&e, EXIT_FAILED));
            match (w.run)(&ctx) {
                Ok(out) => {
                    let metrics: serde_json::Map<String, serde_json::Value> =
                        out.metrics.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect();
                    let line = serde_json::json!({
                        "checksum": format!("{:016x}", out.checksum),
                        "metrics": metrics,
                    });
                    println!("RESULT {line}");
                }
                Err(e) => fail(&format!("{}: {e}", w.name), EXIT_FAILED),
            }
        }
        _ => fail(
            "usage: --describe | run WORKLOAD [--scale X] [--threads N] [--seed S] [--trace FILE] \
             | replay FILE [--serial | --recorded] [--partial] [--ends-only] [--series OUT]",
            64,
        ),
    }
}
