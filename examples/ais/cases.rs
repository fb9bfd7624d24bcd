//! The AIS-against-quadrature cases, shared by `tests/ais.rs` (short, fixed
//! seed) and `examples/ais_table.rs` (the table in docs/objectives.md):
//! five 2-D energies (four closed-form, one learned) whose log Z the grid
//! quadrature of `stats::eval` gives, and a 10-d Gaussian whose log Z is
//! ½ log det(2πΣ).

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Instant;

use ebm::api::Program;
use ebm::runtime::CompiledEnergy;
use ebm::sample::ais::{self, AisConfig, Gaussian, Transition};
use ebm::sample::{Init, RunConfig, SamplerConfig, run_compiled};
use ebm::stats::Grid;

/// Where the truth comes from.
pub enum Truth {
    Quadrature(Grid),
    Exact(f64),
}

/// What the base Gaussian is fitted to.
pub enum Base {
    Standard,
    /// Long-run MALA draws of the energy itself (4000 chains, last draw).
    Samples,
    /// The rows of a bundled toy set (the learned energy's training data).
    Toy(&'static str),
}

pub struct Case {
    pub name: &'static str,
    pub file: &'static str,
    pub energy: &'static str,
    pub params: Option<&'static str>,
    pub truth: Truth,
    pub base: Base,
    pub transition: Transition,
}

fn grid(lo: [f64; 2], hi: [f64; 2], n: usize) -> Truth {
    Truth::Quadrature(Grid { lo, hi, n })
}

pub fn cases() -> Vec<Case> {
    let mala = Transition::Mala;
    vec![
        Case {
            name: "banana (closed form)",
            file: "examples/banana.ebm",
            energy: "banana",
            params: None,
            truth: grid([-6.0, -4.0], [8.0, 50.0], 1500),
            base: Base::Samples,
            transition: mala,
        },
        Case {
            name: "ring (closed form)",
            file: "examples/ring.ebm",
            energy: "ring",
            params: None,
            truth: grid([-3.0, -3.0], [3.0, 3.0], 800),
            base: Base::Standard,
            transition: mala,
        },
        Case {
            name: "8 Gaussians (closed form)",
            file: "examples/gmm8.ebm",
            energy: "gmm",
            params: None,
            truth: grid([-3.0, -3.0], [3.0, 3.0], 1200),
            base: Base::Standard,
            transition: mala,
        },
        Case {
            name: "composed (closed form)",
            file: "examples/composed.ebm",
            energy: "composed",
            params: None,
            truth: grid([-4.0, -4.0], [4.0, 4.0], 800),
            base: Base::Standard,
            transition: mala,
        },
        Case {
            name: "two moons MLP (learned, PCD)",
            file: "examples/ais/learned.ebm",
            energy: "net",
            params: Some("examples/ais/moons.safetensors"),
            truth: grid([-6.0, -6.0], [6.0, 6.0], 600),
            base: Base::Toy("two_moons"),
            transition: mala,
        },
        Case {
            name: "10-d Gaussian (closed form)",
            file: "examples/ais/gauss10.ebm",
            energy: "gauss10",
            params: None,
            truth: Truth::Exact(9.951753981648624),
            base: Base::Standard,
            transition: Transition::Hmc { leapfrog: 10 },
        },
    ]
}

/// One row of the table.
pub struct Row {
    pub name: &'static str,
    pub truth: f64,
    pub log_z: f64,
    pub se: f64,
    pub pooled: f64,
    /// (estimate − truth) / SE.
    pub z: f64,
    /// estimate − truth (negative: AIS's downward bias).
    pub bias: f64,
    /// Weight ESS per run, averaged, out of the chains per run.
    pub ess: f64,
    pub seconds: f64,
}

fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn compile(case: &Case) -> CompiledEnergy {
    let program = Program::from_file(&path(case.file)).expect("example program");
    if let Some(p) = case.params {
        ebm::train::checkpoint::load_params(&path(p), program.params()).expect("params");
    }
    program.energy(case.energy).expect("energy")
}

fn base(case: &Case, energy: &CompiledEnergy) -> Gaussian {
    let d = energy.dim();
    match case.base {
        Base::Standard => Gaussian::standard(d),
        Base::Toy(name) => {
            let data = ebm::data::toy(name, 4000, None, 1).expect("toy set");
            Gaussian::fit(&data.x, d).expect("fit")
        }
        Base::Samples => {
            let mut run = RunConfig::new(4000, 1000, 1, 7);
            run.init = Init::Normal { mean: 0.0, sd: 1.0 };
            run.threads = ebm::backend::cpu::default_threads();
            let draws =
                run_compiled(energy, None, &SamplerConfig::mala(0.05), &run).expect("MALA draws");
            Gaussian::fit(&draws.x, d).expect("fit")
        }
    }
}

fn truth(case: &Case, energy: &CompiledEnergy) -> f64 {
    match &case.truth {
        Truth::Exact(v) => *v,
        Truth::Quadrature(g) => {
            ebm::train::evaluate::density_on(energy, g)
                .expect("quadrature")
                .log_z
        }
    }
}

/// Runs `case` with `runs` × `chains` × `steps` AIS from `seed`.
pub fn run(case: &Case, runs: usize, chains: usize, steps: usize, seed: u64) -> Row {
    run_with(case, runs, chains, steps, seed, None)
}

/// [`run`], or reverse AIS from `rows` when given.
pub fn run_with(
    case: &Case,
    runs: usize,
    chains: usize,
    steps: usize,
    seed: u64,
    rows: Option<&[f64]>,
) -> Row {
    let energy = compile(case);
    let truth = truth(case, &energy);
    let q = base(case, &energy);
    let mut cfg = AisConfig::new(steps, runs, chains, seed);
    cfg.transition = case.transition;
    cfg.threads = ebm::backend::cpu::default_threads();
    let start = Instant::now();
    let est = match rows {
        None => ais::ais_compiled(&energy, &q, &cfg),
        Some(x) => ais::ais_reverse_compiled(&energy, &q, x, &cfg),
    }
    .expect("AIS");
    let seconds = start.elapsed().as_secs_f64();
    Row {
        name: case.name,
        truth,
        log_z: est.log_z,
        se: est.se,
        pooled: est.log_z_pooled,
        z: (est.log_z - truth) / est.se,
        bias: est.log_z - truth,
        ess: est.runs.iter().map(|r| r.ess).sum::<f64>() / runs as f64,
        seconds,
    }
}

/// `n` exact draws of the 10-d Gaussian of `examples/ais/gauss10.ebm`:
/// x = μ + W⁻¹ξ (Cov = W⁻¹W⁻ᵀ = (WᵀW)⁻¹), W as that file builds it.
pub fn gauss10_draws(n: usize, seed: u64) -> Vec<f64> {
    let diag = [2.5, 1.8, 1.2, 1.0, 0.8, 0.6, 0.5, 0.45, 0.4, 2.0];
    let mu = [1.0, -1.0, 0.5, 0.0, 2.0, -0.5, 0.0, 1.5, -2.0, 0.25];
    let w = |i: usize, j: usize| -> f64 {
        match i - j {
            0 => diag[i],
            1 => {
                if i % 2 == 1 {
                    0.6
                } else {
                    -0.4
                }
            }
            2 => 0.3,
            _ => 0.0,
        }
    };
    let mut rng = ebm::sample::ChainRng::new(seed, 0);
    let mut out = Vec::with_capacity(n * 10);
    for _ in 0..n {
        let xi: Vec<f64> = (0..10).map(|_| rng.normal()).collect();
        // Forward substitution: W y = ξ.
        let mut y = [0.0; 10];
        for i in 0..10 {
            let s: f64 = (0..i).map(|j| w(i, j) * y[j]).sum();
            y[i] = (xi[i] - s) / diag[i];
        }
        out.extend((0..10).map(|i| mu[i] + y[i]));
    }
    out
}

pub const HEADER: &str = "| energy | true log Z | AIS log Z ± SE | z | bias | pooled | ESS/run | time (s) |\n| --- | --- | --- | --- | --- | --- | --- | --- |";

impl Row {
    pub fn markdown(&self, chains: usize) -> String {
        format!(
            "| {} | {:.4} | {:.4} ± {:.4} | {:+.2} | {:+.4} | {:.4} | {:.0}/{chains} | {:.1} |",
            self.name,
            self.truth,
            self.log_z,
            self.se,
            self.z,
            self.bias,
            self.pooled,
            self.ess,
            self.seconds
        )
    }
}
