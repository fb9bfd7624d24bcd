//! `ebm jem` (train a classifier as JEM, or as a plain classifier with
//! `--baseline`), `ebm evaluate --model` (accuracy, calibration, OOD
//! detection, class-conditional samples) and `ebm predict` (logits,
//! probabilities and classes per row). Flags are read into the library's
//! `TrainConfig`, `train::classify` and `stats::classify` types here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ebm::data::Dataset;
use ebm::pipeline;
use ebm::sample::{Method as SamplerMethod, SamplerConfig};
use ebm::train::classify::{self, Classifier, ConditionalSampling};
use ebm::train::session::{self, Session};
use ebm::train::{Labels, Objective, TrainConfig, Trainer, checkpoint};

use super::{Failure, Result, analyze, backend_named, dtype_named, fail};

/// The flags of `ebm jem` (stored in each checkpoint for `--resume`).
#[derive(Clone, Debug, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct JemOptions {
    /// The classifier: `model NAME(x: [...]) -> [K]`, its outputs the logits.
    #[arg(long, required_unless_present = "resume")]
    pub model: Option<String>,
    /// Labelled training data (.csv with a header line, or .npy).
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// The label column: integers 0..K−1. Every other column is an input
    /// feature, in file order (or those of --columns).
    #[arg(long, required_unless_present = "resume")]
    pub label: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Leave these classes out of training (comma-separated): the
    /// held-out-classes OOD experiment (`ebm evaluate --exclude-classes`).
    #[arg(long, value_delimiter = ',')]
    pub exclude_classes: Option<Vec<usize>>,
    /// Train the same network by cross-entropy only (no p(x) term, no
    /// negatives): the plain-classifier baseline.
    #[arg(long)]
    pub baseline: bool,
    /// Weight of the p(x) term mean E(x+) − mean E(x−).
    #[arg(long, default_value_t = 1.0)]
    pub px_weight: f64,
    /// Scaling of the features: none, standardize, minmax:A,B (per column)
    /// or range:A,B (one map for all columns, for images). JEM's negatives
    /// start from U[−1, 1], so scale the data to that range.
    #[arg(long, default_value = "none")]
    pub scale: String,
    /// Fraction of rows held out to score the model (held-out cross-entropy,
    /// best parameters kept in best.safetensors); 0 for none.
    #[arg(long, default_value_t = 0.1)]
    pub heldout: f64,
    #[arg(long)]
    pub no_shuffle: bool,
    #[arg(long, default_value_t = 2000)]
    pub iters: usize,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// SGLD steps per iteration.
    #[arg(long, default_value_t = 20)]
    pub sgld_steps: usize,
    /// SGLD step α in x ← x − α∇ₓE(x) + σξ.
    #[arg(long, default_value_t = 1.0)]
    pub sgld_step: f64,
    /// SGLD noise σ.
    #[arg(long, default_value_t = 0.01)]
    pub sgld_noise: f64,
    /// Keep the negatives in [A, B] after every step.
    #[arg(long, allow_hyphen_values = true)]
    pub clamp: Option<String>,
    /// Replay buffer rows.
    #[arg(long, default_value_t = 10000)]
    pub buffer: usize,
    /// Probability that a negative restarts from fresh noise.
    #[arg(long, default_value_t = 0.05)]
    pub reinit: f64,
    /// Fresh noise: uniform:A,B or normal:SD.
    #[arg(long, default_value = "uniform:-1,1", allow_hyphen_values = true)]
    pub init: String,
    #[arg(long, default_value = "adam", value_parser = ["adam", "sgd"])]
    pub optimizer: String,
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Learning-rate decay: none, cosine, or step:EVERY,FACTOR.
    #[arg(long, default_value = "none")]
    pub decay: String,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip the gradient's global norm to this.
    #[arg(long)]
    pub clip: Option<f64>,
    /// Start from the parameters in this safetensors file.
    #[arg(long)]
    pub init_params: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "f32", value_parser = ["f32", "f64"])]
    pub dtype: String,
    #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu", "gpu"])]
    pub backend: String,
    #[arg(long)]
    pub threads: Option<usize>,
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
    #[arg(long)]
    #[serde(skip)]
    pub stop_after: Option<usize>,
    /// Continue the run in DIR from its checkpoint.
    #[arg(long, conflicts_with_all = ["model", "data", "out"])]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    #[arg(skip)]
    pub program: Option<PathBuf>,
    #[arg(skip)]
    pub program_hash: Option<String>,
}

