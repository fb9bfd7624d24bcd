//! `ebm train`: its flags, read into a `TrainConfig` and a training session,
//! and `--resume DIR`, which reads the flags back from the run's checkpoint.
//! Every flag is checked, the program compiled and the data read and
//! validated before the first iteration runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ebm::data::dataset::{Dataset, Scale};
use ebm::pipeline;
use ebm::sample::{Method as SamplerMethod, SamplerConfig, UlaOptions};
use ebm::script::runners;
use ebm::train::buffer::{Fresh, Replace};
use ebm::train::loss::LossKind;
use ebm::train::nce::Noise;
use ebm::train::optim::{Decay, Rule};
use ebm::train::session::{self, Session};
use ebm::train::{Concepts, Method, TrainConfig, Trainer, checkpoint, concepts, score};

use super::{Failure, Result, analyze, backend_named, dtype_named, fail, parse_vector};

/// The flags of `ebm train` (stored in each checkpoint, so `--resume`
/// repeats the run exactly).
#[derive(Clone, Debug, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    /// The energy to train (required unless --resume).
    #[arg(long, required_unless_present = "resume")]
    pub energy: Option<String>,
    /// Training data: a .csv file with a header line, a .npy array, or
    /// toy:NAME[:ROWS], a seeded 2-D toy set (eight_gaussians, two_moons,
    /// rings, swiss_roll, checkerboard, pinwheel, spirals).
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Columns to train on (default: every column but --label).
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// A label column, left out of the training columns.
    #[arg(long)]
    pub label: Option<String>,
    /// Scaling of the columns before training: none, standardize, minmax:A,B
    /// (each column by its own range) or range:A,B (one map for all columns).
    /// The energy is trained on the scaled values (snapshots show them); the
    /// scaling is recorded in params.safetensors' metadata, and `ebm sample
    /// --params` / `ebm eval --params` map between it and the data's scale.
    #[arg(long, default_value = "none")]
    pub scale: String,
    /// Fraction of rows held out to score the model during training and keep
    /// the best parameters in best.safetensors (0 for none).
    #[arg(long, default_value_t = 0.1)]
    pub heldout: f64,
    /// Take training batches in file order (default: shuffled every epoch).
    #[arg(long)]
    pub no_shuffle: bool,
    /// cd: K sampler steps from fresh noise; pcd: from a replay buffer; icd:
    /// pcd plus improved CD's KL and entropy terms, differentiated through
    /// the last Langevin step (after mala/hmc negatives: one extra ULA step
    /// with drift step/2 and noise sqrt(step) from their final state).
    /// sm: exact score matching ½|∇E|² − tr ∇²E (d ≤ 64); ssm: sliced
    /// (--projections, --projection); dsm: denoising (--sigma); nce:
    /// noise-contrastive estimation (--nce-noise, --nce-ratio) with a learned
    /// log Z (`nce.log_z` in params.safetensors). These four draw no
    /// negatives: the sampler flags do not apply.
    #[arg(long, default_value = "pcd", value_parser = ["cd", "pcd", "icd", "sm", "ssm", "dsm", "nce"])]
    pub method: String,
    /// ssm only: projections per sample (1 to 64), one Hessian-vector product each.
    #[arg(long, default_value_t = 1)]
    #[serde(default = "one")]
    pub projections: usize,
    /// ssm only: the projections' distribution, rademacher (±1) or gaussian.
    #[arg(long, default_value = "rademacher", value_parser = ["rademacher", "gaussian"])]
    #[serde(default = "rademacher")]
    pub projection: String,
    /// dsm only: the noise levels σ (comma-separated; each sample draws one),
    /// in the scaled data's units.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1",
        allow_hyphen_values = true
    )]
    #[serde(default = "default_sigma")]
    pub sigma: Vec<f64>,
    /// nce only: the noise density, fitted (a Gaussian with the data's mean
    /// and covariance), fitted:SCALE (its sd widened SCALE times),
    /// normal:SD or uniform:A,B.
    #[arg(long, default_value = "fitted", allow_hyphen_values = true)]
    #[serde(default = "fitted")]
    pub nce_noise: String,
    /// nce only: noise rows per data row (ν, 1 to 64).
    #[arg(long, default_value_t = 1)]
    #[serde(default = "one")]
    pub nce_ratio: usize,
    /// Training iterations (the run's total; --resume continues to it).
    #[arg(long, default_value_t = 5000)]
    pub iters: usize,
    /// Positives (and negatives) per iteration.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// The negatives' sampler (fixed step, no adaptation).
    #[arg(long, default_value = "ula", value_parser = ["ula", "mala", "hmc"])]
    pub sampler: String,
    /// Sampler steps per iteration (K).
    #[arg(long, default_value_t = 20)]
    pub sampler_steps: usize,
    /// Sampler step (ula/mala: λ in x − (λ/2)∇E + √λξ; hmc: leapfrog ε).
    #[arg(long, default_value_t = 0.005)]
    pub step: f64,
    /// ula only: decoupled noise sd σ (x − step·∇E + σξ, the IGEBM form).
    #[arg(long)]
    pub noise: Option<f64>,
    /// hmc only: leapfrog steps per transition.
    #[arg(long, default_value_t = 5)]
    pub leapfrog: usize,
    /// ula only: clamp the negatives to [A, B] after every step (IGEBM keeps
    /// images in the pixel range); not with icd.
    #[arg(long, allow_hyphen_values = true)]
    pub clamp: Option<String>,
    /// ula only: clip each gradient entry to [−C, C] in the negatives' steps.
    #[arg(long)]
    pub clip_grad: Option<f64>,
    /// Contrastive loss: cd (mean E+ − mean E−), softplus, logsumexp.
    #[arg(long, default_value = "cd", value_parser = ["cd", "softplus", "logsumexp"])]
    pub loss: String,
    /// α of the energy-magnitude penalty α·mean(E+² + E−²) (cd, pcd, icd;
    /// default 0.05).
    #[arg(long)]
    pub l2: Option<f64>,
    /// icd only: weight of the KL term.
    #[arg(long, default_value_t = 1.0)]
    pub kl: f64,
    /// icd only: weight of the nearest-neighbour entropy term.
    #[arg(long, default_value_t = 0.1)]
    pub entropy: f64,
    /// Replay buffer rows (pcd, icd).
    #[arg(long, default_value_t = 10000)]
    pub buffer: usize,
    /// Probability that a negative restarts from fresh noise.
    #[arg(long, default_value_t = 0.05)]
    pub reinit: f64,
    /// Buffer replacement: uniform (rows drawn and written back in place) or reservoir.
    #[arg(long, default_value = "uniform", value_parser = ["uniform", "reservoir"])]
    pub replace: String,
    /// Fresh noise: uniform:A,B or normal:SD (default: uniform over the data's range, padded by 10%).
    #[arg(long, allow_hyphen_values = true)]
    pub init: Option<String>,
    #[arg(long, default_value = "adam", value_parser = ["adam", "sgd"])]
    pub optimizer: String,
    /// Learning rate (peak, after --lr-warmup; then --decay).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Adam's β₁ (0 allowed, as IGEBM) or SGD's momentum.
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip the gradient's global norm to this.
    #[arg(long)]
    pub clip: Option<f64>,
    /// Linear learning-rate warm-up iterations.
    #[arg(long, default_value_t = 0)]
    pub lr_warmup: usize,
    /// Learning-rate decay: none, cosine, or step:EVERY,FACTOR.
    #[arg(long, default_value = "cosine")]
    pub decay: String,
    /// Keep an exponential moving average of the parameters with this decay.
    #[arg(long)]
    pub ema: Option<f64>,
    /// Spectral normalisation: after each update, scale every weight matrix
    /// (rank-2 parameter) whose largest singular value exceeds this bound.
    #[arg(long)]
    pub spectral_norm: Option<f64>,
    /// Start from the parameters in this safetensors file instead of the program's initial values.
    #[arg(long)]
    pub init_params: Option<PathBuf>,
    /// Every random choice is keyed by (seed, iteration).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Kernels' dtype (parameters and optimiser state are f64 either way).
    #[arg(long, default_value = "f32", value_parser = ["f32", "f64"])]
    pub dtype: String,
    #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu", "gpu"])]
    pub backend: String,
    /// Worker threads for the negatives and the loss (default: EBM_THREADS or
    /// the CPU count); results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write checkpoint.safetensors every this many iterations (0: only at the end).
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: usize,
    /// Draw the negatives as a PNG every this many iterations (0: never).
    #[arg(long, default_value_t = 0)]
    pub snapshot_every: usize,
    /// Score the held-out rows every this many iterations (0: never).
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// Output folder: params.safetensors, checkpoint.safetensors, metrics.csv, loss.png.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Stop after this many iterations of this invocation (writing the
    /// checkpoint); `--resume` continues to --iters.
    #[arg(long)]
    #[serde(skip)]
    pub stop_after: Option<usize>,
    /// Continue the run in DIR from its checkpoint to its configured --iters.
    #[arg(long, conflicts_with_all = ["energy", "data", "out"])]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// The program (recorded for --resume; given on the command line).
    #[arg(skip)]
    pub program: Option<PathBuf>,
    /// A hash of the program's text, checked on --resume.
    #[arg(skip)]
    pub program_hash: Option<String>,
}

