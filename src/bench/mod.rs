//! `ebm bench`: the peer workloads of `shared/bench/peers` (W1 `gmm2d_ula`,
//! W2 `gauss100_ula`, W3 `mlp_ula`), run exactly as the peer scripts define
//! them — same SM64 initial tensors, probes, step sizes and step counts — and
//! reported as the same JSON fields, so one table holds ebm and its peers.
//! Every workload runs through `sample::run_compiled`, the engine that
//! `ebm sample` and scripts' `sample(...)` run: there is no bench-only path.
//!
//! Timing protocol (as the peers'): one warm-up call (which includes compiling
//! the kernels), then `repeat` timed calls of the whole sampling loop from the
//! same initial state; the median is reported. `foreign_cpu_share` is the share
//! of machine CPU time other processes used meanwhile (above ~0.05 the run was
//! disturbed).

mod machine;

use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::autodiff::derived::KernelSpec;
use crate::backend::DType;
use crate::backend::cpu::Cpu;
use crate::data::rng;
use crate::ir::Graph;
use crate::pipeline::{self, SourceFile};
use crate::runtime::CompiledEnergy;
use crate::runtime::steps::UlaMove;
use crate::sample::{Draws, Init, RunConfig, SamplerConfig, run_compiled};

/// The noise seed every framework uses (1234).
const SEED: u64 = 1234;

/// `EBM_BENCH_SEED` overrides the noise seed, to see the checksums' spread.
fn noise_seed() -> u64 {
    std::env::var("EBM_BENCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED)
}

struct Workload {
    name: &'static str,
    source: &'static str,
    energy: &'static str,
    chains: usize,
    steps: usize,
    lam: f64,
    dim: usize,
    init_seed: u64,
    /// (parameter, SM64 seed): every tensor is 0.1 · normal(seed).
    params: &'static [(&'static str, u64)],
    probe: fn() -> (Vec<f64>, usize),
}

const GMM2D: &str = "
const centers = ring(8, radius = 2.0)
energy gmm(x: [2]) = -logsumexp(-sum((x - centers)^2, axis = 1) / (2 * 0.1^2))
";

const GAUSS100: &str = "
const s = linspace(0.1, 1.0, 100)
energy gauss(x: [100]) = 0.5 * sum(x^2 / s^2)
";

const MLP: &str = "
param W1: [2, 128] ~ zeros
param b1: [128] ~ zeros
param W2: [128, 128] ~ zeros
param b2: [128] ~ zeros
param W3: [128, 1] ~ zeros
param b3: [1] ~ zeros
energy mlp(x: [2]) = (swish(swish(x @ W1 + b1) @ W2 + b2) @ W3 + b3)[0]
";

const MLP_PARAMS: &[(&str, u64)] = &[
    ("W1", 11),
    ("b1", 12),
    ("W2", 13),
    ("b2", 14),
    ("W3", 15),
    ("b3", 16),
];

fn probe2() -> (Vec<f64>, usize) {
    (
        rng::normal(51, 128)
            .iter()
            .map(|v| round_f32(1.5 * v))
            .collect(),
        64,
    )
}

fn probe100() -> (Vec<f64>, usize) {
    (
        rng::normal(52, 800).iter().map(|&v| round_f32(v)).collect(),
        8,
    )
}

/// The peers build every tensor in f64 and cast to f32 at the end.
fn round_f32(v: f64) -> f64 {
    v as f32 as f64
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "gmm2d_ula",
        source: GMM2D,
        energy: "gmm",
        chains: 4096,
        steps: 1000,
        lam: 0.01,
        dim: 2,
        init_seed: 1,
        params: &[],
        probe: probe2,
    },
    Workload {
        name: "gauss100_ula",
        source: GAUSS100,
        energy: "gauss",
        chains: 1024,
        steps: 1000,
        lam: 0.005,
        dim: 100,
        init_seed: 2,
        params: &[],
        probe: probe100,
    },
    Workload {
        name: "mlp_ula",
        source: MLP,
        energy: "mlp",
        chains: 1024,
        steps: 100,
        lam: 0.01,
        dim: 2,
        init_seed: 3,
        params: MLP_PARAMS,
        probe: probe2,
    },
];