/// `ebm jem FILE ...` or `ebm jem --resume DIR`.
pub fn jem(path: Option<&Path>, o: &JemOptions, stop: Arc<AtomicBool>) -> Result<String> {
    match (&o.resume, path) {
        (Some(dir), None) => {
            let (mut r, cp, c) = super::train::recorded_run::<JemOptions>(dir, "an `ebm jem` run")?;
            r.stop_after = o.stop_after;
            start(&r, Some((cp, c)), stop)
        }
        (Some(_), Some(_)) => {
            fail("--resume DIR continues a run as it was configured: give no FILE")
        }
        (None, Some(p)) => {
            let mut o = o.clone();
            o.program = Some(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
            start(&o, None, stop)
        }
        (None, None) => fail("ebm jem needs the program FILE (or --resume DIR)"),
    }
}

/// Labels as class indices below `classes`, or an error naming the row.
pub fn class_labels(data: &Dataset, column: &str, classes: usize) -> Result<Vec<usize>> {
    let Some(labels) = &data.labels else {
        return fail(format!("--label {column}: the data has no label column"));
    };
    labels
        .iter()
        .enumerate()
        .map(|(row, &y)| {
            if y >= 0 && (y as u64) < classes as u64 {
                Ok(y as usize)
            } else {
                fail(format!(
                    "{}: row {} has label {y} in column `{column}`; the model has {classes} classes, so labels must be 0..{}",
                    data.source,
                    row + 1,
                    classes - 1
                ))
            }
        })
        .collect()
}

/// The rows whose label is not in `excluded`.
fn without_classes(data: Dataset, excluded: &[usize]) -> Dataset {
    if excluded.is_empty() {
        return data;
    }
    let labels = data.labels.clone().unwrap_or_default();
    let keep: Vec<usize> = (0..data.rows)
        .filter(|&r| !excluded.iter().any(|&c| labels.get(r) == Some(&(c as i64))))
        .collect();
    let mut x = Vec::with_capacity(keep.len() * data.dim);
    for &r in &keep {
        x.extend_from_slice(data.row(r));
    }
    Dataset {
        x,
        rows: keep.len(),
        labels: Some(keep.iter().map(|&r| labels[r]).collect()),
        ..data
    }
}

fn config(o: &JemOptions) -> Result<TrainConfig> {
    if !(o.px_weight >= 0.0 && o.px_weight.is_finite()) {
        return fail(format!(
            "--px-weight must be a number ≥ 0, found {}",
            o.px_weight
        ));
    }
    let mut cfg = TrainConfig::jem(o.px_weight);
    if o.baseline {
        cfg.objective = Objective::Classifier;
    }
    if o.iters == 0 || o.batch == 0 || (!o.baseline && o.sgld_steps == 0) {
        return fail("--iters, --batch and --sgld-steps must each be at least 1");
    }
    if o.iters > 100_000_000 || o.batch > 1_000_000 || o.sgld_steps > 100_000 {
        return fail(
            "--iters (≤ 1e8), --batch (≤ 1e6) and --sgld-steps (≤ 1e5) are beyond what one run can do",
        );
    }
    cfg.iters = o.iters;
    cfg.batch = o.batch;
    cfg.sampler_steps = o.sgld_steps;
    if !(o.sgld_step > 0.0 && o.sgld_step.is_finite()) {
        return fail(format!(
            "--sgld-step must be a number > 0, found {}",
            o.sgld_step
        ));
    }
    let mut s = SamplerConfig::ula(o.sgld_step);
    s.method = SamplerMethod::Ula(super::train::ula_options(
        Some(o.sgld_noise),
        o.clamp.as_deref(),
        None,
    )?);
    cfg.sampler = s;
    if o.buffer == 0 || o.buffer > 10_000_000 {
        return fail("--buffer must be between 1 and 10000000 rows");
    }
    if !(0.0..=1.0).contains(&o.reinit) {
        return fail(format!(
            "--reinit must be between 0 and 1, found {}",
            o.reinit
        ));
    }
    cfg.buffer.size = o.buffer;
    cfg.buffer.reinit = o.reinit;
    cfg.buffer.fresh = super::train::parse_fresh(&o.init)?;
    if !(o.lr > 0.0 && o.lr.is_finite()) {
        return fail(format!("--lr must be a number > 0, found {}", o.lr));
    }
    cfg.optim.lr = o.lr;
    if o.optimizer == "sgd" {
        cfg.optim.rule = ebm::train::optim::Rule::Sgd { momentum: 0.9 };
    }
    cfg.optim.decay = super::train::decay(&o.decay)?;
    if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
        return fail(format!(
            "--weight-decay must be a number ≥ 0, found {}",
            o.weight_decay
        ));
    }
    cfg.optim.weight_decay = o.weight_decay;
    if let Some(c) = o.clip
        && !(c > 0.0 && c.is_finite())
    {
        return fail(format!("--clip must be a number > 0, found {c}"));
    }
    cfg.optim.clip_norm = o.clip;
    cfg.seed = o.seed;
    cfg.shuffle = !o.no_shuffle;
    cfg.threads = o
        .threads
        .unwrap_or_else(ebm::backend::cpu::default_threads)
        .clamp(1, ebm::sample::run::MAX_THREADS);
    Ok(cfg)
}

