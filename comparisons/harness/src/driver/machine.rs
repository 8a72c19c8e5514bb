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

/// Reads the machine's description.
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
    }
}

impl Machine {
    /// As JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "nproc": self.nproc, "cpu": self.cpu, "kernel": self.kernel,
            "rustc": self.rustc, "date_utc": self.date_utc,
        })
    }
}
