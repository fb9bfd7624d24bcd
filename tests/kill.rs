//! Interrupted writes lose nothing: `ebm sample` killed while it writes its
//! CSV leaves the previous file as it was, and no temporary file — at once
//! for SIGINT and SIGTERM (the handler removes it), after the next write of
//! the same file for SIGKILL (which no process can clean up after).

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BANANA: &str = "energy banana(x: [2]) = (1 - x[0])^2 / 2 + 5 * (x[1] - x[0]^2)^2\n";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-kill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("banana.ebm"), BANANA).unwrap();
    dir
}

fn sample(dir: &Path, chains: usize, steps: usize) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ebm"));
    c.current_dir(dir).args([
        "sample",
        "banana.ebm",
        "--energy",
        "banana",
        "--sampler",
        "ula",
        "--chains",
        &chains.to_string(),
        "--steps",
        &steps.to_string(),
        "--warmup",
        "0",
        "--out",
        "out.csv",
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".out.csv.tmp"))
        .collect()
}

/// The temporary the output is being written to; the `.probe` file made
/// (and removed at once) when the output is checked before the run is not.
fn writing(dir: &Path) -> bool {
    temps(dir).iter().any(|n| !n.ends_with(".probe"))
}

/// Waits until the child's temporary output exists (it is writing), then
/// sends `signal`; `None` when the child finished first.
fn kill_while_writing(
    dir: &Path,
    mut child: Child,
    signal: &str,
) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while !writing(dir) {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no temporary file appeared"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = child.id().to_string();
    Command::new("kill").args([signal, &pid]).status().unwrap();
    let status = child.wait().unwrap();
    // Finished its write between our look and the signal: inconclusive.
    (!status.success()).then_some(status)
}

/// Interrupts a write of growing size until one is caught mid-write. A
/// signal that came just after the rename (the new file complete, the
/// process not yet gone) proves nothing either way: tried again, larger.
fn interrupted(dir: &Path, signal: &str) -> std::process::ExitStatus {
    let before = std::fs::read(dir.join("out.csv")).unwrap();
    for steps in [4000, 16000, 64000, 128000] {
        let child = sample(dir, 512, steps).spawn().unwrap();
        if let Some(status) = kill_while_writing(dir, child, signal) {
            let after = std::fs::read(dir.join("out.csv")).unwrap();
            if after == before {
                return status;
            }
            assert!(
                after.ends_with(b"\n"),
                "{signal}: a partial file was renamed"
            );
            std::fs::write(dir.join("out.csv"), &before).unwrap();
        }
    }
    panic!("every write finished before {signal} arrived");
}

#[test]
fn sigint_and_sigterm_keep_the_previous_file_and_leave_no_temporary() {
    for signal in ["-INT", "-TERM"] {
        let dir = scratch(&signal[1..]);
        assert!(sample(&dir, 2, 10).status().unwrap().success());
        let before = std::fs::read(dir.join("out.csv")).unwrap();
        let status = interrupted(&dir, signal);
        assert_eq!(status.code(), Some(130), "{signal}");
        assert_eq!(
            std::fs::read(dir.join("out.csv")).unwrap(),
            before,
            "{signal}"
        );
        assert!(temps(&dir).is_empty(), "{signal}: {:?}", temps(&dir));
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn after_sigkill_the_next_write_removes_the_temporary() {
    let dir = scratch("KILL");
    assert!(sample(&dir, 2, 10).status().unwrap().success());
    let before = std::fs::read(dir.join("out.csv")).unwrap();
    interrupted(&dir, "-KILL");
    assert_eq!(std::fs::read(dir.join("out.csv")).unwrap(), before);
    assert!(!temps(&dir).is_empty(), "SIGKILL cannot clean up");
    assert!(sample(&dir, 3, 10).status().unwrap().success());
    assert!(temps(&dir).is_empty(), "{:?}", temps(&dir));
    assert_ne!(std::fs::read(dir.join("out.csv")).unwrap(), before);
    std::fs::remove_dir_all(&dir).ok();
}

/// A signal that lands while the blocks are still creating their spill
/// files (four worker threads, interrupted at the first file that appears)
/// leaves none behind: a spill is created and registered in one step, and
/// none can be created after the handler's sweep.
#[test]
fn a_signal_among_starting_blocks_leaves_no_spill() {
    let dir = scratch("START");
    for round in 0..20 {
        let mut cmd = sample(&dir, 512, 64000);
        let child = cmd.env("EBM_THREADS", "4").spawn().unwrap();
        if kill_while_writing(&dir, child, "-TERM").is_none() {
            continue;
        }
        assert!(temps(&dir).is_empty(), "round {round}: {:?}", temps(&dir));
    }
    std::fs::remove_dir_all(&dir).ok();
}