/// Compiles `name` as a model and wraps it with its JEM energies.
fn classifier(
    file: &pipeline::SourceFile,
    module: &ebm::sema::Module,
    name: &str,
    store: Arc<ebm::runtime::ParamStore>,
    backend: &str,
    dtype: &str,
) -> Result<Classifier> {
    let model = pipeline::compile_model(
        file,
        module,
        name,
        store,
        backend_named(backend)?,
        dtype_named(dtype)?,
    )?;
    Classifier::new(model).map_err(|e| Failure::Message(e.to_string()))
}

fn start(
    o: &JemOptions,
    resumed: Option<(PathBuf, checkpoint::Checkpoint)>,
    stop: Arc<AtomicBool>,
) -> Result<String> {
    let program = o
        .program
        .clone()
        .ok_or_else(|| Failure::Message("the run names no program".into()))?;
    let file = super::read_source(&program, "jem")?;
    let hash = super::train::hash_text(&file.text);
    if resumed.is_some() && o.program_hash.as_deref() != Some(hash.as_str()) {
        return fail(format!(
            "{} changed since the checkpoint was written; resume needs the same program",
            program.display()
        ));
    }
    let name = o.model.clone().unwrap_or_default();
    let label = o.label.clone().unwrap_or_default();
    let out = o.out.clone().unwrap_or_default();
    let cfg = config(o)?;
    let module = analyze(&file)?;
    let store = pipeline::param_store(&module)?;
    let c = classifier(&file, &module, &name, store.clone(), &o.backend, &o.dtype)?;
    let path = o.data.clone().unwrap_or_default();
    let data = Dataset::from_file(&path, o.columns.as_deref(), Some(&label))
        .map_err(|e| Failure::Message(format!("{}: {e}", path.display())))?;
    data.check_width(c.dim())
        .map_err(|e| Failure::Message(format!("{}: {e}", path.display())))?;
    class_labels(&data, &label, c.classes)?;
    let excluded = o.exclude_classes.clone().unwrap_or_default();
    if let Some(&bad) = excluded.iter().find(|&&k| k >= c.classes) {
        return fail(format!(
            "--exclude-classes: class {bad} is not one of the model's {} classes",
            c.classes
        ));
    }
    let data = without_classes(data, &excluded);
    if !(0.0..1.0).contains(&o.heldout) {
        return fail(format!("--heldout must be in [0, 1), found {}", o.heldout));
    }
    let scale = o
        .scale
        .parse::<ebm::data::dataset::Scale>()
        .map_err(|e| Failure::Message(format!("--scale: {e}")))?;
    let prepared = ebm::train::prepare(data, o.heldout, o.seed, scale);
    let labels = class_labels(&prepared.train, &label, c.classes)?;
    let held_labels = match &prepared.heldout {
        Some(h) => Some(class_labels(h, &label, c.classes)?),
        None => None,
    };
    if let Some(p) = &o.init_params {
        checkpoint::load_params(p, &store).map_err(|e| Failure::Message(e.to_string()))?;
    }
    let mut recorded = o.clone();
    recorded.program_hash = Some(hash);
    let run = serde_json::to_string(&recorded)
        .map_err(|e| Failure::Message(format!("cannot record the run: {e}")))?;
    let mut metadata = checkpoint::run_metadata(&name, prepared.scale.as_ref());
    metadata.insert("ebm.model".into(), name.clone());
    if !excluded.is_empty() {
        metadata.insert("ebm.jem.exclude_classes".into(), format!("{excluded:?}"));
    }
    for (k, v) in cfg.describe() {
        metadata.insert(format!("ebm.train.{k}"), v);
    }
    let lab = Labels {
        of_row: &labels,
        classes: c.classes,
    };
    let mut trainer = Trainer::classifier(&c.energy, &c.model, &prepared.train.x, lab, cfg)
        .map_err(|e| Failure::Message(e.to_string()))?;
    if let Some((path, cp)) = &resumed {
        let state =
            checkpoint::restore(path, cp, &trainer).map_err(|e| Failure::Message(e.to_string()))?;
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
        heldout: prepared.heldout.map(|h| h.x),
        heldout_labels: held_labels,
        heldout_cond: None,
        stop_after: o.stop_after,
    };
    let mut report =
        session::run(&mut trainer, &session, &stop).map_err(|e| Failure::Message(e.to_string()))?;
    report.files.push(super::model::write_trained(
        &file,
        &module,
        &store,
        std::slice::from_ref(&name),
        prepared.scale.as_ref(),
        &out,
    )?);
    let mut text = super::train::describe(&report, &out);
    if let Some(last) = &report.last
        && let (Some(ce), Some(acc)) = (last.ce, last.acc)
    {
        text.push_str(&format!(
            "last batch: cross-entropy {ce:.5}, accuracy {acc:.4}\n"
        ));
    }
    Ok(text
        .replace("ebm train --resume", "ebm jem --resume")
        .replace(", E- NaN)", "; no negatives)")
        .replace("best held-out score", "best held-out cross-entropy"))
}

