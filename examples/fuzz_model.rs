//! Fuzzes the model-file reader (`ebm::artifact::Artifact::from_bytes`, the
//! reader behind `ebm info`/`eval`/`sample` of a `.ebmc`, `use ... from`,
//! `api::Artifact` and the C ABI) with damaged copies of real model files,
//! without cargo-fuzz (which needs nightly):
//!
//!     cargo run --release --example fuzz_model -- --seconds 600 [--seed N] [--out DIR]
//!
//! The corpus is every example program built into a model file. Half the
//! mutants get a valid checksum, so they reach the decoders behind it.
//! Panics are caught and the input saved to DIR (default `fuzz_crashes/`);
//! exit code 1 when anything was found.

#[path = "../tests/support/fuzz_gen.rs"]
mod fuzz_gen;
#[path = "../tests/support/model_mutate.rs"]
mod model_mutate;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let fuzz_gen::FuzzArgs {
        seconds, seed, out, ..
    } = fuzz_gen::FuzzArgs::parse(&[]);
    let corpus = corpus();
    eprintln!(
        "fuzzing the model-file reader for {seconds} s, seed {seed}, {} model files",
        corpus.len()
    );
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = fuzz_gen::Rng::new(seed);
    let (mut inputs, mut loaded, mut panics) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        let good = &corpus[rng.below(corpus.len())];
        let bad = model_mutate::mutate(&mut rng, good);
        inputs += 1;
        match catch_unwind(AssertUnwindSafe(|| {
            ebm::artifact::Artifact::from_bytes(&bad).is_ok()
        })) {
            Ok(true) => loaded += 1,
            Ok(false) => {}
            Err(_) => {
                panics += 1;
                std::fs::create_dir_all(&out).expect("create the output folder");
                let path = out.join(format!("model-panic-{inputs}.ebmc"));
                std::fs::write(&path, &bad).expect("save the input");
                eprintln!("panic: saved {}", path.display());
            }
        }
    }
    println!(
        "{inputs} inputs in {:.0} s ({:.0}/s): {loaded} loaded, {} refused, {panics} panics",
        start.elapsed().as_secs_f64(),
        inputs as f64 / start.elapsed().as_secs_f64(),
        inputs - loaded - panics
    );
    if panics > 0 {
        std::process::exit(1);
    }
}

/// Every example program, built into a model file.
fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["examples", "examples/train", "examples/jem", "examples/ais"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("examples exist") {
            let path = entry.expect("a folder entry").path();
            if path.extension().is_some_and(|x| x == "ebm") {
                let program = ebm::api::Program::from_file(&path).expect("examples check");
                files.push(program.build(&[]).expect("examples build").to_bytes());
            }
        }
    }
    files
}