/// `ebm train FILE ...` or `ebm train --resume DIR`.
pub fn train(path: Option<&Path>, o: &TrainOptions, stop: Arc<AtomicBool>) -> Result<String> {
    match (&o.resume, path) {
        (Some(dir), None) => resume(dir, o.stop_after, stop),
        (Some(_), Some(_)) => {
            fail("--resume DIR continues a run as it was configured: give no FILE")
        }
        (None, Some(p)) => {
            let mut o = o.clone();
            o.program = Some(absolute(p));
            start(&o, None, stop)
        }
        (None, None) => fail("ebm train needs the program FILE (or --resume DIR)"),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn resume(dir: &Path, stop_after: Option<usize>, stop: Arc<AtomicBool>) -> Result<String> {
    let (mut o, path, c) = recorded_run::<TrainOptions>(dir, "an `ebm train` run")?;
    o.stop_after = stop_after;
    start(&o, Some((path, c)), stop)
}

/// The flags a run in `dir` recorded in its checkpoint (`what` names the
/// command, for a checkpoint another command wrote), with the checkpoint.
pub(super) fn recorded_run<O: serde::de::DeserializeOwned>(
    dir: &Path,
    what: &str,
) -> Result<(O, PathBuf, checkpoint::Checkpoint)> {
    let path = dir.join(session::CHECKPOINT);
    let c = checkpoint::read(&path).map_err(|e| Failure::Message(e.to_string()))?;
    let o = serde_json::from_str(&c.run).map_err(|e| {
        Failure::Message(format!(
            "{}: the run description is not {what} ({e})",
            path.display()
        ))
    })?;
    Ok((o, path, c))
}

fn parse_scale(text: &str) -> Result<Scale> {
    text.parse::<Scale>()
        .map_err(|e| Failure::Message(format!("--scale: {e}")))
}

fn sampler(o: &TrainOptions) -> Result<SamplerConfig> {
    if !(o.step > 0.0 && o.step.is_finite()) {
        return fail(format!("--step must be a number > 0, found {}", o.step));
    }
    let mut cfg = runners::sampler_named(&o.sampler).ok_or_else(|| {
        Failure::Message(format!(
            "unknown sampler `{}`; expected ula, mala or hmc",
            o.sampler
        ))
    })?;
    cfg.step = o.step;
    if let SamplerMethod::Ula(_) = cfg.method {
        cfg.method = SamplerMethod::Ula(ula_options(o.noise, o.clamp.as_deref(), o.clip_grad)?);
    } else if o.noise.is_some() {
        return fail("--noise applies to --sampler ula only");
    } else if o.clamp.is_some() || o.clip_grad.is_some() {
        return fail("--clamp and --clip-grad apply to --sampler ula only");
    }
    if let SamplerMethod::Hmc { .. } = cfg.method {
        if o.leapfrog == 0 || o.leapfrog > 10_000 {
            return fail("--leapfrog must be between 1 and 10000");
        }
        cfg.method = SamplerMethod::Hmc {
            leapfrog: o.leapfrog,
        };
        cfg.step_jitter = 0.0;
    }
    Ok(cfg)
}

/// ULA's `--noise σ`, `--clamp A,B` and `--clip-grad C`, validated (shared
/// by `ebm train` and `ebm evaluate`).
pub(super) fn ula_options(
    noise: Option<f64>,
    clamp: Option<&str>,
    clip_grad: Option<f64>,
) -> Result<UlaOptions> {
    let mut u = UlaOptions::default();
    if let Some(n) = noise {
        if !(n >= 0.0 && n.is_finite()) {
            return fail(format!("--noise must be a number ≥ 0, found {n}"));
        }
        u.noise = Some(n);
    }
    if let Some(text) = clamp {
        u.clamp = Some(parse_clamp(text)?);
    }
    if let Some(c) = clip_grad {
        if !(c > 0.0 && c.is_finite()) {
            return fail(format!("--clip-grad must be a number > 0, found {c}"));
        }
        u.clip_grad = Some(c);
    }
    Ok(u)
}

/// `--clamp A,B` (finite, A < B).
fn parse_clamp(text: &str) -> Result<(f64, f64)> {
    match parse_vector("--clamp", text)?[..] {
        [a, b] if a < b && a.is_finite() && b.is_finite() => Ok((a, b)),
        _ => fail(format!("--clamp expects A,B with A < B, found `{text}`")),
    }
}

fn fresh(o: &TrainOptions, data: &Dataset) -> Result<Fresh> {
    match &o.init {
        Some(text) => parse_fresh(text),
        None => Ok(Fresh::around(&data.x)),
    }
}

/// `--init uniform:A,B` or `normal:SD`.
pub(super) fn parse_fresh(text: &str) -> Result<Fresh> {
    let (name, args) = text.split_once(':').unwrap_or((text, ""));
    let v = parse_vector("--init", args)?;
    match (name, &v[..]) {
        ("uniform", &[lo, hi]) if lo < hi && lo.is_finite() && hi.is_finite() => {
            Ok(Fresh::Uniform { lo, hi })
        }
        ("normal", &[sd]) if sd > 0.0 && sd.is_finite() => Ok(Fresh::Normal { sd }),
        _ => fail(format!(
            "--init expects `uniform:A,B` (A < B) or `normal:SD` (SD > 0), found `{text}`"
        )),
    }
}

pub(super) fn decay(text: &str) -> Result<Decay> {
    if text == "none" {
        return Ok(Decay::Constant);
    }
    if text == "cosine" {
        return Ok(Decay::Cosine { floor: 0.0 });
    }
    if let Some(args) = text.strip_prefix("step:") {
        let v = parse_vector("--decay", args)?;
        if let &[every, factor] = &v[..]
            && every >= 1.0
            && every.fract() == 0.0
            && factor > 0.0
            && factor <= 1.0
        {
            return Ok(Decay::Step {
                every: every as usize,
                factor,
            });
        }
    }
    fail(format!(
        "--decay expects `none`, `cosine` or `step:EVERY,FACTOR` (EVERY ≥ 1, 0 < FACTOR ≤ 1), found `{text}`"
    ))
}

fn one() -> usize {
    1
}
fn rademacher() -> String {
    "rademacher".into()
}
fn default_sigma() -> Vec<f64> {
    vec![0.1]
}
fn fitted() -> String {
    "fitted".into()
}

/// The flags of score matching and NCE.
fn method_options(
    o: &TrainOptions,
    method: Method,
    data: &Dataset,
    cfg: &mut TrainConfig,
) -> Result<()> {
    if o.loss != "cd" && !method.samples_negatives() {
        return fail(format!(
            "--loss {}: the contrastive loss variants apply to cd, pcd and icd; `{}` has its own loss",
            o.loss,
            method.name()
        ));
    }
    if !(1..=score::MAX_PROJECTIONS).contains(&o.projections) {
        return fail(format!(
            "--projections must be between 1 and {}, found {}",
            score::MAX_PROJECTIONS,
            o.projections
        ));
    }
    cfg.score.projections = o.projections;
    cfg.score.projection = score::Projection::parse(&o.projection)
        .ok_or_else(|| Failure::Message(format!("unknown --projection `{}`", o.projection)))?;
    if o.sigma.is_empty()
        || o.sigma.len() > 64
        || !o.sigma.iter().all(|s| *s > 0.0 && s.is_finite())
    {
        return fail(format!(
            "--sigma expects 1 to 64 noise levels, each a number > 0, found {:?}",
            o.sigma
        ));
    }
    cfg.score.sigmas = o.sigma.clone();
    if !(1..=64).contains(&o.nce_ratio) {
        return fail(format!(
            "--nce-ratio must be between 1 and 64, found {}",
            o.nce_ratio
        ));
    }
    cfg.nce.ratio = o.nce_ratio;
    cfg.nce.noise = nce_noise(&o.nce_noise)?;
    if method == Method::Sm && data.dim > score::MAX_EXACT_DIM {
        return fail(format!(
            "--method sm takes one Hessian-vector product per coordinate; the data has {} columns (the limit is {}): use --method ssm or dsm",
            data.dim,
            score::MAX_EXACT_DIM
        ));
    }
    Ok(())
}

/// `--nce-noise`: fitted, fitted:SCALE, normal:SD or uniform:A,B.
fn nce_noise(text: &str) -> Result<Noise> {
    Noise::parse(text).ok_or_else(|| {
        Failure::Message(format!(
            "--nce-noise expects `fitted`, `fitted:SCALE`, `normal:SD` or `uniform:A,B` (SCALE, SD > 0; A < B), found `{text}`"
        ))
    })
}

/// Every flag checked, turned into the runner's configuration.
fn config(o: &TrainOptions, data: &Dataset) -> Result<TrainConfig> {
    let method = Method::parse(&o.method)
        .ok_or_else(|| Failure::Message(format!("unknown method `{}`", o.method)))?;
    let mut cfg = TrainConfig::new(method);
    let positive = |flag: &str, v: usize| -> Result<usize> {
        if v == 0 {
            fail(format!("{flag} must be at least 1"))
        } else {
            Ok(v)
        }
    };
    cfg.iters = positive("--iters", o.iters)?;
    cfg.batch = positive("--batch", o.batch)?;
    cfg.sampler_steps = positive("--sampler-steps", o.sampler_steps)?;
    if o.iters > 100_000_000 || o.batch > 1_000_000 || o.sampler_steps > 100_000 {
        return fail(
            "--iters (≤ 1e8), --batch (≤ 1e6) and --sampler-steps (≤ 1e5) are beyond what one run can do",
        );
    }
    cfg.sampler = sampler(o)?;
    cfg.loss = match o.loss.as_str() {
        "softplus" => LossKind::Softplus,
        "logsumexp" => LossKind::Logsumexp,
        _ => LossKind::Cd,
    };
    let finite_nonneg = |flag: &str, v: f64| -> Result<f64> {
        if v >= 0.0 && v.is_finite() {
            Ok(v)
        } else {
            fail(format!("{flag} must be a number ≥ 0, found {v}"))
        }
    };
    cfg.l2 = match o.l2 {
        Some(v) if !method.samples_negatives() => {
            return fail(format!(
                "--l2 {v}: the energy penalty applies to cd, pcd and icd; `{}` has its own loss",
                method.name()
            ));
        }
        Some(v) => finite_nonneg("--l2", v)?,
        None if method.samples_negatives() => 0.05,
        None => 0.0,
    };
    method_options(o, method, data, &mut cfg)?;
    cfg.kl = finite_nonneg("--kl", o.kl)?;
    cfg.entropy = finite_nonneg("--entropy", o.entropy)?;
    cfg.buffer.size = o.buffer;
    if method.persistent() && (o.buffer == 0 || o.buffer > 10_000_000) {
        return fail("--buffer must be between 1 and 10000000 rows");
    }
    if !(0.0..=1.0).contains(&o.reinit) {
        return fail(format!(
            "--reinit must be between 0 and 1, found {}",
            o.reinit
        ));
    }
    cfg.buffer.reinit = o.reinit;
    cfg.buffer.replace = if o.replace == "reservoir" {
        Replace::Reservoir
    } else {
        Replace::Uniform
    };
    cfg.buffer.fresh = fresh(o, data)?;
    if !(o.lr > 0.0 && o.lr.is_finite()) {
        return fail(format!("--lr must be a number > 0, found {}", o.lr));
    }
    cfg.optim.lr = o.lr;
    if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
        return fail("--beta1 and --beta2 must be in [0, 1)");
    }
    cfg.optim.rule = if o.optimizer == "sgd" {
        Rule::Sgd { momentum: o.beta1 }
    } else {
        Rule::Adam {
            beta1: o.beta1,
            beta2: o.beta2,
            eps: 1e-8,
        }
    };
    cfg.optim.weight_decay = finite_nonneg("--weight-decay", o.weight_decay)?;
    if let Some(c) = o.clip
        && !(c > 0.0 && c.is_finite())
    {
        return fail(format!("--clip must be a number > 0, found {c}"));
    }
    cfg.optim.clip_norm = o.clip;
    cfg.optim.warmup = o.lr_warmup;
    cfg.optim.decay = decay(&o.decay)?;
    if let Some(d) = o.ema
        && !(0.0..1.0).contains(&d)
    {
        return fail(format!("--ema must be in [0, 1), found {d}"));
    }
    cfg.optim.ema = o.ema;
    if let Some(b) = o.spectral_norm
        && !(b > 0.0 && b.is_finite())
    {
        return fail(format!("--spectral-norm must be a number > 0, found {b}"));
    }
    cfg.spectral_norm = o.spectral_norm;
    cfg.seed = o.seed;
    cfg.shuffle = !o.no_shuffle;
    cfg.threads = o
        .threads
        .unwrap_or_else(ebm::backend::cpu::default_threads)
        .clamp(1, ebm::sample::run::MAX_THREADS);
    Ok(cfg)
}

pub(super) fn hash_text(text: &str) -> String {
    format!("{:016x}", ebm::data::rng::fnv1a(text))
}

/// Reads the data, checks its width, splits off the held-out rows and scales both.
fn load_data(o: &TrainOptions, dim: usize) -> Result<ebm::train::Prepared> {
    let path = o.data.as_deref().unwrap_or(Path::new(""));
    let data = super::read_dataset(
        path,
        o.columns.as_deref(),
        o.label.as_deref(),
        o.seed,
        10_000,
    )?;
    data.check_width(dim)
        .map_err(|e| Failure::Message(format!("{}: {e}", path.display())))?;
    if !(0.0..1.0).contains(&o.heldout) {
        return fail(format!("--heldout must be in [0, 1), found {}", o.heldout));
    }
    Ok(ebm::train::prepare(
        data,
        o.heldout,
        o.seed,
        parse_scale(&o.scale)?,
    ))
}

/// The training and held-out rows' concept codes (none when unconditional).
type Codes = (Option<Vec<f64>>, Option<Vec<f64>>);

/// A conditional energy's one-hot concept codes for the training and
/// held-out rows, from their labels (`--label`).
fn concept_codes(
    energy: &ebm::runtime::CompiledEnergy,
    name: &str,
    train: &Dataset,
    heldout: Option<&Dataset>,
) -> Result<Codes> {
    let width = energy.cond_dim();
    if width == 0 {
        return Ok((None, None));
    }
    let Some(labels) = &train.labels else {
        return fail(format!(
            "`{name}` is conditional (its `c` has {width} values): give --label COLUMN, a row labelled l trains E(x | c) with c = onehot(l, {width})"
        ));
    };
    let codes = |l: &[i64]| concepts::one_hot_codes(l, width).map_err(Failure::Message);
    let held = match heldout.and_then(|h| h.labels.as_deref()) {
        Some(l) => Some(codes(l)?),
        None => None,
    };
    Ok((Some(codes(labels)?), held))
}

fn start(
    o: &TrainOptions,
    resumed: Option<(PathBuf, checkpoint::Checkpoint)>,
    stop: Arc<AtomicBool>,
) -> Result<String> {
    let program = o
        .program
        .clone()
        .ok_or_else(|| Failure::Message("the run names no program".into()))?;
    let file = super::read_source(&program, "train")?;
    let hash = hash_text(&file.text);
    if resumed.is_some() && o.program_hash.as_deref() != Some(hash.as_str()) {
        return fail(format!(
            "{} changed since the checkpoint was written; resume needs the same program",
            program.display()
        ));
    }
    let energy_name = o.energy.clone().unwrap_or_default();
    let out = o.out.clone().unwrap_or_default();
    let module = analyze(&file)?;
    let store = pipeline::param_store(&module)?;
    let energy = pipeline::compile_energy(
        &file,
        &module,
        &energy_name,
        store.clone(),
        backend_named(&o.backend)?,
        dtype_named(&o.dtype)?,
    )?;
    let ebm::train::Prepared {
        train,
        heldout: held,
        scale,
    } = load_data(o, energy.dim())?;
    let cfg = config(o, &train)?;
    if let Some(p) = &o.init_params {
        checkpoint::load_params(p, &store).map_err(|e| Failure::Message(e.to_string()))?;
    }
    let mut recorded = o.clone();
    recorded.program_hash = Some(hash);
    let run = serde_json::to_string(&recorded)
        .map_err(|e| Failure::Message(format!("cannot record the run: {e}")))?;
    let mut metadata = checkpoint::run_metadata(&energy_name, scale.as_ref());
    for (k, v) in cfg.describe() {
        metadata.insert(format!("ebm.train.{k}"), v);
    }
    let (train_codes, heldout_codes) = concept_codes(&energy, &energy_name, &train, held.as_ref())?;
    let mut trainer = match &train_codes {
        Some(codes) => Trainer::conditional(
            &energy,
            &train.x,
            Concepts {
                of_row: codes,
                width: energy.cond_dim(),
            },
            cfg,
        ),
        None => Trainer::new(&energy, &train.x, cfg),
    }
    .map_err(|e| Failure::Message(e.to_string()))?;
    if let Some((path, c)) = &resumed {
        let state =
            checkpoint::restore(path, c, &trainer).map_err(|e| Failure::Message(e.to_string()))?;
        trainer = trainer
            .with_state(state)
            .map_err(|e| Failure::Message(e.to_string()))?;
    }
    let session = Session {
        dir: out.clone(),
        checkpoint_every: o.checkpoint_every,
        snapshot_every: o.snapshot_every,
        eval_every: o.eval_every,
        progress: true,
        run,
        metadata,
        heldout: held.map(|h| h.x),
        heldout_labels: None,
        heldout_cond: heldout_codes,
        stop_after: o.stop_after,
    };
    let mut report =
        session::run(&mut trainer, &session, &stop).map_err(|e| Failure::Message(e.to_string()))?;
    report.files.push(super::model::write_trained(
        &file,
        &module,
        &store,
        &[energy_name],
        scale.as_ref(),
        &out,
    )?);
    Ok(describe(&report, &out))
}

pub(super) fn describe(r: &session::Report, out: &Path) -> String {
    let mut text = String::new();
    if r.interrupted {
        text.push_str(&format!(
            "interrupted after {} iterations; resume with: ebm train --resume {}\n",
            r.ran,
            out.display()
        ));
    }
    if let Some(last) = &r.last {
        text.push_str(&format!(
            "trained {} iterations ({} this run) in {:.2} s, {:.1} it/s; last loss {:.5} (E+ {:.4}, E- {:.4})\n",
            last.it + 1,
            r.ran,
            r.seconds,
            r.iters_per_s(),
            last.loss,
            last.e_pos,
            last.e_neg
        ));
    }
    if let Some(device) = &r.device {
        text.push_str(&format!("  device: {device}\n"));
    }
    if let Some((it, v)) = r.best {
        text.push_str(&format!(
            "best held-out score {v:.5} at iteration {it} (best.safetensors)\n"
        ));
    }
    text.push_str(&format!("rollbacks: {}\n", r.rollbacks.len()));
    for rb in r.rollbacks.iter().take(10) {
        text.push_str(&format!("  iteration {}: {}\n", rb.iteration, rb.cause));
    }
    for f in &r.files {
        text.push_str(&format!("wrote {}\n", f.display()));
    }
    text
}
