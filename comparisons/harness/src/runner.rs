//! The child side: `alloc_NN run WORKLOAD ...` runs one workload under the bin's global
//! allocator and prints one `RESULT {json}` line, or `FAILED: why` with exit code 2.
//!
//! Protocol (what the driver reads):
//! - `--describe`: prints `{"name":..,"kind":..}`; kind `spare` means a runner slot past the
//!   end of the table, which runs nothing.
//! - `run WORKLOAD --scale X --threads N --seed S [--trace FILE]`: exit 0 and a RESULT line
//!   on success; exit 2 on a failed check; a panic or a crash is a non-zero exit or a signal.

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

/// The main of every runner bin; `kind` is the table's kind, or `spare`.
pub fn main(name: &str, kind: &str) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--describe") => println!("{}", serde_json::json!({ "name": name, "kind": kind })),
        Some("run") if kind == "spare" => {
            fail(&format!("{name} is a spare runner slot (no row of the allocator table)"), EXIT_ABSENT)
        }
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
        _ => fail("usage: --describe | run WORKLOAD [--scale X] [--threads N] [--seed S] [--trace FILE]", 64),
    }
}
