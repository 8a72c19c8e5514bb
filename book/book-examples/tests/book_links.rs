//! Checks the book's sources (`book/src`): every chapter in SUMMARY.md exists; every relative
//! link and image points to a file that exists, and every `#anchor` to a heading of its page;
//! every image has alt text; every mdBook include names a file that exists and, with
//! `:name`, an anchor that the file opens and closes. mdBook itself builds a page with a
//! missing include anchor without any message, so this test is what catches it.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn book_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../src")
}

/// Every markdown file under `dir`.
fn chapters(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("read book/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(chapters(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The text outside fenced code blocks and inline code spans (replaced by spaces, so that
/// line structure and offsets survive).
fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_fence = false;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            out.push('\n');
            continue;
        }
        if in_fence {
            out.push('\n');
            continue;
        }
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            }
            out.push(if in_code || c == '`' { ' ' } else { c });
        }
    }
    out
}

/// mdBook's heading id: lower case, alphanumerics, `-` and `_` kept, spaces become `-`.
fn heading_id(heading: &str) -> String {
    // Drop link targets: "[text](url)" reads as "text".
    let mut text = String::new();
    let mut chars = heading.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ']' && chars.peek() == Some(&'(') {
            for d in chars.by_ref() {
                if d == ')' {
                    break;
                }
            }
            continue;
        }
        text.push(c);
    }
    text.trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_ascii_lowercase())
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The heading ids of a page, with mdBook's `-1`, `-2` suffixes for repeats.
fn heading_ids(text: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let base = heading_id(line.trim_start_matches('#'));
        let mut id = base.clone();
        let mut n = 1;
        while !ids.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
    }
    ids
}

/// `(is_image, text, target)` of every inline link in `prose`.
fn links(prose: &str) -> Vec<(bool, String, String)> {
    let bytes = prose.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = prose[from..].find("](").map(|i| i + from) {
        from = i + 2;
        // The matching '[' before, allowing nested brackets.
        let mut depth = 0;
        let mut open = None;
        for j in (0..i).rev() {
            match bytes[j] {
                b']' => depth += 1,
                b'[' if depth == 0 => {
                    open = Some(j);
                    break;
                }
                b'[' => depth -= 1,
                _ => {}
            }
        }
        let Some(open) = open else { continue };
        let Some(close) = prose[from..].find(')').map(|c| c + from) else { continue };
        let is_image = open > 0 && bytes[open - 1] == b'!';
        out.push((is_image, prose[open + 1..i].to_string(), prose[from..close].trim().to_string()));
    }
    out
}

/// `(has_alt, src)` of every HTML `<img>` in `prose` (the step-through figures are HTML).
fn html_images(prose: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = prose[from..].find("<img ").map(|i| i + from) {
        let end = prose[i..].find('>').map_or(prose.len(), |e| e + i);
        from = end;
        let tag = &prose[i..end];
        let attr = |name: &str| {
            let key = format!(" {name}=\"");
            let at = tag.find(&key)? + key.len();
            Some(tag[at..at + tag[at..].find('"')?].to_string())
        };
        if let Some(src) = attr("src") {
            out.push((attr("alt").is_some_and(|a| !a.trim().is_empty()), src));
        }
    }
    out
}

/// `(path, anchor)` of every include directive.
fn includes(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for kind in ["{{#include ", "{{#rustdoc_include "] {
        let mut from = 0;
        while let Some(i) = text[from..].find(kind).map(|i| i + from + kind.len()) {
            from = i;
            let Some(end) = text[i..].find("}}").map(|e| e + i) else { continue };
            let arg = text[i..end].trim();
            let (path, rest) = arg.split_once(':').map_or((arg, None), |(p, r)| (p, Some(r)));
            // `path:10:20` and `path:10` are line ranges; `path:name` is an anchor.
            let anchor =
                rest.filter(|r| !r.chars().all(|c| c.is_ascii_digit() || c == ':')).map(str::to_string);
            out.push((path.to_string(), anchor));
        }
    }
    out
}

/// The anchor name after `tag` on a line, as mdBook reads it (`tag`, spaces, then word
/// characters and `-`), so that `// ANCHOR: x` and `<!-- ANCHOR: x -->` both count.
fn marker<'l>(line: &'l str, tag: &str) -> Option<&'l str> {
    let rest = line[line.find(tag)? + tag.len()..].trim_start();
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).unwrap_or(rest.len());
    (end > 0).then_some(&rest[..end])
}

