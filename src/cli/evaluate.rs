//! `ebm evaluate`: a trained energy against held-out data (MMD² to model
//! samples with its noise floor, support, and for 2-D energies log Z, the
//! exact held-out NLL and KL(data‖model) for the toy sets). The samples are
//! long-run MALA by default, or ULA as an image model is trained and used
//! (decoupled noise, clamp, starts from noise).

use std::path::{Path, PathBuf};

use ebm::sample::{Init, Method, SamplerConfig};
use ebm::train::buffer::Fresh;
use ebm::train::evaluate::{EvalConfig, evaluate as run_eval};

use super::{Failure, Result, fail};

#[derive(Clone, Debug, clap::Args)]
pub struct EvaluateOptions {
    /// The energy to evaluate (or --model for a classifier).
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub energy: Option<String>,
    /// A classifier (`model f(x) -> [K]`, trained by `ebm jem`): accuracy,
    /// ECE, NLL and OOD AUROC on labelled test data (--label).
    #[arg(long)]
    pub model: Option<String>,
    /// --model: classes left out of training; their test rows form the
    /// OOD set `classes`.
    #[arg(long, value_delimiter = ',')]
    pub exclude_classes: Option<Vec<usize>>,
    /// --model: write the reliability diagram (15 confidence bins) as a PNG.
    #[arg(long)]
    pub reliability: Option<PathBuf>,
    /// --model: write class-conditional samples (SGLD on E(x|y) = −f(x)[y]
    /// from uniform noise) as a PNG, one row per class (with --image).
    #[arg(long)]
    pub samples: Option<PathBuf>,
    /// --model --samples: samples per class.
    #[arg(long, default_value_t = 8)]
    pub per_class: usize,
    /// --model --samples: SGLD steps.
    #[arg(long, default_value_t = 200)]
    pub sgld_steps: usize,
    /// --model --samples: SGLD step α (x ← x − α∇E + σξ).
    #[arg(long, default_value_t = 1.0)]
    pub sgld_step: f64,
    /// --model --samples: SGLD noise σ.
    #[arg(long, default_value_t = 0.01)]
    pub sgld_noise: f64,
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
    /// Chains of the model samples (one sample each: the last step).
    #[arg(long, default_value_t = 2000)]
    pub chains: usize,
    /// Sampler steps per chain (MALA adapts its step during the first half).
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    #[arg(long, default_value_t = 0.01)]
    pub step: f64,
    /// The samples' sampler: mala (adapted, at temperature 1) or ula (fixed
    /// step, as set by --step, --noise, --clamp: the training sampler of an
    /// image model).
    #[arg(long, default_value = "mala", value_parser = ["mala", "ula"])]
    pub sampler: String,
    /// ula only: decoupled noise sd σ (x − step·∇E + σξ).
    #[arg(long)]
    pub noise: Option<f64>,
    /// ula only: keep the samples in [A, B] after every step.
    #[arg(long, allow_hyphen_values = true)]
    pub clamp: Option<String>,
    /// ula only: clip each gradient entry to [−C, C].
    #[arg(long)]
    pub clip_grad: Option<f64>,
    /// The chains' starts: uniform:A,B or normal:SD (default: uniform over the
    /// data's range padded by 25%).
    #[arg(long, allow_hyphen_values = true)]
    pub init: Option<String>,
    /// With --plot: show the samples as a grid of H×W grey-scale images
    /// (e.g. 8x8 for the digits) instead of over a 2-D density.
    #[arg(long)]
    pub image: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
    pub dtype: String,
    #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu", "gpu"])]
    pub backend: String,
    /// Write the long-run samples over the density as a PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// One JSON line.
    #[arg(long)]
    pub json: bool,
}

