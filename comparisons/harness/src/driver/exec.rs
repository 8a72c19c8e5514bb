//! Running children: one process per (rep, workload, allocator), timed with `wait4`, killed
//! at the time limit, judged by exit status and its RESULT line.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Opts;
use crate::cload::{self, CSetup, CWorkload, Preload};
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
    /// C workloads or allocators left out, and why.
    pub c_notes: Vec<String>,
}

/// The least time limit of a C workload's run.
const C_TIMEOUT: Duration = Duration::from_secs(60);

/// Child's exit as `wait4` reports it, with its own resource use.
pub struct Exit {
    pub status: i32,
    pub rusage: libc::rusage,
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

pub fn secs(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 * 1e-6
}

fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// How a child reports its result.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// A `RESULT {json}` line (the Rust runners).
    ResultLine,
    /// Its whole stdout, hashed (the C workloads).
    Stdout,
}

fn judge(exit: &Exit, killed: bool, stdout: &str, stderr: &str, reply: Reply) -> Status {
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
    if let Reply::Stdout = reply {
        return Status::Ok { checksum: cload::checksum(stdout), metrics: Vec::new() };
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

/// Runs one child (`runner run WORKLOAD ...`, or a C workload's command).
pub fn run_one(mut cmd: Command, reply: Reply, limit: Duration) -> Result<(f64, Exit, Status), String> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let out = reader(child.stdout.take().ok_or("no stdout")?);
    let err = reader(child.stderr.take().ok_or("no stderr")?);
    let (exit, killed) = wait_with_limit(child.id() as libc::pid_t, limit)?;
    let wall = start.elapsed().as_secs_f64();
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let status = judge(&exit, killed, &stdout, &stderr, reply);
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

/// What one job runs.
enum Task<'a> {
    /// A Rust workload in the allocator's runner bin.
    Rust(&'static comparisons::workloads::Workload, &'a Runner),
    /// A C workload with the allocator preloaded.
    C(&'static CWorkload, &'a Preload),
}

struct Job<'a> {
    rep: usize,
    task: Task<'a>,
}

impl Job<'_> {
    fn workload(&self) -> &'static str {
        match self.task {
            Task::Rust(w, _) => w.name,
            Task::C(w, _) => w.name,
        }
    }
    fn allocator(&self) -> &str {
        match self.task {
            Task::Rust(_, r) => &r.name,
            Task::C(_, p) => &p.allocator,
        }
    }
}

/// The order of runs: for each rep and workload, the allocators rotated by one more place.
/// In A/B runs (`--ab`) every other round also goes backwards, so that neither build of an
/// allocator always runs right after the other (the one that follows a process inherits the
/// kernel's work of reclaiming its memory).
fn plan<'a>(opts: &Opts, set: &'a RunnerSet, c: Option<&'a CSetup>) -> Vec<Job<'a>> {
    let mut jobs = Vec::new();
    for rep in 0..opts.reps {
        for (wi, w) in opts.workloads.iter().enumerate() {
            let n = set.runners.len();
            let backwards = opts.ab.is_some() && (rep + wi) % 2 == 1;
            for k in 0..n {
                let k = if backwards { n - 1 - k } else { k };
                jobs.push(Job { rep, task: Task::Rust(w, &set.runners[(k + rep + wi) % n]) });
            }
        }
        let Some(c) = c else { continue };
        for (wi, w) in c.workloads.iter().enumerate() {
            let n = c.preloads.len();
            for k in 0..n {
                jobs.push(Job { rep, task: Task::C(w, &c.preloads[(k + rep + wi) % n]) });
            }
        }
    }
    jobs
}

/// The child command of a job and, for C workloads, its scratch directory.
fn command(
    opts: &Opts,
    job: &Job,
    c: Option<&CSetup>,
    trace: &Option<(PathBuf, u64)>,
    n: usize,
) -> Result<(Command, Reply, Option<PathBuf>), String> {
    match job.task {
        Task::Rust(w, runner) => {
            let mut cmd = Command::new(&runner.path);
            cmd.args(["run", w.name, "--scale", &opts.scale.to_string()]).args([
                "--threads",
                &opts.threads.to_string(),
                "--seed",
                &opts.seed.to_string(),
            ]);
            if let Some((t, _)) = trace {
                cmd.arg("--trace").arg(t);
            }
            Ok((cmd, Reply::ResultLine, None))
        }
        Task::C(w, p) => {
            let c = c.ok_or("C workload without set-up")?;
            let (cmd, dir) = c.command(opts, w, p, n)?;
            Ok((cmd, Reply::Stdout, Some(dir)))
        }
    }
}

pub fn progress(total: usize) -> ProgressBar {
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
    let names: Vec<String> = set.runners.iter().map(|r| r.name.clone()).collect();
    let c = cload::setup(opts, &names, &set.dir)?;
    let jobs = plan(opts, set, c.as_ref());
    let pb = progress(jobs.len());
    let mut runs: Vec<Run> = Vec::with_capacity(jobs.len());
    for (n, job) in jobs.iter().enumerate() {
        let (workload, allocator) = (job.workload(), job.allocator().to_string());
        pb.set_message(format!("rep {} {workload} / {allocator}", job.rep + 1));
        let dead = runs.iter().any(|r| {
            r.workload == workload && r.allocator == allocator && !matches!(r.status, Status::Ok { .. })
        });
        let mut run = Run {
            rep: job.rep,
            workload,
            allocator,
            wall_s: 0.0,
            cpu_s: 0.0,
            maxrss_kib: 0,
            status: Status::Skipped,
        };
        if !dead {
            let (cmd, reply, scratch) = command(opts, job, c.as_ref(), &trace, n)?;
            // Real programs have a fixed size: they get at least C_TIMEOUT whatever --timeout says.
            let limit = if scratch.is_some() { opts.timeout.max(C_TIMEOUT) } else { opts.timeout };
            let (wall, exit, status) = run_one(cmd, reply, limit)?;
            if let Some(d) = scratch {
                let _ = std::fs::remove_dir_all(d);
            }
            let ru = exit.rusage;
            run.wall_s = wall;
            run.cpu_s = secs(ru.ru_utime) + secs(ru.ru_stime);
            run.maxrss_kib = ru.ru_maxrss as u64;
            run.status = status;
        }
        if let Status::Failed(why) = &run.status {
            pb.println(format!("FAILED {} / {} (rep {}): {why}", run.workload, run.allocator, run.rep + 1));
        }
        runs.push(run);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let c_notes = c.map(|c| c.notes.clone()).unwrap_or_default();
    Ok(Results { runs, trace, c_notes })
}
