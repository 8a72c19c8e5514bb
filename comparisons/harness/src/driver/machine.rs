//! The machine a run was measured on, recorded beside the figures.

use std::process::Command;

/// What the report says about the machine.
#[derive(Clone, Debug)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub rustc: String,
    pub date_utc: String,
    /// The commit of the source the harness was built from, and whether that tree had
    /// uncommitted changes, read when the run starts (before it writes any result file).
    pub source: Source,
}

/// The commit a run measured: `git rev-parse HEAD` and `git status` of the harness's own
/// source tree. Both say "unknown" when git or the repository is not there (a copied
/// binary, a source tarball), so a run never fails for want of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The full commit hash, or "unknown".
    pub commit: String,
    /// "clean", "dirty" (tracked files differ from the commit) or "unknown".
    pub tree: String,
}

impl Source {
    /// The commit and tree state of the git work tree holding `dir`.
    pub fn of(dir: &std::path::Path) -> Source {
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let commit = git(&["rev-parse", "--verify", "HEAD"])
            .filter(|c| c.len() >= 40 && c.bytes().all(|b| b.is_ascii_hexdigit()));
        let tree = commit.as_ref().and_then(|_| {
            git(&["status", "--porcelain", "--untracked-files=no"])
                .map(|changes| if changes.is_empty() { "clean" } else { "dirty" }.to_string())
        });
        Source {
            commit: commit.unwrap_or_else(|| "unknown".into()),
            tree: tree.unwrap_or_else(|| "unknown".into()),
        }
    }

    /// For the report's header: "commit 0123abcd... (clean tree)".
    pub fn describe(&self) -> String {
        let short = self.commit.get(..12).unwrap_or(&self.commit);
        format!("commit {short} ({} tree)", self.tree)
    }
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Reads the machine's description and the commit of the harness's source. Called when
/// the run starts, so that the commit is the one measured even if the tree changes while
/// the run goes on.
pub fn describe() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        kernel: command_line("uname", &["-srm"]),
        rustc: command_line(&std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()), &["--version"]),
        date_utc: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        source: Source::of(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
    }
}

impl Machine {
    /// As JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "nproc": self.nproc, "cpu": self.cpu, "kernel": self.kernel,
            "rustc": self.rustc, "date_utc": self.date_utc,
            "commit": self.source.commit, "tree": self.source.tree,
        })
    }
}
