//! Program traces end to end (issue 20): a threaded C program recorded through the preload
//! library (`STRATALLOC_TRACE`), profiled and replayed by `comparisons replay`; a forked
//! child's trace of its own; bad files rejected with the offset named; a broken allocator
//! caught by the stamped blocks.
//!
//! Recording needs gcc and the preload library named by `STRATALLOC_PRELOAD_LIB`
//! (.ci/steps/70-harness.sh builds it and sets it); without them those tests say in one
//! line that they skip. The bad-input tests need nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use comparisons::workloads::program_trace::{self, Rec, Writer};

#[allow(dead_code)]
mod support;

fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {test} ({why})");
}

/// The preload library and a compiled trace_threads.c, or why not.
fn setup(test: &str, dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let Some(lib) = std::env::var_os("STRATALLOC_PRELOAD_LIB").map(PathBuf::from) else {
        skip(test, "set STRATALLOC_PRELOAD_LIB to a built libstratalloc_preload.so");
        return None;
    };
    if Command::new("gcc").arg("--version").output().is_err() {
        skip(test, "gcc is not installed");
        return None;
    }
    std::fs::create_dir_all(dir).expect("scratch directory");
    let exe = dir.join("trace_threads");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/trace_threads.c");
    let st =
        Command::new("gcc").args(["-O1", "-pthread", "-o"]).arg(&exe).arg(&src).status().expect("gcc runs");
    assert!(st.success(), "compiling {} failed", src.display());
    Some((lib, exe))
}

/// Runs `exe args` recording into `trace`; returns its output, checked against a run
/// without the library.
fn record(lib: &Path, exe: &Path, args: &[&str], trace: &Path) -> Output {
    let plain = Command::new(exe).args(args).output().expect("program runs");
    let traced = Command::new(exe)
        .args(args)
        .env("LD_PRELOAD", lib)
        .env("STRATALLOC_TRACE", trace)
        .output()
        .expect("program runs preloaded");
    assert!(traced.status.success(), "recording failed: {}", String::from_utf8_lossy(&traced.stderr));
    assert_eq!(plain.stdout, traced.stdout, "the recorded program printed something else");
    traced
}

