//! `ebm sample` streams its draws to disk as the chains run: a run's memory
//! does not grow with its length. A run storing 2·10⁷ values (160 MB of f64,
//! held whole before streaming) writes its NPY and its CSV in well under
//! 100 MB, and both files hold the same draws. The 10⁹-value figure is
//! measured by hand (docs/ROBUSTNESS.md); this is its short CI version.

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

const GAUSS: &str = "energy g(x: [64]) = sum(x^2) / 2\n";
/// 64 chains × 5000 kept draws × 64 coordinates.
const CHAINS: usize = 64;
const STEPS: usize = 5000;
const DIM: usize = 64;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-streaming-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("g.ebm"), GAUSS).unwrap();
    dir
}

/// Runs `ebm sample` into `out`; returns its peak resident memory in bytes.
/// (The only child this test binary starts at a time, so the children's
/// peak is its peak.)
fn sample(dir: &Path, out: &str) -> u64 {
    let status = Command::new(env!("CARGO_BIN_EXE_ebm"))
        .current_dir(dir)
        .env("EBM_THREADS", "2")
        .args(["sample", "g.ebm", "--energy", "g", "--sampler", "ula"])
        .args([
            "--chains",
            &CHAINS.to_string(),
            "--steps",
            &STEPS.to_string(),
        ])
        .args(["--warmup", "20", "--seed", "5", "--out", out])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "ebm sample --out {out}: {status}");
    // SAFETY: rusage is plain data, filled by the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    // ru_maxrss is in KiB on Linux.
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_long_run_streams_its_draws_in_bounded_memory() {
    let dir = scratch();
    let values = CHAINS * STEPS * DIM;
    let held_whole = values as u64 * 8;
    let limit = 100 << 20;
    // Both runs before this process reads anything big: a child's peak
    // counts the parent's memory it was forked with.
    let npy_peak = sample(&dir, "out.npy");
    let csv_peak = sample(&dir, "out.csv");
    for (what, peak) in [("NPY", npy_peak), ("CSV", csv_peak)] {
        assert!(
            peak < limit,
            "{what}: peak memory {} MiB for {} MiB of draws",
            peak >> 20,
            held_whole >> 20
        );
    }

    let mut npy = std::fs::File::open(dir.join("out.npy")).unwrap();
    let size = npy.metadata().unwrap().len() as usize;
    let header_len = size - values * 8;
    let mut header = vec![0u8; header_len];
    npy.read_exact(&mut header).unwrap();
    let header = String::from_utf8_lossy(&header);
    assert!(
        header.contains(&format!("'shape': ({CHAINS}, {STEPS}, {DIM})")),
        "{header}"
    );
    let mut tail = vec![0u8; DIM * 8];
    npy.seek(SeekFrom::End(-(DIM as i64 * 8))).unwrap();
    npy.read_exact(&mut tail).unwrap();
    let tail: Vec<f64> = tail
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();

    // The same draws in both files, chain-major: the CSV's rows, in order,
    // and its last row's coordinates are the NPY's last values.
    let csv = BufReader::new(std::fs::File::open(dir.join("out.csv")).unwrap());
    let mut rows = 0;
    let mut last = String::new();
    for line in csv.lines().map(Result::unwrap) {
        if line.starts_with('#') || line.starts_with("chain__") {
            continue;
        }
        let expect = format!("{},{},", rows / STEPS, rows % STEPS);
        assert!(line.starts_with(&expect), "row {rows}: {line}");
        rows += 1;
        last = line;
    }
    assert_eq!(rows, CHAINS * STEPS);
    let last: Vec<f64> = last
        .split(',')
        .skip(5)
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(last, tail);

    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporaries left behind: {left:?}");
    println!(
        "{values} values ({} MiB as f64): peak memory {} MiB (NPY), {} MiB (CSV)",
        held_whole >> 20,
        npy_peak >> 20,
        csv_peak >> 20
    );
    std::fs::remove_dir_all(&dir).ok();
}
