//! Running children: one process per (rep, workload, allocator), timed with `wait4`, killed
//! at the time limit, judged by exit status and its RESULT line.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Opts;
use crate::runners::{Runner, RunnerSet};

/// How a run ended.
#[derive(Clone, Debug)]
pub enum Status {
    /// Exit 0 with a RESULT line.
    Ok { checksum: String, metrics: Vec<(String, f64)> },
    /// Non-zero exit, signal, missing result, or (set later) a checksum mismatch.
    Failed(String),
    /// Killed at the time limit.
    Timeout,
    /// Not run, because an earlier rep of the same cell failed or timed out.
    Skipped,
}

/// One child run.
#[derive(Clone, Debug)]
pub struct Run {
    pub rep: usize,
    pub workload: &'static str,
    pub allocator: String,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub maxrss_kib: u64,
    pub status: Status,
}

/// Everything the runs produced.
pub struct Results {
    pub runs: Vec<Run>,
    pub trace: Option<(PathBuf, u64)>,
}

/// Child's exit as `wait4` reports it, with its own resource use.
pub struct Exit {
    status: i32,
    rusage: libc::rusage,
}

/// Waits for `pid` without reaping, then reaps it; a watchdog kills it at `limit`.
fn wait_with_limit(pid: libc::pid_t, limit: Duration) -> Result<(Exit, bool), String> {
    let (tx, rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: the child is not reaped until this thread is joined below, so `pid`
            // still names it (running or zombie).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    loop {
        // SAFETY: `info` is a plain out-parameter; WNOWAIT leaves the child unreaped.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if r == 0 {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waitid: {}", std::io::Error::last_os_error()));
        }
    }
    let _ = tx.send(());
    let killed = watchdog.join().unwrap_or(false);
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our exited, unreaped child; the out-parameters are valid.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
    if r != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    Ok((Exit { status, rusage }, killed))
}

fn secs(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 * 1e-6
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

fn judge(exit: &Exit, killed: bool, stdout: &str, stderr: &str) -> Status {
    if killed {
        return Status::Timeout;
    }
    let st = exit.status;
    let last_err = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if libc::WIFSIGNALED(st) {
        return Status::Failed(
            format!("crashed: signal {} {last_err}", libc::WTERMSIG(st)).trim().to_string(),
        );
    }
    let code = libc::WEXITSTATUS(st);
    if code != 0 {
        return Status::Failed(format!("exit {code}: {last_err}"));
    }
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
        return Status::Failed("no RESULT line".into());
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Status::Failed("unreadable RESULT line".into());
    };
    let checksum = v["checksum"].as_str().unwrap_or("").to_string();
    let metrics = v["metrics"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, x)| Some((k.clone(), x.as_f64()?))).collect())
        .unwrap_or_default();
    Status::Ok { checksum, metrics }
}

/// Runs one child: `runner run WORKLOAD ...`.
fn run_one(runner: &Path, args: &[String], limit: Duration) -> Result<(f64, Exit, Status), String> {
    let start = Instant::now();
    let mut child = Command::new(runner)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", runner.display()))?;
    let out = reader(child.stdout.take().ok_or("no stdout")?);
    let err = reader(child.stderr.take().ok_or("no stderr")?);
    let (exit, killed) = wait_with_limit(child.id() as libc::pid_t, limit)?;
    let wall = start.elapsed().as_secs_f64();
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let status = judge(&exit, killed, &stdout, &stderr);
    Ok((wall, exit, status))
}

/// Records the trace once per (scale, seed), beside the runner bins.
fn ensure_trace(opts: &Opts, set: &RunnerSet) -> Result<(PathBuf, u64), String> {
    let rec = set.recorder.as_ref().ok_or("the trace_record bin is missing")?;
    let dir = set.dir.join("comparisons-trace");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The recording is a quarter of the program workloads' quick size at scale 1.
    let rec_scale = opts.scale * 0.25;
    let path = dir.join(format!("trace-v1-scale{rec_scale}-seed{}.bin", opts.seed));
    if !path.exists() {
        // Written under a private name and renamed, so a concurrent run never reads half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let st = Command::new(rec)
            .arg(&tmp)
            .arg(rec_scale.to_string())
            .arg(opts.seed.to_string())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("trace_record: {e}"))?;
        if !st.success() {
            return Err(format!("recording the trace failed ({st})"));
        }
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    Ok((path, len))
}

struct Job<'a> {
    rep: usize,
    workload: &'static comparisons::workloads::Workload,
    runner: &'a Runner,
}

/// The order of runs: for each rep and workload, the allocators rotated by one more place.
fn plan<'a>(opts: &Opts, set: &'a RunnerSet) -> Vec<Job<'a>> {
    let n = set.runners.len();
    let mut jobs = Vec::new();
    for rep in 0..opts.reps {
        for (wi, w) in opts.workloads.iter().enumerate() {
            for k in 0..n {
                let runner = &set.runners[(k + rep + wi) % n];
                jobs.push(Job { rep, workload: w, runner });
            }
        }
    }
    jobs
}

fn progress(total: usize) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:32} {pos}/{len} [{elapsed_precise}] {msg}") {
        pb.set_style(style);
    }
    pb
}

/// Runs the whole plan.
pub fn run_all(opts: &Opts, set: &RunnerSet) -> Result<Results, String> {
    let trace = if opts.workloads.iter().any(|w| w.name == "trace-replay") {
        Some(ensure_trace(opts, set)?)
    } else {
        None
    };
    let jobs = plan(opts, set);
    let pb = progress(jobs.len());
    let mut runs: Vec<Run> = Vec::with_capacity(jobs.len());
    for job in jobs {
        pb.set_message(format!("rep {} {} / {}", job.rep + 1, job.workload.name, job.runner.name));
        let dead = runs.iter().any(|r| {
            r.workload == job.workload.name
                && r.allocator == job.runner.name
                && !matches!(r.status, Status::Ok { .. })
        });
        let run = if dead {
            Run {
                rep: job.rep,
                workload: job.workload.name,
                allocator: job.runner.name.clone(),
                wall_s: 0.0,
                cpu_s: 0.0,
                maxrss_kib: 0,
                status: Status::Skipped,
            }
        } else {
            let mut args: Vec<String> = vec![
                "run".into(),
                job.workload.name.into(),
                "--scale".into(),
                opts.scale.to_string(),
                "--threads".into(),
                opts.threads.to_string(),
                "--seed".into(),
                opts.seed.to_string(),
            ];
            if let Some((t, _)) = &trace {
                args.extend(["--trace".into(), t.display().to_string()]);
            }
            let (wall, exit, status) = run_one(&job.runner.path, &args, opts.timeout)?;
            let ru = exit.rusage;
            Run {
                rep: job.rep,
                workload: job.workload.name,
                allocator: job.runner.name.clone(),
                wall_s: wall,
                cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime),
                maxrss_kib: ru.ru_maxrss as u64,
                status,
            }
        };
        if let Status::Failed(why) = &run.status {
            pb.println(format!("FAILED {} / {} (rep {}): {why}", run.workload, run.allocator, run.rep + 1));
        }
        runs.push(run);
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(Results { runs, trace })
}
