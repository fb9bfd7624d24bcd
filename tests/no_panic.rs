//! A lint over the library's source: every `unwrap()`, `expect(..)`,
//! `panic!`, `unreachable!`, `todo!` and `unimplemented!` outside tests must
//! be an internal invariant — something no input can reach (the verifier,
//! sema or an earlier check guarantees it) — and say so with an
//! `// invariant: <why>` comment on its line or earlier in the same function.
//! User mistakes are errors (typed, or diagnostics), never panics.

use std::path::Path;

const PATTERNS: &[&str] = &[
    ".unwrap()",
    ".expect(",
    "panic!(",
    "unreachable!(",
    "todo!(",
    "unimplemented!(",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_fn_header(line: &str) -> bool {
    let t = line.trim_start();
    let t = t.strip_prefix("pub(crate) ").unwrap_or(t);
    let t = t.strip_prefix("pub ").unwrap_or(t);
    let t = t.strip_prefix("unsafe ").unwrap_or(t);
    t.starts_with("fn ")
}

/// The occurrences in one file that no `invariant:` comment covers.
fn unexplained(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut bad = Vec::new();
    let mut covered = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        // Unit tests are allowed to panic.
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if is_fn_header(line) {
            covered = false;
        }
        if line.contains("invariant:") {
            covered = true;
        }
        if t.starts_with("//") {
            continue;
        }
        let code = line.split("//").next().unwrap_or("");
        if PATTERNS.iter().any(|p| code.contains(p)) && !covered {
            bad.push(format!("{}:{}: {}", path.display(), i + 1, t));
        }
    }
    bad
}

#[test]
fn every_panic_in_the_library_is_a_documented_invariant() {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // The binary and unit-test files are not the library.
        let in_bin = f.starts_with("src/main.rs") || f.starts_with("src/cli");
        if in_bin || name == "tests.rs" {
            continue;
        }
        bad.extend(unexplained(f));
    }
    assert!(
        bad.is_empty(),
        "{} panic sites without an `// invariant:` comment (return an error, or say why no input reaches them):\n{}",
        bad.len(),
        bad.join("\n")
    );
}
