//! UI golden tests: for every `tests/ui/*.ebm`, `ebm check` must print
//! exactly `tests/ui/<name>.stderr` and exit 1 when that holds an error, 0
//! when it holds only warnings (or nothing: a case that must not warn).
//! Run with `EBM_BLESS=1` to (re)write the expected files, then read every
//! changed one before committing.

use std::path::Path;
use std::process::Command;

#[test]
fn ui() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var("EBM_BLESS").is_ok_and(|v| v == "1");
    let mut cases: Vec<_> = std::fs::read_dir(root.join("tests/ui"))
        .expect("tests/ui exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ebm"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no UI cases found");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        // A relative path keeps the goldens machine independent.
        let rel = format!("tests/ui/{name}.ebm");
        let out = Command::new(env!("CARGO_BIN_EXE_ebm"))
            .args(["check", &rel])
            .current_dir(root)
            .output()
            .expect("run ebm");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let golden = root.join(format!("tests/ui/{name}.stderr"));
        let expected = if bless {
            Some(stderr.clone())
        } else {
            std::fs::read_to_string(&golden).ok()
        };
        // Errors fail the check; warnings alone never do.
        let has_error = |text: &str| text.lines().any(|l| l.starts_with("error"));
        let want_code = i32::from(has_error(expected.as_deref().unwrap_or(&stderr)));
        if out.status.code() != Some(want_code) {
            failures.push(format!(
                "{rel}: exit code {:?}, expected {want_code}\n{stderr}",
                out.status.code()
            ));
            continue;
        }
        if bless {
            std::fs::write(&golden, &stderr).expect("write golden");
            continue;
        }
        match expected {
            Some(expect) if expect == stderr => {}
            Some(expect) => failures.push(format!(
                "{rel}: stderr differs\n--- expected\n{expect}--- actual\n{stderr}"
            )),
            None => failures.push(format!(
                "{rel}: no {name}.stderr (run with EBM_BLESS=1)\n{stderr}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} UI cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