fn replay(args: &[&str], trace: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_comparisons"))
        .arg("replay")
        .arg(trace)
        .args(["--no-build"])
        .args(args)
        .output()
        .expect("driver runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_threaded_program_is_recorded_profiled_and_replayed() {
    let test = "record and replay a threaded C program";
    let dir = support::out_dir("trace-threads");
    let Some((lib, exe)) = setup(test, &dir) else { return };
    let trace = dir.join("t.trace");
    record(&lib, &exe, &[], &trace);

    let t =
        program_trace::decode(&std::fs::read(&trace).expect("trace written"), false).expect("a valid trace");
    let p = program_trace::profile(&t);
    // main + 3 workers; 300 blocks made by main and freed by the workers, 3 x 4000 blocks
    // by the workers (a third of them reallocated).
    assert_eq!(t.threads, 4, "threads");
    assert!(p.cross_thread_frees >= 300, "cross-thread frees: {}", p.cross_thread_frees);
    assert!(p.allocs >= 12_300, "allocations: {}", p.allocs);
    assert!(p.reallocs >= 4_000, "reallocs: {}", p.reallocs);
    assert!(
        t.ops.iter().any(|o| matches!(o.kind, program_trace::OpKind::Alloc { align_log2: 6, .. })),
        "posix_memalign(64)"
    );
    assert!(
        t.ops.iter().any(|o| matches!(o.kind, program_trace::OpKind::Alloc { zeroed: true, .. })),
        "calloc"
    );

    let o = replay(&["--profile"], &trace);
    assert!(o.status.success(), "--profile failed: {}", text(&o.stderr));
    let out = text(&o.stdout);
    for want in ["size histogram", "lifetime histogram", "cross-thread frees", "peak live"] {
        assert!(out.contains(want), "--profile lacks {want:?}:\n{out}");
    }

    for (order, says) in [
        ("threads", "with 4 thread(s): each"),
        ("recorded", "with 4 thread(s), every call in the recorded global order"),
        ("serial", "serialised"),
    ] {
        let out_dir = dir.join(order);
        let mut args =
            vec!["--reps", "1", "--allocators", "tiered,best-fit,tcache(best-fit),mimalloc,system", "--out"];
        args.push(out_dir.to_str().expect("utf-8 path"));
        // `--serial` is the older spelling of `--order serial`.
        args.extend(if order == "serial" { vec!["--serial"] } else { vec!["--order", order] });
        let o = replay(&args, &trace);
        let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
        assert!(o.status.success(), "replay failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains("fastest: ") && stdout.contains("least memory: "), "{stdout}");
        assert!(stdout.contains(says), "{stdout}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("replay.json")).expect("replay.json"))
                .expect("JSON");
        let rows = json["allocators"].as_array().expect("allocators");
        assert_eq!(rows.len(), 5, "{json}");
        for r in rows {
            assert!(r["failure"].is_null(), "{} failed: {}", r["name"], r["failure"]);
            assert!(
                !r["series_op_live_resident_committed"].as_array().expect("series").is_empty(),
                "{}",
                r["name"]
            );
            // The stratalloc heaps report their page-source calls; the anchors cannot.
            let heap = !["mimalloc", "system"].contains(&r["name"].as_str().unwrap_or(""));
            let calls = r["page_source_calls"].as_array().expect("calls");
            assert_eq!(calls.len(), usize::from(heap), "{}: page-source calls {calls:?}", r["name"]);
        }
        assert!(std::fs::metadata(out_dir.join("replay-memory.svg")).expect("svg").len() > 0);
    }
}

/// `--preload`: the `system` runner replays under the preload library, as the recorded
/// program ran, beside glibc; whole-block touch by default, stamps only with `--touch ends`;
/// a malformed `--preload` is refused.
#[test]
fn a_trace_replays_under_the_programs_own_allocator_builds() {
    let test = "replay under the preload library";
    let dir = support::out_dir("trace-preload");
    let Some((lib, exe)) = setup(test, &dir) else { return };
    let trace = dir.join("t.trace");
    record(&lib, &exe, &[], &trace);
    let lib = lib.to_str().expect("utf-8 path");
    let tiered = format!("preload:tiered={lib},STRATALLOC_STRATEGY=tiered");
    let best = format!("preload:best-fit={lib},STRATALLOC_STRATEGY=best-fit");
    for (touch, says) in [("whole", "written whole"), ("ends", "only the stamps")] {
        let out_dir = dir.join(touch);
        let o = replay(
            &[
                "--reps",
                "1",
                "--touch",
                touch,
                "--allocators",
                "system",
                "--preload",
                &tiered,
                "--preload",
                &best,
                "--out",
                out_dir.to_str().expect("utf-8 path"),
            ],
            &trace,
        );
        let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
        assert!(o.status.success(), "replay failed:\n{stdout}\n{stderr}");
        assert!(stdout.contains(says), "--touch {touch}: {stdout}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("replay.json")).expect("replay.json"))
                .expect("JSON");
        let names: Vec<&str> = json["allocators"]
            .as_array()
            .expect("allocators")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(names, ["system", "preload:tiered", "preload:best-fit"], "{json}");
        for r in json["allocators"].as_array().expect("allocators") {
            assert!(r["failure"].is_null(), "{} failed: {}", r["name"], r["failure"]);
            assert_eq!(r["replay_s"].as_array().map(Vec::len), Some(1), "{}", r["name"]);
        }
    }
    // The row really runs under the library: told to record, the replaying runner writes a
    // trace of its own, holding at least every call it replayed.
    let own = dir.join("runner.trace");
    let rec = format!("preload:rec={lib},STRATALLOC_TRACE={}", own.to_str().expect("utf-8 path"));
    let o = replay(&["--reps", "1", "--allocators", "system", "--preload", &rec], &trace);
    assert!(o.status.success(), "replay failed: {}", text(&o.stderr));
    let replayed = program_trace::decode(&std::fs::read(&trace).expect("trace"), false).expect("trace");
    let recorded = program_trace::decode(&std::fs::read(&own).expect("the runner recorded"), false)
        .expect("the runner's trace is valid");
    assert!(recorded.ops.len() >= replayed.ops.len(), "{} < {}", recorded.ops.len(), replayed.ops.len());
    for bad in ["no-library", "x=/nonexistent/lib.so", &format!("y={lib},NOEQUALS")] {
        let o = replay(&["--reps", "1", "--allocators", "system", "--preload", bad], &trace);
        assert_eq!(o.status.code(), Some(2), "--preload {bad}: {}", text(&o.stderr));
        assert!(text(&o.stderr).contains("--preload"), "{}", text(&o.stderr));
    }
}

#[test]
fn a_corrupting_allocator_fails_the_replay() {
    let mut w = Writer::new(1, 0);
    // Shrinking sizes: the broken allocator hands out a live block again only for a request
    // no larger than it.
    let recs: Vec<Rec> =
        (0..200u64).map(|i| Rec::Alloc { seq: i, size: 600 - 2 * i, addr: 0x1000 * (i + 1) }).collect();
    w.chunk(1, &recs);
    let dir = support::out_dir("trace-broken");
    std::fs::create_dir_all(&dir).expect("scratch");
    let trace = dir.join("t.trace");
    std::fs::write(&trace, w.finish()).expect("write");
    let o = replay(
        &["--reps", "1", "--allocators", "broken-overlap,best-fit", "--out", dir.to_str().expect("utf-8")],
        &trace,
    );
    let stdout = text(&o.stdout);
    assert!(!o.status.success(), "a corrupting allocator passed:\n{stdout}");
    assert!(stdout.contains("broken-overlap") && stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("fastest: best-fit"), "{stdout}");
}

#[test]
fn a_forked_child_writes_a_trace_of_its_own() {
    let test = "fork while recording";
    let dir = support::out_dir("trace-fork");
    let Some((lib, exe)) = setup(test, &dir) else { return };
    let trace = dir.join("t.trace");
    record(&lib, &exe, &["fork"], &trace);
    let parent = program_trace::decode(&std::fs::read(&trace).expect("parent trace"), false)
        .expect("valid parent trace");
    let children: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("t.trace.") && !n.ends_with("replay"))
        })
        .collect();
    assert_eq!(children.len(), 1, "one child trace: {children:?}");
    let child = program_trace::decode(&std::fs::read(&children[0]).expect("child trace"), false)
        .expect("valid child trace");
    assert_eq!(child.ppid, parent.pid, "the child's trace names its parent");
    assert_eq!(
        children[0].file_name().and_then(|n| n.to_str()),
        Some(format!("t.trace.{}", child.pid).as_str())
    );
    assert!(program_trace::profile(&child).allocs >= 100, "the child's 100 allocations");
    let o = replay(&["--profile"], &trace);
    assert!(text(&o.stderr).contains("1 more trace(s) beside it"), "{}", text(&o.stderr));
}

#[test]
fn bad_files_are_refused_with_the_offset() {
    let dir = support::out_dir("trace-bad");
    std::fs::create_dir_all(&dir).expect("scratch");
    let mut w = Writer::new(7, 1);
    w.chunk(1, &[Rec::Alloc { seq: 0, size: 32, addr: 0x1000 }, Rec::Free { seq: 1, addr: 0x1000 }]);
    let good = w.finish();
    let mut newer = good.clone();
    newer[7] = 9;
    let mut flipped = good.clone();
    flipped[14] ^= 0x40;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("empty", Vec::new(), "not a trace file"),
        ("foreign", b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec(), "not a trace file"),
        ("truncated", good[..good.len() - 4].to_vec(), "at byte"),
        ("newer", newer, "newer"),
        ("corrupted", flipped, "at byte"),
    ];
    for (name, bytes, want) in cases {
        let f = dir.join(name);
        std::fs::write(&f, bytes).expect("write");
        for args in [&["--profile"][..], &["--reps", "1", "--allocators", "system"][..]] {
            let o = replay(args, &f);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(65), "{name} {args:?}: {err}");
            assert!(err.contains(want) && !err.contains("panicked"), "{name}: {err}");
        }
    }
}
