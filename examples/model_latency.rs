//! Load-and-first-call latency of a model file against compiling from
//! source, for a few example energies (issue 10's measurement):
//!
//!     cargo build --release && cargo run --release --example model_latency [-- --repeat 15]
//!
//! Each measurement is a fresh `ebm eval FILE --energy E --at .. --grad`
//! process, timed as a whole — what a user waits for: start-up; for source,
//! read + parse + analyse + initialise the parameters, for a model file,
//! read + checksum + decode + verify the graphs; then, for both, derive,
//! optimise and JIT-compile E and ∇ₓE and call it once (a fresh process has
//! no cached kernels). "decode only" is `Artifact::load` in this process.
//! Medians over the repetitions, in ms.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ebm::api::{Artifact, Program};

fn main() {
    let mut repeat = 15usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--repeat N")
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ebm = ebm_binary();
    let dir = std::env::temp_dir().join(format!("ebm-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    println!(
        "{:<24} {:>8} {:>10} {:>10} {:>8} {:>16}",
        "energy", "params", "source ms", "model ms", "ratio", "decode only ms"
    );
    for (file, energy, what) in [
        ("examples/banana.ebm", "banana", "banana (analytic, 2-d)"),
        ("examples/train_gmm8.ebm", "e", "MLP 2-64-64-1"),
        ("examples/train/digits.ebm", "e", "MLP 64-256-256-1"),
    ] {
        let src = root.join(file);
        let model = dir.join(format!("{energy}-{}.ebmc", what.len()));
        let program = Program::from_file(&src).expect("the example checks");
        program
            .build(&[energy])
            .expect("the example builds")
            .write(&model)
            .expect("write the model file");
        let params: usize = program
            .params()
            .snapshot()
            .iter()
            .map(|p| p.data.len())
            .sum();
        let dim = program.energy(energy).expect("an energy").dim();
        let at = vec!["0.1"; dim].join(",");
        let eval = |file: &Path| {
            let out = Command::new(&ebm)
                .args(["eval", file.to_str().expect("a UTF-8 path")])
                .args(["--energy", energy, "--at", &at, "--grad"])
                .output()
                .expect("run ebm");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let from_source = median(repeat, || eval(&src));
        let from_model = median(repeat, || eval(&model));
        let decode = median(repeat, || {
            Artifact::load(&model).expect("the model file loads");
        });
        println!(
            "{what:<24} {params:>8} {from_source:>10.1} {from_model:>10.1} {:>8.2} {decode:>16.3}",
            from_source / from_model
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `ebm` binary beside this example (`target/release/ebm`).
fn ebm_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the example's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("ebm"))
        .expect("target/release");
    assert!(
        bin.is_file(),
        "build the binary first: cargo build --release"
    );
    bin
}

fn median(n: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..n.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}