fn check_page(page: &Path, errors: &mut Vec<String>) {
    let text = fs::read_to_string(page).expect("read chapter");
    let dir = page.parent().expect("chapter dir");
    let name = page.strip_prefix(book_src()).unwrap_or(page).display().to_string();
    let prose = prose(&text);
    for (has_alt, src) in html_images(&prose) {
        if !has_alt {
            errors.push(format!("{name}: image {src} has no alt text"));
        }
        if !src.contains("://") && !dir.join(&src).exists() {
            errors.push(format!("{name}: link to missing file {src}"));
        }
    }
    for (is_image, label, target) in links(&prose) {
        if is_image && label.trim().is_empty() {
            errors.push(format!("{name}: image {target} has no alt text"));
        }
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = target.split_once('#').map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
        let file = if path.is_empty() { page.to_path_buf() } else { dir.join(path) };
        if !file.exists() {
            errors.push(format!("{name}: link to missing file {target}"));
            continue;
        }
        if let Some(anchor) = anchor.filter(|_| file.extension().is_some_and(|e| e == "md")) {
            let ids = heading_ids(&fs::read_to_string(&file).expect("read link target"));
            if !ids.contains(anchor) {
                errors.push(format!("{name}: link to missing anchor {target}"));
            }
        }
    }
    for (path, anchor) in includes(&text) {
        let file = dir.join(&path);
        let Ok(source) = fs::read_to_string(&file) else {
            errors.push(format!("{name}: include of missing file {path}"));
            continue;
        };
        if let Some(anchor) = anchor {
            let opens = source.lines().any(|l| marker(l, "ANCHOR:") == Some(anchor.as_str()));
            let closes = source.lines().any(|l| marker(l, "ANCHOR_END:") == Some(anchor.as_str()));
            if !(opens && closes) {
                errors.push(format!("{name}: include of {path}: anchor `{anchor}` not opened and closed"));
            }
        }
    }
}

#[test]
fn summary_lists_existing_chapters() {
    let src = book_src();
    let summary = fs::read_to_string(src.join("SUMMARY.md")).expect("SUMMARY.md");
    let missing: Vec<String> = links(&prose(&summary))
        .into_iter()
        .map(|(_, _, target)| target)
        .filter(|t| !src.join(t).exists())
        .collect();
    assert!(missing.is_empty(), "SUMMARY.md lists missing chapters: {missing:?}");
}

#[test]
fn links_images_anchors_and_includes_resolve() {
    let mut errors = Vec::new();
    let pages = chapters(&book_src());
    assert!(pages.len() > 10, "expected the book's chapters, found {}", pages.len());
    for page in &pages {
        check_page(page, &mut errors);
    }
    assert!(errors.is_empty(), "broken references in the book:\n{}", errors.join("\n"));
}

#[test]
fn the_checker_finds_broken_references() {
    // The checker itself must fail on each kind of breakage; a test that cannot fail proves
    // nothing.
    let dir = std::env::temp_dir().join(format!("book-links-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    fs::write(dir.join("other.md"), "# Other page\n## A `code` heading: yes\n").expect("write");
    fs::write(dir.join("code.rs"), "// ANCHOR: here\nfn f() {}\n// ANCHOR_END: here\n").expect("write");
    fs::write(dir.join("notes.md"), "<!-- ANCHOR: part -->\ntext\n<!-- ANCHOR_END: part -->\n")
        .expect("write");
    let page = dir.join("page.md");
    let good = "[a](other.md#a-code-heading-yes) ![alt text](other.md) {{#include code.rs:here}}\n\
                <img src=\"other.md\" alt=\"a frame\">\n\
                {{#include notes.md:part}}\n\
                ```text\n[not a link](nowhere.md)\n```\n";
    fs::write(&page, good).expect("write");
    let mut errors = Vec::new();
    check_page(&page, &mut errors);
    assert!(errors.is_empty(), "false alarms: {errors:?}");
    let bad = "[a](missing.md) [b](other.md#no-such-heading) ![](other.md)\n\
               {{#include missing.rs}} {{#include code.rs:nowhere}}\n\
               <img src=\"missing.svg\" alt=\"x\"> <img src=\"other.md\">\n";
    fs::write(&page, bad).expect("write");
    check_page(&page, &mut errors);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(errors.len(), 7, "each breakage reported once: {errors:?}");
}
