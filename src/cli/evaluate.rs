//! `ebm evaluate`: a trained energy against held-out data (MMD² to long-run
//! samples with its noise floor, support, and for 2-D energies log Z, the
//! exact held-out NLL and KL(data‖model) for the toy sets).

use std::path::{Path, PathBuf};

use ebm::pipeline;
use ebm::train::evaluate::{EvalConfig, evaluate as run_eval};

use super::{Failure, Result, analyze, backend_named, dtype_named, fail};

#[derive(Clone, Debug, clap::Args)]
pub struct EvaluateOptions {
    #[arg(long)]
    pub energy: String,
    /// Trained parameters (params.safetensors of `ebm train`).
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Held-out data: .csv, .npy or toy:NAME[:ROWS] (drawn with --data-seed).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    #[arg(long)]
    pub label: Option<String>,
    /// Seed of a toy:NAME data set (use one the training run did not: its seed was --seed).
    #[arg(long, default_value_t = 1_000_003)]
    pub data_seed: u64,
    /// The data's known density for KL(data‖model): eight_gaussians or checkerboard
    /// (default: the toy set named by --data).
    #[arg(long)]
    pub known: Option<String>,
    /// MALA chains for the long-run samples.
    #[arg(long, default_value_t = 2000)]
    pub chains: usize,
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    #[arg(long, default_value_t = 0.01)]
    pub step: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
    pub dtype: String,
    #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu"])]
    pub backend: String,
    /// Write the long-run samples over the density as a PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// One JSON line.
    #[arg(long)]
    pub json: bool,
}

pub fn evaluate(path: &Path, o: &EvaluateOptions) -> Result<String> {
    if o.chains < 2 || o.chains > 1_000_000 || o.steps == 0 || o.steps > 1_000_000 {
        return fail("--chains must be in 2..=1000000 and --steps in 1..=1000000");
    }
    if !(o.step > 0.0 && o.step.is_finite()) {
        return fail(format!("--step must be a number > 0, found {}", o.step));
    }
    let file = super::read(path)?;
    let module = analyze(&file)?;
    let store = pipeline::param_store(&module)?;
    let scale = match &o.params {
        Some(p) => super::sample::load_trained(p, &store)?,
        None => None,
    };
    let energy = pipeline::compile_energy(
        &file,
        &module,
        &o.energy,
        store,
        backend_named(&o.backend)?,
        dtype_named(&o.dtype)?,
    )?;
    let toy = super::toy_name(&o.data);
    let mut data = super::read_dataset(
        &o.data,
        o.columns.as_deref(),
        o.label.as_deref(),
        o.data_seed,
        5000,
    )?;
    data.check_width(energy.dim())
        .map_err(|e| Failure::Message(format!("{}: {e}", o.data.display())))?;
    let identity = scale.is_none();
    if let Some(sc) = &scale {
        sc.apply(&mut data.x);
    }
    // A toy set drawn with its default noise (the only one `--data toy:` draws).
    let known = o.known.clone().or(toy).filter(|_| identity).map(|k| {
        let noise = if k == "eight_gaussians" { 0.1 } else { 0.0 };
        (k, noise)
    });
    let cfg = EvalConfig::long_run(o.chains, o.steps, o.step, o.seed, known);
    let ev = run_eval(&energy, &data.x, &cfg).map_err(|e| Failure::Message(e.to_string()))?;
    let mut out = if o.json {
        format!("{}\n", ev.to_json())
    } else {
        ev.to_text()
    };
    if let Some(p) = &o.plot {
        let density = ebm::sample::DensityOf::new(&energy, None)
            .map_err(|e| Failure::Message(e.to_string()))?;
        if energy.dim() == 2 {
            ebm::plot::density_with_points(p, "long-run samples", &density, &ev.samples, None)
                .map_err(Failure::Message)?;
            if !o.json {
                out.push_str(&format!("wrote {}\n", p.display()));
            }
        }
    }
    Ok(out)
}
