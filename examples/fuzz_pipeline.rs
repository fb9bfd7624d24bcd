//! Fuzzes the whole pipeline with random and mutated programs, without
//! cargo-fuzz (which needs nightly):
//!
//!     cargo run --release --example fuzz_pipeline -- --seconds 600 [--seed N] [--out DIR] [--front-end]
//!
//! Every input goes through the front end (`ebm::pipeline::check_source`:
//! parse, check, lower, lint); one that checks goes on through the JIT and
//! a few sampler steps (`tests/support/fuzz_deep.rs`: AD, optimiser,
//! Cranelift in f32 and f64, ULA, MALA, HMC), under a 256 MiB memory limit.
//! `--front-end` stops after the front end (many more inputs a second).
//!
//! Each input runs on a worker thread with a 2 MiB stack (like a test
//! thread). Panics are caught and saved to DIR (default `fuzz_crashes/`),
//! inputs slower than 1 s in the front end or 10 s in all are saved too,
//! and `DIR/current.ebm` always holds the input in flight, so a stack
//! overflow or abort leaves it behind. A watchdog stops the run if one
//! input hangs for 30 s. Exit code 1 when anything was found.

#[path = "../tests/support/fuzz_deep.rs"]
mod fuzz_deep;
#[path = "../tests/support/fuzz_gen.rs"]
mod fuzz_gen;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    let args = fuzz_gen::FuzzArgs::parse(&["--front-end"]);
    let front_end = args.has("--front-end");
    let fuzz_gen::FuzzArgs {
        seconds, seed, out, ..
    } = args;
    std::fs::create_dir_all(&out).expect("create the output folder");
    ebm::budget::set_max_memory(fuzz_deep::FUZZ_MEMORY);
    let corpus = fuzz_gen::corpus();
    eprintln!(
        "fuzzing the {} for {seconds} s, seed {seed}, {} corpus files, saving to {}",
        if front_end {
            "front end"
        } else {
            "whole pipeline"
        },
        corpus.len(),
        out.display()
    );

    // The panic hook keeps the last message instead of printing it.
    let last_panic = Arc::new(Mutex::new(String::new()));
    let hook_msg = Arc::clone(&last_panic);
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut m) = hook_msg.lock() {
            *m = info.to_string();
        }
    }));

    // Watchdog: the time (ms since start) at which the current input began.
    let start = Instant::now();
    let began = Arc::new(AtomicU64::new(u64::MAX));
    let dog_began = Arc::clone(&began);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let b = dog_began.load(Ordering::Relaxed);
            let now = start.elapsed().as_millis() as u64;
            if b != u64::MAX && now.saturating_sub(b) > 30_000 {
                eprintln!("HANG: one input ran for over 30 s; it is in current.ebm");
                std::process::exit(3);
            }
        }
    });

    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let fuzz = Fuzz {
                seconds,
                seed,
                deep: !front_end,
                out: &out,
                corpus: &corpus,
            };
            run(&fuzz, &began, &last_panic, start)
        })
        .expect("spawn the worker");
    let found = worker.join().unwrap_or(true);
    std::process::exit(i32::from(found));
}

struct Fuzz<'a> {
    seconds: u64,
    seed: u64,
    /// Past the front end: JIT and sampler steps.
    deep: bool,
    out: &'a Path,
    corpus: &'a [String],
}

fn run(fuzz: &Fuzz, began: &AtomicU64, last_panic: &Mutex<String>, start: Instant) -> bool {
    let Fuzz {
        seconds,
        seed,
        out,
        corpus,
        ..
    } = *fuzz;
    let mut rng = fuzz_gen::Rng::new(seed);
    let (mut n, mut panics, mut slow, mut ok, mut bytes) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut compiled, mut sampled) = (0usize, 0usize);
    let mut slowest = Duration::ZERO;
    let current = out.join("current.ebm");
    let deadline = Duration::from_secs(seconds);
    while start.elapsed() < deadline {
        let text = fuzz_gen::input(&mut rng, corpus);
        let _ = std::fs::write(&current, &text);
        began.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let checked = ebm::pipeline::check_source("fuzz.ebm", &text);
            let reached = match (&checked, fuzz.deep) {
                (Ok(_), true) => fuzz_deep::deep(&text),
                _ => fuzz_deep::Reached::default(),
            };
            checked.map(|_| reached)
        }));
        let took = t.elapsed();
        began.store(u64::MAX, Ordering::Relaxed);
        n += 1;
        bytes += text.len() as u64;
        slowest = slowest.max(took);
        match result {
            Ok(Ok(reached)) => {
                ok += 1;
                compiled += reached.compiled;
                sampled += reached.sampled;
            }
            Ok(Err(_)) => {}
            Err(_) => {
                panics += 1;
                let msg = last_panic.lock().map(|m| m.clone()).unwrap_or_default();
                let path = out.join(format!("panic-{seed}-{n}.ebm"));
                let _ = std::fs::write(&path, &text);
                eprintln!("PANIC on {}: {msg}", path.display());
            }
        }
        let limit = Duration::from_secs(if fuzz.deep { 10 } else { 1 });
        if took > limit {
            slow += 1;
            let path = out.join(format!("slow-{seed}-{n}.ebm"));
            let _ = std::fs::write(&path, &text);
            eprintln!("SLOW ({took:?}, {} bytes): {}", text.len(), path.display());
        }
        if n.is_multiple_of(if fuzz.deep { 5_000 } else { 50_000 }) {
            eprintln!("... {n} inputs, {:.0} s", start.elapsed().as_secs_f64());
        }
    }
    let _ = std::fs::remove_file(&current);
    println!(
        "{n} inputs, {panics} panics, {slow} slow ({ok} valid programs, {compiled} energies compiled, {sampled} sampler runs, {:.1} MB, slowest {:.1} ms, {:.0} s)",
        bytes as f64 / 1e6,
        slowest.as_secs_f64() * 1e3,
        start.elapsed().as_secs_f64()
    );
    panics + slow > 0
}