/// The flags `ebm evaluate --model` adds to `ebm evaluate`.
pub struct ClassifierEval<'a> {
    pub model: &'a str,
    pub params: Option<&'a Path>,
    pub data: &'a Path,
    pub columns: Option<&'a [String]>,
    pub label: Option<&'a str>,
    pub exclude: &'a [usize],
    pub reliability: Option<&'a Path>,
    pub samples: Option<&'a Path>,
    pub image: Option<Vec<usize>>,
    pub per_class: usize,
    pub sgld_steps: usize,
    pub sgld_step: f64,
    pub sgld_noise: f64,
    pub seed: u64,
    pub dtype: &'a str,
    pub backend: &'a str,
    pub json: bool,
}

/// `ebm evaluate FILE --model NAME --data TEST.csv --label COL`.
pub fn evaluate(path: &Path, o: &ClassifierEval) -> Result<String> {
    for p in [o.reliability, o.samples].into_iter().flatten() {
        if !super::has_ext(p, &["png"]) {
            return fail(format!(
                "expected a file name ending in .png, found `{}`",
                p.display()
            ));
        }
    }
    let Some(label) = o.label else {
        return fail("ebm evaluate --model needs --label COLUMN (the test rows' classes)");
    };
    if o.per_class == 0 || o.per_class > 1000 || o.sgld_steps == 0 || o.sgld_steps > 100_000 {
        return fail("--per-class must be in 1..=1000 and --sgld-steps in 1..=100000");
    }
    let file = super::read_source(path, "evaluate")?;
    let module = analyze(&file)?;
    let store = pipeline::param_store(&module)?;
    let scale = match o.params {
        Some(p) => super::sample::load_trained(p, &store)?,
        None => None,
    };
    let c = classifier(&file, &module, o.model, store, o.backend, o.dtype)?;
    let work = (c.classes * o.per_class) as f64 * o.sgld_steps as f64;
    if o.samples.is_some() && work > ebm::sample::run::MAX_EVALUATIONS {
        return fail(format!(
            "--samples asks for about {work:.1e} evaluations ({} classes × {} per class × {} steps); the limit is {:.0e}: use fewer --per-class or --sgld-steps",
            c.classes,
            o.per_class,
            o.sgld_steps,
            ebm::sample::run::MAX_EVALUATIONS
        ));
    }
    let mut data = Dataset::from_file(o.data, o.columns, Some(label))
        .map_err(|e| Failure::Message(format!("{}: {e}", o.data.display())))?;
    data.check_width(c.dim())
        .map_err(|e| Failure::Message(format!("{}: {e}", o.data.display())))?;
    let labels = class_labels(&data, label, c.classes)?;
    if let Some(&bad) = o.exclude.iter().find(|&&k| k >= c.classes) {
        return fail(format!(
            "--exclude-classes: class {bad} is not one of the model's {} classes",
            c.classes
        ));
    }
    if let Some(shape) = &o.image
        && shape.iter().product::<usize>() != c.dim()
    {
        return fail(format!(
            "--image holds {} values; `{}` takes {}",
            shape.iter().product::<usize>(),
            o.model,
            c.dim()
        ));
    }
    if let Some(sc) = &scale {
        sc.apply(&mut data.x);
    }
    let range = value_range(&data.x);
    let report = classify::evaluate(&c, &data.x, &labels, o.exclude, range, o.seed)
        .map_err(|e| Failure::Message(e.to_string()))?;
    let mut wrote = Vec::new();
    if let Some(p) = o.reliability {
        ebm::plot::reliability(p, &report.calibration, &format!("{}: reliability", o.model))
            .map_err(Failure::Message)?;
        wrote.push(p.to_path_buf());
    }
    if let Some(p) = o.samples {
        conditional_grid(&c, o, range, p)?;
        wrote.push(p.to_path_buf());
    }
    let mut out = if o.json {
        format!("{}\n", report_json(&report))
    } else {
        report_text(&report)
    };
    if !o.json {
        for p in wrote {
            out.push_str(&format!("wrote {}\n", p.display()));
        }
    }
    Ok(out)
}

