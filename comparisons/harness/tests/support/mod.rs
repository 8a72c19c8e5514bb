//! What the driver's tests share: scratch directories and reading results.json.

use std::path::PathBuf;

/// A fresh scratch directory for test `name` of this process.
pub fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("comparisons-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The result of `workload` / `allocator` in results.json.
pub fn result<'j>(j: &'j serde_json::Value, workload: &str, allocator: &str) -> &'j serde_json::Value {
    j["results"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["workload"] == workload && r["allocator"] == allocator))
        .unwrap_or_else(|| panic!("no result for {workload} / {allocator}: {j}"))
}

/// Its verdict: `ok`, `failed` or `timeout`.
pub fn verdict(j: &serde_json::Value, workload: &str, allocator: &str) -> String {
    result(j, workload, allocator)["verdict"].as_str().unwrap_or("?").to_string()
}
