//! Load-and-first-call latency of a model file against compiling from
//! source, for a few example energies (issue 10's measurement):
//!
//!     cargo run --release --example model_latency [-- --repeat 15]
//!
//! "source" is `Program::from_file` (read, parse, analyse, initialise the
//! parameters) + `energy(..)` + the first E and ∇ₓE call (which lowers,
//! derives, optimises and JIT-compiles the kernel); "model file" is
//! `Artifact::load` (read, checksum, decode and verify the graphs) + the
//! same compile and call. Medians over fresh repetitions, in ms.

use std::path::Path;
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
    let dir = std::env::temp_dir().join(format!("ebm-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    println!(
        "{:<28} {:>10} {:>12} {:>12} {:>14} {:>8}",
        "energy", "params", "source ms", "model ms", "(load only ms)", "ratio"
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
        let params = program
            .params()
            .snapshot()
            .iter()
            .map(|p| p.data.len())
            .sum::<usize>();
        let from_source = median(repeat, || {
            let p = Program::from_file(&src).unwrap();
            first_call(&p.energy(energy).unwrap());
        });
        let from_model = median(repeat, || {
            let a = Artifact::load(&model).unwrap();
            first_call(&a.energy(energy).unwrap());
        });
        let load_only = median(repeat, || {
            Artifact::load(&model).unwrap();
        });
        println!(
            "{what:<28} {params:>10} {from_source:>12.2} {from_model:>12.2} {load_only:>14.3} {:>8.2}",
            from_source / from_model
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn first_call(e: &ebm::runtime::CompiledEnergy) {
    let x = vec![0.1f64; e.dim()];
    e.energy_and_grad_x(&x, None, 1).unwrap();
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