/// The smallest and largest finite value (−1..1 when there is none).
fn value_range(x: &[f64]) -> (f64, f64) {
    let (lo, hi) = x
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |m, &v| {
            (m.0.min(v), m.1.max(v))
        });
    if lo < hi { (lo, hi) } else { (-1.0, 1.0) }
}

/// Class-conditional SGLD samples from uniform noise on the data's range,
/// one row of `per_class` images per class.
fn conditional_grid(
    c: &Classifier,
    o: &ClassifierEval,
    range: (f64, f64),
    png: &Path,
) -> Result<()> {
    let shape = o
        .image
        .clone()
        .or_else(|| (c.model.x_shape().len() >= 2).then(|| c.model.x_shape()))
        .ok_or_else(|| {
            Failure::Message(
                "--samples draws images: give --image HxW (e.g. 8x8) for a model on flat inputs"
                    .into(),
            )
        })?;
    let mut s = SamplerConfig::ula(o.sgld_step);
    s.method = SamplerMethod::Ula(super::train::ula_options(
        Some(o.sgld_noise),
        Some(&format!("{},{}", range.0, range.1)),
        None,
    )?);
    let cfg = ConditionalSampling {
        per_class: o.per_class,
        steps: o.sgld_steps,
        sampler: s,
        range,
        seed: o.seed,
        threads: ebm::backend::cpu::default_threads(),
    };
    let x = classify::conditional_samples(c, &cfg).map_err(|e| Failure::Message(e.to_string()))?;
    let d = c.dim();
    let n = x.len() / d;
    let mut draws = ebm::sample::Draws::empty(n, 1, d);
    draws.x.copy_from_slice(&x);
    ebm::plot::image_rows(
        png,
        &draws,
        &shape,
        o.per_class,
        &format!(
            "{}: samples of E(x|y), one row per class 0..{}",
            o.model,
            c.classes - 1
        ),
    )
    .map_err(Failure::Message)
}