/// Metropolis–Hastings throughput workloads on W1's energy, compared with
/// BlackJAX by `bench/blackjax_samplers.py`: (name, gradients per step, steps).
const MH_WORKLOADS: &[(&str, usize, usize)] = &[("mala_gmm2d", 1, 500), ("hmc_gmm2d", 10, 100)];

pub fn workload_names() -> Vec<&'static str> {
    WORKLOADS
        .iter()
        .map(|w| w.name)
        .chain(MH_WORKLOADS.iter().map(|m| m.0))
        .collect()
}

pub struct Options {
    pub workloads: Vec<String>,
    pub repeat: usize,
    pub threads: usize,
    /// `cpu` (the default) or `gpu`: the backend the energy is compiled for.
    pub backend: String,
}

/// Runs the chosen workloads, printing one JSON line each to `out`.
pub fn run(opts: &Options, out: &mut dyn std::io::Write) -> Result<(), String> {
    for name in &opts.workloads {
        if let Some(&(mh, grads, steps)) = MH_WORKLOADS.iter().find(|m| m.0 == name) {
            let record = run_mh(mh, grads, steps, opts)?;
            writeln!(out, "{record}").map_err(|e| e.to_string())?;
            continue;
        }
        let w = WORKLOADS.iter().find(|w| w.name == name).ok_or_else(|| {
            format!(
                "error: unknown workload `{name}`; expected one of {}",
                workload_names().join(", ")
            )
        })?;
        let record = run_workload(w, opts)?;
        writeln!(out, "{record}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Every parameter is 0.1 · SM64 normal(seed), rounded to f32 as the peers do;
/// sizes come from the energy graph's parameter inputs.
fn param_values<'a>(w: &'a Workload, graph: &'a Graph) -> impl Fn(&str) -> Option<Vec<f64>> + 'a {
    move |name: &str| {
        let &(_, seed) = w.params.iter().find(|(n, _)| *n == name)?;
        let id = graph.find_input_of(name, crate::ir::InputKind::Shared)?;
        let n = crate::ir::numel(&graph.input(id).shape);
        Some(
            rng::normal(seed, n)
                .iter()
                .map(|v| round_f32(0.1 * v))
                .collect(),
        )
    }
}

/// Source text → runnable energy + gradient kernels on the chosen backend,
/// timed (the backends' kernel caches bypassed).
fn compile(w: &Workload, opts: &Options) -> Result<(Graph, f64), String> {
    let t = Instant::now();
    let file = SourceFile {
        path: format!("<bench {}>", w.name),
        text: w.source.to_string(),
    };
    let module = pipeline::analyze(&file)?;
    let graph = crate::lower::lower(&module, w.energy).map_err(|d| d.message)?;
    let kernel_graph = crate::opt::optimize(
        &crate::autodiff::derived::derive(&graph, KernelSpec::ENERGY_GRAD)?,
        crate::opt::Config::default(),
    );
    match opts.backend.as_str() {
        "cpu" => Cpu::with_threads(1)
            .compile_uncached(&kernel_graph, DType::F32)
            .map(drop),
        "gpu" => crate::backend::gpu::Gpu::new()
            .and_then(|g| g.compile_uncached(&kernel_graph, DType::F32))
            .map(drop),
        other => crate::backend::named(other)?
            .compile(&kernel_graph, DType::F32)
            .map(drop),
    }
    .map_err(|e| e.to_string())?;
    Ok((graph, t.elapsed().as_secs_f64()))
}

/// The workload's energy in f32 with the peers' parameter values, on the
/// chosen backend — compiled exactly as `ebm sample --dtype f32` compiles it.
fn energy_of(w: &Workload, graph: &Graph, opts: &Options) -> Result<CompiledEnergy, String> {
    CompiledEnergy::new(
        graph.clone(),
        param_values(w, graph),
        crate::backend::named(&opts.backend)?,
        DType::F32,
    )
    .map_err(|e| e.to_string())
}

/// Runs `steps` iterations of `sampler` from `x0` through the engine that
/// `ebm sample` runs (`sample::run_compiled`), keeping only the last state:
/// `steps − 1` unrecorded iterations (adaptation is off in every workload)
/// and one kept draw, as `ebm sample --warmup N-1 --steps 1`.
fn run_engine(
    energy: &CompiledEnergy,
    sampler: &SamplerConfig,
    x0: &[f64],
    chains: usize,
    steps: usize,
    threads: usize,
) -> Result<Draws, String> {
    let mut run = RunConfig::new(chains, steps.saturating_sub(1), 1, noise_seed());
    run.threads = threads;
    run.init = Init::Array {
        values: x0.to_vec(),
        rows: chains,
    };
    run_compiled(energy, None, sampler, &run).map_err(|e| e.to_string())
}

fn run_workload(w: &Workload, opts: &Options) -> Result<Value, String> {
    let compile_times: Vec<f64> = (0..5)
        .map(|_| compile(w, opts).map(|(_, t)| t))
        .collect::<Result<_, _>>()?;
    let (graph, _) = compile(w, opts)?;
    let x0: Vec<f64> = rng::normal(w.init_seed, w.chains * w.dim)
        .iter()
        .map(|&v| v as f32 as f64)
        .collect();
    let params = param_values(w, &graph);
    if std::env::var_os("EBM_BENCH_DUMP").is_some() {
        let m = UlaMove {
            drift: w.lam / 2.0,
            noise: w.lam.sqrt(),
            clip: None,
            clamp: None,
        };
        let step = crate::opt::optimize(
            &crate::runtime::steps::ula(&graph, m)?.graph,
            crate::opt::Config::default(),
        );
        eprintln!("{}", crate::ir::print::print(&step));
        eprintln!("{}", crate::backend::cpu::clif_text(&step, DType::F32)?);
    }
    let idle_before = machine::wait_quiet();
    // Warm-up: compile the step kernels, then one full run.
    let t = Instant::now();
    let energy = energy_of(w, &graph, opts)?;
    let sampler = SamplerConfig::ula(w.lam);
    let go = || run_engine(&energy, &sampler, &x0, w.chains, w.steps, opts.threads);
    let mut d = go()?;
    let warmup = t.elapsed().as_secs_f64();
    let meter = machine::ForeignMeter::start();
    let mut times = Vec::new();
    for _ in 0..opts.repeat {
        let t = Instant::now();
        d = go()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let foreign = meter.share();
    let x: Vec<f32> = d.x.iter().map(|&v| v as f32).collect();
    let probe = probe_checksum(w, &graph, &params)?;
    let mut rec = record(
        opts,
        w,
        &x,
        probe,
        warmup,
        &times,
        median(compile_times),
        idle_before,
        foreign,
    );
    rec["threads"] = json!(opts.threads);
    Ok(rec)
}

fn probe_checksum(
    w: &Workload,
    graph: &Graph,
    params: &dyn Fn(&str) -> Option<Vec<f64>>,
) -> Result<Map<String, Value>, String> {
    let energy = CompiledEnergy::new(
        graph.clone(),
        params,
        std::sync::Arc::new(Cpu::new()),
        DType::F32,
    )
    .map_err(|e| e.to_string())?;
    let (points, n) = (w.probe)();
    let pts: Vec<f32> = points.iter().map(|&v| v as f32).collect();
    let eg = energy
        .energy_and_grad_x(&pts, None, n)
        .map_err(|e| e.to_string())?;
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let abs: Vec<f32> = eg.grad_x.iter().map(|g| g.abs()).collect();
    let mut m = Map::new();
    m.insert("probe_E_mean".into(), json!(round6(mean(&eg.energy))));
    m.insert("probe_gradabs_mean".into(), json!(round6(mean(&abs))));
    Ok(m)
}

#[allow(clippy::too_many_arguments)]
fn record(
    opts: &Options,
    w: &Workload,
    x: &[f32],
    probe: Map<String, Value>,
    warmup: f64,
    times: &[f64],
    compile_s: f64,
    idle_before: Option<f64>,
    foreign: Option<f64>,
) -> Value {
    let med = median(times.to_vec());
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let std = (xs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
    let mut checksum = Map::new();
    checksum.insert("mean".into(), json!(round6(mean)));
    checksum.insert("std".into(), json!(round6(std)));
    match w.name {
        "gmm2d_ula" => {
            let r = xs
                .chunks(2)
                .map(|p| (p[0] * p[0] + p[1] * p[1]).sqrt())
                .sum::<f64>()
                / w.chains as f64;
            checksum.insert("mean_radius".into(), json!(round6(r)));
        }
        "gauss100_ula" => {
            let v = xs
                .chunks(100)
                .flat_map(|c| {
                    c.iter()
                        .enumerate()
                        .map(|(i, v)| v * v / (0.1 + 0.9 * i as f64 / 99.0).powi(2))
                })
                .sum::<f64>()
                / xs.len() as f64;
            checksum.insert("mean_x2_over_s2".into(), json!(round6(v)));
        }
        _ => {}
    }
    checksum.extend(probe);
    let gflops = (w.name == "mlp_ula").then(|| {
        let p = (2 * 128 + 128 * 128 + 128) as f64;
        4.0 * p * (w.chains * w.steps) as f64 / med / 1e9
    });
    json!({
        "framework": format!("ebm-{}", opts.backend),
        "workload": w.name,
        "seconds_median": round6(med),
        "samples_per_s": ((w.chains * w.steps) as f64 / med * 10.0).round() / 10.0,
        "gflops": gflops.map(|g| (g * 1000.0).round() / 1000.0),
        "checksum": checksum,
        "warmup_s": (warmup * 1e4).round() / 1e4,
        "seconds_min": round6(times.iter().cloned().fold(f64::INFINITY, f64::min)),
        "repeat": times.len(),
        "cpu_idle_before": idle_before.map(|v| (v * 1000.0).round() / 1000.0),
        "foreign_cpu_share": foreign.map(|v| (v * 1000.0).round() / 1000.0),
        "compile_ms": (compile_s * 1e6).round() / 1e3,
        "peak_rss_mb": machine::peak_rss_mb(),
        "threads": null,
        "device": device_name(opts),
    })
}

/// The adapter a device backend runs on (`null` in the record for the CPU).
fn device_name(opts: &Options) -> Option<String> {
    crate::backend::named(&opts.backend)
        .ok()
        .and_then(|b| b.device())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// MALA (1 gradient per step) or static HMC (10 leapfrog steps) on the
/// eight-Gaussian mixture: 4096 chains, fixed step (BlackJAX's MALA step h is
/// λ/2 in ebm's convention, so λ = 0.02 matches h = 0.01), no adaptation.
fn run_mh(name: &str, grads: usize, steps: usize, opts: &Options) -> Result<Value, String> {
    let w = &WORKLOADS[0];
    let (graph, _) = compile(w, opts)?;
    let energy = energy_of(w, &graph, opts)?;
    let mut config = if grads == 1 {
        SamplerConfig::mala(0.02)
    } else {
        SamplerConfig::hmc(0.01, grads)
    };
    config.adapt_step = false;
    config.metric = crate::sample::MetricKind::Unit;
    config.step_jitter = 0.0;
    let x0: Vec<f64> = rng::normal(w.init_seed, w.chains * w.dim)
        .iter()
        .map(|&v| v as f32 as f64)
        .collect();
    let run = || -> Result<(Vec<f64>, f64), String> {
        let d = run_engine(&energy, &config, &x0, w.chains, steps, opts.threads)?;
        let accept = d.summary.as_ref().map_or(f64::NAN, |s| s.accept_rate);
        Ok((d.x, accept))
    };
    let idle_before = machine::wait_quiet();
    let t = Instant::now();
    run()?;
    let warmup = t.elapsed().as_secs_f64();
    let meter = machine::ForeignMeter::start();
    let mut times = Vec::new();
    let mut last = (Vec::new(), 0.0);
    for _ in 0..opts.repeat {
        let t = Instant::now();
        last = run()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let med = median(times.clone());
    let radius = last
        .0
        .chunks(2)
        .map(|p| (p[0] * p[0] + p[1] * p[1]).sqrt())
        .sum::<f64>()
        / w.chains as f64;
    Ok(json!({
        "framework": format!("ebm-{}", opts.backend),
        "workload": name,
        "seconds_median": round6(med),
        "grad_evals_per_s": ((w.chains * steps * grads) as f64 / med).round(),
        "checksum": {"mean_radius": round6(radius), "accept": (last.1 * 1e4).round() / 1e4},
        "warmup_s": (warmup * 1e4).round() / 1e4,
        "repeat": times.len(),
        "cpu_idle_before": idle_before,
        "foreign_cpu_share": meter.share(),
        "threads": opts.threads,
        "device": device_name(opts),
    }))
}
