//! Records the versions of the anchor allocators (from the workspace's Cargo.lock) so that
//! the report can print them beside the figures.

const ANCHORS: [&str; 4] = ["mimalloc", "libmimalloc-sys", "talc", "linked_list_allocator"];

fn main() {
    let lock = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock");
    println!("cargo:rerun-if-changed={lock}");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut versions = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = n.trim_matches('"').to_string();
        } else if let Some(v) = line.strip_prefix("version = ")
            && ANCHORS.contains(&name.as_str())
        {
            versions.push(format!("{name} {}", v.trim_matches('"')));
        }
    }
    versions.sort();
    println!("cargo:rustc-env=ANCHOR_VERSIONS={}", versions.join(", "));
}