fn report_json(r: &classify::Report) -> String {
    let cal = &r.calibration;
    let bins: Vec<serde_json::Value> = cal
        .bins
        .iter()
        .map(|b| {
            serde_json::json!({"lo": b.lo, "hi": b.hi, "count": b.count,
                "confidence": b.confidence, "accuracy": b.accuracy})
        })
        .collect();
    serde_json::json!({
        "rows": r.rows,
        "accuracy": cal.accuracy,
        "ece": cal.ece,
        "nll": cal.nll,
        "auroc": r.auroc,
        "reliability": bins,
    })
    .to_string()
}

fn report_text(r: &classify::Report) -> String {
    let cal = &r.calibration;
    let mut t = format!(
        "rows {}\naccuracy {:.4}\nece {:.4} ({} bins)\nnll {:.4}\nauroc (higher: the score separates the test rows from the set)\n",
        r.rows,
        cal.accuracy,
        cal.ece,
        classify::ECE_BINS,
        cal.nll
    );
    t.push_str(&format!("  {:<10}", "set"));
    for s in classify::SCORES {
        t.push_str(&format!(" {s:>10}"));
    }
    t.push('\n');
    for (set, per) in &r.auroc {
        t.push_str(&format!("  {set:<10}"));
        for s in classify::SCORES {
            t.push_str(&format!(
                " {:>10.4}",
                per.get(s).copied().unwrap_or(f64::NAN)
            ));
        }
        t.push('\n');
    }
    t
}

/// The flags of `ebm predict`.
#[derive(Clone, Debug, clap::Args)]
pub struct PredictOptions {
    /// The classifier model.
    #[arg(long)]
    pub model: String,
    /// Trained parameters (params.safetensors of `ebm jem`); their recorded
    /// scaling is applied to the data.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Inputs: .csv with a header line, or .npy.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// A label column to leave out of the features (and score against).
    #[arg(long)]
    pub label: Option<String>,
    /// Write the predictions as CSV here (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// JSON lines instead of CSV: {"class", "probs", "logits"} per row.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
    pub dtype: String,
    #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu", "gpu"])]
    pub backend: String,
}

