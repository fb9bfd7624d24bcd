//! The sampler library on closed-form energies: MALA on the eight-Gaussian
//! ring and HMC on a banana, with CSV/NPY output, the `ebm summary` table and
//! PNG plots.
//!
//! `cargo run --example sample_api -- OUT_DIR` (default `target/sample_api`).

use std::path::PathBuf;

use ebm::plot;
use ebm::sample::targets::{Banana, Ring};
use ebm::sample::{Init, RunConfig, SamplerConfig, io, run_chains};
use ebm::stats;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/sample_api".into()),
    );
    std::fs::create_dir_all(&out)?;

    // Eight Gaussians on a ring: many short chains started uniformly, so
    // every mode is populated (each chain stays near the mode it finds).
    let ring = Ring {
        k: 8,
        radius: 2.0,
        sd: 0.1,
    };
    let mut run = RunConfig::new(2000, 300, 20, 0);
    run.init = Init::Uniform { a: -3.0, b: 3.0 };
    run.progress = true;
    let d = run_chains(&ring, &SamplerConfig::mala(0.01), &run)?;
    println!("{}\n", d.summary.as_ref().unwrap());
    io::write_csv(&out.join("gmm8.csv"), &d)?;
    io::write_npy(&out.join("gmm8.npy"), &d)?;
    plot::scatter_density(
        &out.join("gmm8.png"),
        &d,
        Some(&ring),
        (0, 1),
        "MALA, 2000 chains on eight Gaussians",
    )?;

    // A curved banana: x ~ N(0, 1), y | x ~ N(x², 0.4²). Its tails curve
    // sharply, so HMC targets a higher acceptance (smaller steps) than the
    // default 0.8 to avoid divergences there.
    let banana = Banana {
        a: 0.0,
        s: 1.0,
        t: 0.4,
    };
    let mut run = RunConfig::new(4, 500, 2000, 1);
    run.progress = true;
    let mut hmc = SamplerConfig::hmc(0.1, 16);
    hmc.target_accept = 0.95;
    let d = run_chains(&banana, &hmc, &run)?;
    println!("{}\n", d.summary.as_ref().unwrap());
    let csv = out.join("banana.csv");
    io::write_csv(&csv, &d)?;
    println!("{}", stats::summary_file(&csv, 10)?);
    plot::scatter_density(
        &out.join("banana.png"),
        &d,
        Some(&banana),
        (0, 1),
        "HMC on a banana",
    )?;
    plot::trace(&out.join("banana_trace.png"), &d, &[0, 1], 4, "HMC traces")?;
    plot::histograms(
        &out.join("banana_hist.png"),
        &d,
        &[0, 1],
        None,
        "HMC marginals",
    )?;
    println!("wrote {}", out.display());
    Ok(())
}