pub fn evaluate(path: &Path, o: &EvaluateOptions) -> Result<String> {
    let Some(energy_name) = o.energy.as_deref() else {
        return classifier(path, o);
    };
    if o.chains < 2 || o.chains > 1_000_000 || o.steps == 0 || o.steps > 1_000_000 {
        return fail("--chains must be in 2..=1000000 and --steps in 1..=1000000");
    }
    if !(o.step > 0.0 && o.step.is_finite()) {
        return fail(format!("--step must be a number > 0, found {}", o.step));
    }
    if let Some(p) = &o.plot
        && !super::has_ext(p, &["png"])
    {
        return fail(format!(
            "--plot expects a file name ending in .png, found `{}`",
            p.display()
        ));
    }
    let image = o.image.as_deref().map(parse_image).transpose()?;
    let (energy, scale) =
        super::trained_energy(path, energy_name, o.params.as_deref(), &o.backend, &o.dtype)?;
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
    if let Some(shape) = &image
        && shape.iter().product::<usize>() != energy.dim()
    {
        return fail(format!(
            "--image {} holds {} values; `{}` has {}",
            o.image.as_deref().unwrap_or_default(),
            shape.iter().product::<usize>(),
            energy_name,
            energy.dim()
        ));
    }
    let identity = scale.is_none();
    if let Some(sc) = &scale {
        sc.apply(&mut data.x);
    }
    // A toy set drawn with its default noise (the only one `--data toy:` draws).
    let known = o.known.clone().or(toy).filter(|_| identity).map(|k| {
        let noise = ebm::data::toy::default_noise(&k).unwrap_or(0.0);
        (k, noise)
    });
    let mut cfg = EvalConfig::long_run(o.chains, o.steps, o.step, o.seed, known);
    cfg.sampler = sampler(o)?;
    cfg.init = match &o.init {
        Some(text) => Some(match super::train::parse_fresh(text)? {
            Fresh::Uniform { lo, hi } => Init::Uniform { a: lo, b: hi },
            Fresh::Normal { sd } => Init::Normal { mean: 0.0, sd },
        }),
        None => None,
    };
    let ev = run_eval(&energy, &data.x, &cfg).map_err(|e| Failure::Message(e.to_string()))?;
    let mut out = if o.json {
        format!("{}\n", ev.to_json())
    } else {
        ev.to_text()
    };
    if let (Some(p), Some(shape)) = (&o.plot, &image) {
        let d = energy.dim();
        let n = ev.samples.len() / d.max(1);
        let mut draws = ebm::sample::Draws::empty(n, 1, d);
        draws.x.copy_from_slice(&ev.samples[..n * d]);
        ebm::plot::image_grid(p, &draws, shape, 64, "model samples").map_err(Failure::Message)?;
        if !o.json {
            out.push_str(&format!("wrote {}\n", p.display()));
        }
    } else if let Some(p) = &o.plot {
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

/// `ebm evaluate --model`.
fn classifier(path: &Path, o: &EvaluateOptions) -> Result<String> {
    let model = o.model.as_deref().unwrap_or_default();
    let image = o.image.as_deref().map(parse_image).transpose()?;
    let flags = super::jem::ClassifierEval {
        model,
        params: o.params.as_deref(),
        data: &o.data,
        columns: o.columns.as_deref(),
        label: o.label.as_deref(),
        exclude: o.exclude_classes.as_deref().unwrap_or_default(),
        reliability: o.reliability.as_deref(),
        samples: o.samples.as_deref(),
        image,
        per_class: o.per_class,
        sgld_steps: o.sgld_steps,
        sgld_step: o.sgld_step,
        sgld_noise: o.sgld_noise,
        seed: o.seed,
        dtype: &o.dtype,
        backend: &o.backend,
        json: o.json,
    };
    super::jem::evaluate(path, &flags)
}

/// The samples' sampler from the flags: None for the default (MALA).
fn sampler(o: &EvaluateOptions) -> Result<Option<SamplerConfig>> {
    let ula_only = o.noise.is_some() || o.clamp.is_some() || o.clip_grad.is_some();
    if o.sampler != "ula" {
        if ula_only {
            return fail("--noise, --clamp and --clip-grad apply to --sampler ula only");
        }
        return Ok(None);
    }
    let u = super::train::ula_options(o.noise, o.clamp.as_deref(), o.clip_grad)?;
    let mut cfg = SamplerConfig::ula(o.step);
    cfg.method = Method::Ula(u);
    Ok(Some(cfg))
}

/// `--image HxW` (both in 1..=4096).
fn parse_image(text: &str) -> Result<Vec<usize>> {
    let dims: Option<Vec<usize>> = text
        .split(['x', 'X'])
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|&v| (1..=4096).contains(&v))
        })
        .collect();
    match dims {
        Some(d) if d.len() == 2 => Ok(d),
        _ => fail(format!("--image expects HxW (e.g. 8x8), found `{text}`")),
    }
}