/// The classifier `ebm predict` names, from source (with `--params` and
/// the scaling they record) or from a model file (its scaling inside).
fn trained_classifier(
    path: &Path,
    o: &PredictOptions,
) -> Result<(Classifier, Option<ebm::data::Scaler>)> {
    let file = match super::open(path)? {
        super::Program::Source(file) => file,
        super::Program::Model(m) => {
            let model = m
                .model_with(&o.model, backend_named(&o.backend)?, dtype_named(&o.dtype)?)
                .map_err(Failure::Message)?;
            if let Some(p) = &o.params {
                super::sample::load_trained(p, model.store())?;
            }
            let c = Classifier::new(model).map_err(|e| Failure::Message(e.to_string()))?;
            return Ok((c, None));
        }
    };
    let module = analyze(&file)?;
    let store = pipeline::param_store(&module)?;
    let scale = match &o.params {
        Some(p) => super::sample::load_trained(p, &store)?,
        None => None,
    };
    let c = classifier(&file, &module, &o.model, store, &o.backend, &o.dtype)?;
    Ok((c, scale))
}

/// `ebm predict FILE --model NAME --data X.csv`.
pub fn predict(path: &Path, o: &PredictOptions) -> Result<String> {
    if let Some(p) = &o.out
        && !super::has_ext(p, &["csv", "json", "jsonl"])
    {
        return fail(format!(
            "--out expects a .csv (or, with --json, .json/.jsonl) file name, found `{}`",
            p.display()
        ));
    }
    let (c, scale) = trained_classifier(path, o)?;
    let mut data = Dataset::from_file(&o.data, o.columns.as_deref(), o.label.as_deref())
        .map_err(|e| Failure::Message(format!("{}: {e}", o.data.display())))?;
    data.check_width(c.dim())
        .map_err(|e| Failure::Message(format!("{}: {e}", o.data.display())))?;
    if let Some(sc) = &scale {
        sc.apply(&mut data.x);
    }
    let k = c.classes;
    let logits = c
        .logits(&data.x, data.rows)
        .map_err(|e| Failure::Message(e.to_string()))?;
    let probs = ebm::stats::classify::softmax(&logits, k);
    let class = ebm::stats::classify::argmax(&logits, k);
    let text = if o.json {
        predictions_json(&logits, &probs, &class, k)
    } else {
        predictions_csv(&logits, &probs, &class, k)
    };
    let mut summary = format!("{} rows, {k} classes\n", data.rows);
    if let (Some(col), Some(_)) = (&o.label, &data.labels) {
        let y = class_labels(&data, col, k)?;
        let hits = y.iter().zip(&class).filter(|(a, b)| a == b).count();
        summary.push_str(&format!(
            "accuracy {:.4} against column `{col}`\n",
            hits as f64 / data.rows.max(1) as f64
        ));
    }
    match &o.out {
        Some(p) => {
            ebm::data::atomic::write_atomic(p, text.as_bytes()).map_err(Failure::Message)?;
            Ok(format!("{summary}wrote {}\n", p.display()))
        }
        None => {
            eprint!("{summary}");
            Ok(text)
        }
    }
}

fn predictions_csv(logits: &[f64], probs: &[f64], class: &[usize], k: usize) -> String {
    let mut t = String::from("class");
    (0..k).for_each(|j| t.push_str(&format!(",p{j}")));
    (0..k).for_each(|j| t.push_str(&format!(",logit{j}")));
    t.push('\n');
    for (i, c) in class.iter().enumerate() {
        t.push_str(&c.to_string());
        for v in &probs[i * k..(i + 1) * k] {
            t.push_str(&format!(",{v}"));
        }
        for v in &logits[i * k..(i + 1) * k] {
            t.push_str(&format!(",{v}"));
        }
        t.push('\n');
    }
    t
}

fn predictions_json(logits: &[f64], probs: &[f64], class: &[usize], k: usize) -> String {
    let mut t = String::new();
    for (i, c) in class.iter().enumerate() {
        let row = serde_json::json!({
            "class": c,
            "probs": &probs[i * k..(i + 1) * k],
            "logits": &logits[i * k..(i + 1) * k],
        });
        t.push_str(&row.to_string());
        t.push('\n');
    }
    t
}
