//! The training statements of scripts: data sets (`data NAME = csv(..)`,
//! `npy(..)` or a toy set such as `two_moons(..)`), `train(ENERGY, DATA,
//! ..)`, `evaluate(ENERGY, DATA, ..)` and `load_params("file")`.
//!
//! Data files are read and validated when the script is checked, so bad
//! data (ragged rows, NaN, a width that does not fit the energy) is a
//! diagnostic at the path before anything runs. `train` updates the
//! program's parameter store in place: every later statement (`sample`,
//! `plot`, `print`, `evaluate`) sees the trained parameters.

use std::path::PathBuf;

use super::args::{DataInfo, R, Scope, bind, call_parts, keep};
use super::errors as err;
use super::runners::parse_sampler;
use crate::backend::DType;
use crate::data::{Dataset, Scale, TOY_NAMES};
use crate::diag::{Diagnostic, Span};
use crate::sema::DefKind;
use crate::sema::Statement;
use crate::syntax::ast::{Expr, ExprKind};
use crate::train::{Method, Objective, TrainConfig};

/// The calls a `data` item may use.
pub const FILE_SOURCES: &[&str] = &["csv", "npy"];

/// A data set, read (and split and scaled) at check time.
#[derive(Clone, Debug)]
pub struct DataSpec {
    pub name: String,
    pub train: Dataset,
    pub heldout: Option<Dataset>,
    /// x' = (x − shift)·mul, when the data were scaled.
    pub scale: Option<crate::data::Scaler>,
    /// The toy set's name (a known density for KL), when it is one.
    pub toy: Option<(String, f64)>,
}

/// `train(..)`, checked.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    pub energy: String,
    pub data: String,
    pub config: TrainConfig,
    pub dtype: DType,
    pub out: PathBuf,
    pub checkpoint_every: usize,
    pub snapshot_every: usize,
    /// Whether `init` chose the fresh noise's range (else: the data's range,
    /// padded by 10%).
    pub init_given: bool,
    pub span: Span,
}

/// `jem(..)`, checked.
#[derive(Clone, Debug)]
pub struct JemSpec {
    pub model: String,
    pub data: String,
    pub config: TrainConfig,
    pub dtype: DType,
    pub out: PathBuf,
    pub checkpoint_every: usize,
    pub span: Span,
}

/// The width and label range of a checked data set.
pub fn data_info(d: &DataSpec) -> DataInfo {
    let labels = d.train.labels.as_ref().and_then(|l| {
        let lo = l
            .iter()
            .chain(d.heldout.iter().flat_map(|h| h.labels.iter().flatten()));
        let lo: Vec<i64> = lo.copied().collect();
        Some((*lo.iter().min()?, *lo.iter().max()?))
    });
    DataInfo {
        width: d.train.dim,
        labels,
    }
}

/// `evaluate(..)`, checked.
#[derive(Clone, Debug)]
pub struct EvaluateSpec {
    /// The energy, or with `model` the classifier.
    pub energy: String,
    pub model: bool,
    pub data: String,
    pub chains: usize,
    pub steps: usize,
    pub step: f64,
    pub seed: u64,
    pub span: Span,
}

/// `data NAME = csv("file.csv", columns = "a,b", label = "y", scale = "standardize", heldout = 0.1, seed = 0)`,
/// `npy(..)` likewise, or `two_moons(n = 10000, noise = 0.1, seed = 0, heldout = 0.1)`.
pub fn parse_data(scope: &mut Scope, stmt: &Statement) -> R<DataSpec> {
    let name = stmt.binding.clone().unwrap_or_default();
    let Some((source, callee_span, args)) = call_parts(&stmt.call) else {
        return Err(vec![not_a_source(stmt.call.span)]);
    };
    let mut diags = Vec::new();
    let file = FILE_SOURCES.contains(&source);
    if !file && !TOY_NAMES.contains(&source) {
        return Err(vec![not_a_source(callee_span)]);
    }
    let names: &'static [&'static str] = if file {
        &["file", "columns", "label", "scale", "heldout", "seed"]
    } else {
        &["n", "noise", "seed", "scale", "heldout"]
    };
    let a = bind(source, stmt.call.span, args, names, 1, &mut diags);
    let seed = match a.get("seed") {
        Some(v) => keep(&mut diags, scope.count(v, "seed", 0, 1 << 53)),
        None => Some(0),
    };
    let heldout = match a.get("heldout") {
        Some(v) => keep(&mut diags, scope.number(v, "heldout")).and_then(|h| {
            if (0.0..1.0).contains(&h) {
                Some(h)
            } else {
                diags.push(err::out_of_range(
                    "heldout",
                    "a fraction in [0, 1)",
                    &h.to_string(),
                    v.span,
                ));
                None
            }
        }),
        None => Some(0.0),
    };
    let scale = match a.get("scale") {
        Some(v) => keep(
            &mut diags,
            scope.string(
                v,
                "scale",
                "none, standardize, minmax:A,B or range:A,B in quotes",
            ),
        )
        .and_then(|s| match s.parse::<Scale>() {
            Ok(sc) => Some(sc),
            Err(e) => {
                diags.push(err::bad_data(&e.to_string(), v.span));
                None
            }
        }),
        None => Some(Scale::None),
    };
    let (data, toy) = if file {
        (
            read_file(scope, &a, source, stmt.call.span, &mut diags),
            None,
        )
    } else {
        let n = match a.get("n") {
            Some(v) => keep(&mut diags, scope.count(v, "n", 1, 10_000_000)),
            None => Some(10_000),
        };
        let noise = match a.get("noise") {
            Some(v) => keep(&mut diags, scope.positive(v, "noise", false)).map(Some),
            None => Some(None),
        };
        let data = match (n, noise, seed) {
            (Some(n), Some(noise), Some(seed)) => {
                match crate::data::toy(source, n as usize, noise, seed) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        diags.push(err::bad_data(&e.to_string(), stmt.call.span));
                        None
                    }
                }
            }
            _ => None,
        };
        let toy = noise.map(|n| {
            let default = crate::data::toy::default_noise(source).unwrap_or(0.0);
            (source.to_string(), n.unwrap_or(default))
        });
        (data, toy)
    };
    let (Some(data), Some(seed), Some(heldout), Some(scale)) = (data, seed, heldout, scale) else {
        return Err(diags);
    };
    if !diags.is_empty() {
        return Err(diags);
    }
    let p = crate::train::prepare(data, heldout, seed, scale);
    Ok(DataSpec {
        name,
        train: p.train,
        heldout: p.heldout,
        toy: toy.filter(|_| p.scale.is_none()),
        scale: p.scale,
    })
}

fn read_file(
    scope: &mut Scope,
    a: &super::args::Args,
    source: &str,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<Dataset> {
    let Some(f) = a.get("file") else {
        diags.push(err::missing_argument(
            source,
            "file",
            "a file name in quotes",
            span,
        ));
        return None;
    };
    let path = keep(diags, scope.path(f, "file", &[source]))?;
    let columns = match a.get("columns") {
        Some(v) => Some(
            keep(
                diags,
                scope.string(v, "columns", "comma-separated column names in quotes"),
            )?
            .split(',')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>(),
        ),
        None => None,
    };
    let label = match a.get("label") {
        Some(v) => Some(keep(
            diags,
            scope.string(v, "label", "a column name in quotes"),
        )?),
        None => None,
    };
    let full = scope.module.base_dir.join(&path);
    match Dataset::from_file(&full, columns.as_deref(), label.as_deref()) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.push(err::bad_data(&e.to_string(), f.span));
            None
        }
    }
}

fn not_a_source(span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0615",
        span,
        format!(
            "expected a data source: csv(\"file.csv\", ..), npy(\"file.npy\", ..) or a toy set ({})",
            TOY_NAMES.join(", ")
        ),
    )
}

/// A data set bound earlier (`data NAME = ..`): its name and width.
pub(super) fn data_name(scope: &Scope, e: &Expr, arg: &str) -> R<(String, Option<DataInfo>)> {
    if let ExprKind::Name(n) = &e.kind
        && let Some(d) = scope.data.iter().rev().find(|(s, _)| s == n)
    {
        return Ok(d.clone());
    }
    let known: Vec<&str> = scope.data.iter().map(|(n, _)| n.as_str()).collect();
    let d = Diagnostic::new(
        "E0616",
        e.span,
        format!(
            "expected a data set for `{arg}` (defined earlier with `data NAME = ..`), found {}",
            match &e.kind {
                ExprKind::Name(n) => format!("`{n}`"),
                _ => "an expression".into(),
            }
        ),
    );
    Err(vec![if known.is_empty() {
        d.with_help("define one first, e.g. `data moons = two_moons(n = 10000)`")
    } else {
        d.with_help(format!("data sets defined so far: {}", known.join(", ")))
    }])
}

/// The energy and data arguments, checked to fit each other.
fn energy_and_data(
    scope: &mut Scope,
    a: &super::args::Args,
    callee: &str,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<(String, String)> {
    let energy = match a.get("energy") {
        Some(e) => keep(diags, scope.energy(e)),
        None => {
            diags.push(err::missing_argument(
                callee,
                "energy",
                "the name of an energy",
                span,
            ));
            None
        }
    };
    let data = match a.get("data") {
        Some(e) => keep(diags, data_name(scope, e, "data")).map(|d| (d, e.span)),
        None => {
            diags.push(err::missing_argument(callee, "data", "a data set", span));
            None
        }
    };
    let (energy, ((data, info), dspan)) = (energy?, data?);
    // invariant: `scope.energy` accepted this name as a definition.
    let def = scope.module.def(&energy).expect("checked energy");
    let dim: usize = def.input.shape.iter().product();
    let info = info?;
    let width = info.width;
    if dim != width {
        diags.push(Diagnostic::new(
            "E0617",
            dspan,
            format!(
                "expected data with {dim} values per row for `{energy}`, found `{data}` with {width} columns"
            ),
        ));
        return None;
    }
    if let Some(c) = &def.cond {
        let width: usize = c.shape.iter().product();
        let problem = match info.labels {
            None => Some(format!(
                "`{energy}` is conditional, so its data needs labels: read `{data}` with label = \"COLUMN\""
            )),
            Some((lo, hi)) if lo < 0 || hi >= width as i64 => Some(format!(
                "`{data}` has labels {lo}..{hi}, but `{energy}`'s `c` takes one-hot codes of {width} values (labels 0..{})",
                width - 1
            )),
            Some(_) => None,
        };
        if let Some(p) = problem {
            diags.push(
                err::bad_data(&p, dspan)
                    .with_note("a row labelled l trains E(x | c) with c = onehot(l, width of c)"),
            );
            return None;
        }
    }
    Some((energy, data))
}

pub const TRAIN_ARGS: &[&str] = &[
    "energy",
    "data",
    "method",
    "iters",
    "batch",
    "sampler",
    "steps",
    "lr",
    "l2",
    "loss",
    "kl",
    "entropy",
    "buffer",
    "reinit",
    "init",
    "optimizer",
    "beta1",
    "clip",
    "weight_decay",
    "seed",
    "dtype",
    "out",
    "checkpoint_every",
    "snapshot_every",
    "spectral_norm",
    "projections",
    "projection",
    "sigma",
    "nce_noise",
    "nce_ratio",
];

/// The `train` arguments of the CD family only, and of one other method only.
const CD_ONLY: &[&str] = &[
    "sampler", "steps", "l2", "loss", "kl", "entropy", "buffer", "reinit", "init",
];
const METHOD_ONLY: &[(&str, Method)] = &[
    ("projections", Method::Ssm),
    ("projection", Method::Ssm),
    ("sigma", Method::Dsm),
    ("nce_noise", Method::Nce),
    ("nce_ratio", Method::Nce),
];

/// `train(e, moons, method = "pcd", iters = 2000, sampler = ula(step = 0.01), steps = 20, ..)`.
pub fn parse_train(scope: &mut Scope, stmt: &Statement) -> R<TrainSpec> {
    // invariant: the statement table dispatches only call statements here.
    let (_, _, args) = call_parts(&stmt.call).expect("runner statements are calls");
    let mut diags = Vec::new();
    let a = bind("train", stmt.call.span, args, TRAIN_ARGS, 2, &mut diags);
    let pair = energy_and_data(scope, &a, "train", stmt.call.span, &mut diags);
    let method = match a.get("method") {
        Some(v) => keep(&mut diags, method_arg(scope, v)),
        None => Some(Method::Pcd),
    };
    let mut cfg = TrainConfig::new(method.unwrap_or(Method::Pcd));
    if let Some(m) = method {
        method_arguments(scope, &a, m, &mut cfg, &mut diags);
    }
    if let (Some(m), Some((e, _)), Some(v)) = (method, &pair, a.get("method"))
        && !m.samples_negatives()
        && scope.module.def(e).is_some_and(|d| d.cond.is_some())
    {
        diags.push(
            err::out_of_range(
                "method",
                "cd, pcd or icd",
                &format!("{} for the conditional energy `{e}`", m.name()),
                v.span,
            )
            .with_note("conditional energies train with contrastive divergence: their negatives are sampled under each row's code"),
        );
    }
    if let (Some(Method::Sm), Some((e, _)), Some(v)) = (method, &pair, a.get("method"))
        && let Some(def) = scope.module.def(e)
    {
        let dim: usize = def.input.shape.iter().product();
        if dim > crate::train::score::MAX_EXACT_DIM {
            diags.push(
                err::out_of_range(
                    "method",
                    "\"ssm\" or \"dsm\"",
                    &format!("\"sm\" for a {dim}-d energy"),
                    v.span,
                )
                .with_note(format!(
                    "exact score matching takes one Hessian-vector product per coordinate; it is limited to d ≤ {}",
                    crate::train::score::MAX_EXACT_DIM
                )),
            );
        }
    }
    if let Some(v) = a.get("sampler")
        && let Some(s) = keep(&mut diags, parse_sampler(scope, v))
    {
        if matches!(
            s.method,
            crate::sample::Method::Rwmh
                | crate::sample::Method::Pt(_)
                | crate::sample::Method::Uld(_)
        ) {
            diags.push(err::not_a_gradient_sampler(s.method.name(), v.span));
        }
        cfg.sampler = s;
    }
    let mut count = |scope: &mut Scope, arg: &str, min: u64, max: u64| {
        a.get(arg)
            .and_then(|v| keep(&mut diags, scope.count(v, arg, min, max)).map(|n| n as usize))
    };
    if let Some(n) = count(scope, "iters", 1, 100_000_000) {
        cfg.iters = n;
    }
    if let Some(n) = count(scope, "batch", 1, 1_000_000) {
        cfg.batch = n;
    }
    if let Some(n) = count(scope, "steps", 1, 100_000) {
        cfg.sampler_steps = n;
    }
    if let Some(n) = count(scope, "buffer", 1, 10_000_000) {
        cfg.buffer.size = n;
    }
    if let Some(n) = count(scope, "seed", 0, 1 << 53) {
        cfg.seed = n as u64;
    }
    let checkpoint_every = count(scope, "checkpoint_every", 0, 1 << 40).unwrap_or(500);
    let snapshot_every = count(scope, "snapshot_every", 0, 1 << 40).unwrap_or(0);
    let mut number = |scope: &mut Scope, arg: &str, strict: bool| {
        a.get(arg)
            .and_then(|v| keep(&mut diags, scope.positive(v, arg, strict)))
    };
    if let Some(v) = number(scope, "lr", true) {
        cfg.optim.lr = v;
    }
    if let Some(v) = number(scope, "l2", false) {
        cfg.l2 = v;
    }
    if let Some(v) = number(scope, "kl", false) {
        cfg.kl = v;
    }
    if let Some(v) = number(scope, "entropy", false) {
        cfg.entropy = v;
    }
    if let Some(v) = number(scope, "spectral_norm", true) {
        cfg.spectral_norm = Some(v);
    }
    if let Some(v) = number(scope, "clip", true) {
        cfg.optim.clip_norm = Some(v);
    }
    if let Some(v) = number(scope, "weight_decay", false) {
        cfg.optim.weight_decay = v;
    }
    if let Some(v) = number(scope, "reinit", false) {
        cfg.buffer.reinit = v.min(1.0);
    }
    if let Some(b1) = number(scope, "beta1", false) {
        cfg.optim.rule = crate::train::optim::Rule::Adam {
            beta1: b1.min(0.999),
            beta2: 0.999,
            eps: 1e-8,
        };
    }
    if let Some(v) = a.get("optimizer")
        && let Some(o) = keep(&mut diags, scope.choice(v, "optimizer", &["adam", "sgd"]))
        && o == "sgd"
    {
        cfg.optim.rule = crate::train::optim::Rule::Sgd { momentum: 0.9 };
    }
    if let Some(v) = a.get("loss")
        && let Some(l) = keep(
            &mut diags,
            scope.choice(v, "loss", &["cd", "softplus", "logsumexp"]),
        )
    {
        cfg.loss = match l.as_str() {
            "softplus" => crate::train::loss::LossKind::Softplus,
            "logsumexp" => crate::train::loss::LossKind::Logsumexp,
            _ => crate::train::loss::LossKind::Cd,
        };
    }
    let (dtype, out) = run_outputs(
        scope,
        &a,
        &mut cfg,
        &mut diags,
        pair.as_ref().map(|(e, _)| format!("out/train_{e}")),
    );
    let (Some((energy, data)), Some(dtype), Some(out)) = (pair, dtype, out) else {
        return Err(diags);
    };
    if !diags.is_empty() {
        return Err(diags);
    }
    cfg.threads = crate::backend::cpu::default_threads();
    Ok(TrainSpec {
        energy,
        data,
        config: cfg,
        dtype,
        out: scope.module.base_dir.join(out),
        checkpoint_every,
        snapshot_every,
        init_given: a.get("init").is_some(),
        span: stmt.call.span,
    })
}

/// The model and labelled data arguments of `jem`/`evaluate`, checked to
/// fit each other: the data's width is the model's input, its labels are
/// classes of the model's logits.
fn model_and_data(
    scope: &mut Scope,
    a: &super::args::Args,
    (callee, first): (&str, &str),
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<(String, String)> {
    let model = match a.get(first) {
        Some(e) => match &e.kind {
            ExprKind::Name(n)
                if scope
                    .module
                    .def(n)
                    .is_some_and(|d| d.kind == DefKind::Model) =>
            {
                Some((n.clone(), e.span))
            }
            _ => {
                let found = scope.found(e);
                diags.push(err::wrong_type(
                    "the name of a model (model f(x: [..]) -> [K] = ..)",
                    "model",
                    &found,
                    e.span,
                ));
                None
            }
        },
        None => {
            diags.push(err::missing_argument(
                callee,
                "model",
                "the name of a model",
                span,
            ));
            None
        }
    };
    let data = match a.get("data") {
        Some(e) => keep(diags, data_name(scope, e, "data")).map(|d| (d, e.span)),
        None => {
            diags.push(err::missing_argument(
                callee,
                "data",
                "a labelled data set",
                span,
            ));
            None
        }
    };
    let ((model, mspan), ((data, info), dspan)) = (model?, data?);
    // invariant: checked above to be a model of this module.
    let def = scope.module.def(&model).expect("checked model");
    let dim: usize = def.input.shape.iter().product();
    let info = info?;
    let classes = match def.output[..] {
        [k] if k >= 2 => k,
        _ => {
            diags.push(err::not_a_classifier(
                &format!(
                    "`{model}` returns shape {:?}, not a vector of K ≥ 2 logits",
                    def.output
                ),
                mspan,
            ));
            return None;
        }
    };
    if info.width != dim {
        diags.push(Diagnostic::new(
            "E0617",
            dspan,
            format!(
                "expected data with {dim} values per row for `{model}`, found `{data}` with {} columns",
                info.width
            ),
        ));
        return None;
    }
    match info.labels {
        None => diags.push(err::not_a_classifier(
            &format!("`{data}` has no labels; read it with label = \"COLUMN\""),
            dspan,
        )),
        Some((lo, hi)) if lo < 0 || hi >= classes as i64 => diags.push(err::not_a_classifier(
            &format!(
                "`{data}` has labels {lo}..{hi}, but `{model}` has {classes} classes (labels 0..{})",
                classes - 1
            ),
            dspan,
        )),
        Some(_) => return Some((model, data)),
    }
    None
}

pub const JEM_ARGS: &[&str] = &[
    "model",
    "data",
    "baseline",
    "px_weight",
    "iters",
    "batch",
    "steps",
    "step",
    "noise",
    "lr",
    "buffer",
    "reinit",
    "init",
    "seed",
    "dtype",
    "out",
    "checkpoint_every",
];

/// `jem(f, digits, iters = 2000, lr = 0.001, steps = 20, step = 1, noise = 0.01, ..)`;
/// `baseline = 1` trains the same model by cross-entropy only.
pub fn parse_jem(scope: &mut Scope, stmt: &Statement) -> R<JemSpec> {
    // invariant: the statement table dispatches only call statements here.
    let (_, _, args) = call_parts(&stmt.call).expect("runner statements are calls");
    let mut diags = Vec::new();
    let a = bind("jem", stmt.call.span, args, JEM_ARGS, 2, &mut diags);
    let pair = model_and_data(scope, &a, ("jem", "model"), stmt.call.span, &mut diags);
    let mut cfg = TrainConfig::jem(1.0);
    let mut count = |scope: &mut Scope, arg: &str, min: u64, max: u64| {
        a.get(arg)
            .and_then(|v| keep(&mut diags, scope.count(v, arg, min, max)).map(|n| n as usize))
    };
    if let Some(n) = count(scope, "iters", 1, 100_000_000) {
        cfg.iters = n;
    }
    if let Some(n) = count(scope, "batch", 1, 1_000_000) {
        cfg.batch = n;
    }
    if let Some(n) = count(scope, "steps", 1, 100_000) {
        cfg.sampler_steps = n;
    }
    if let Some(n) = count(scope, "buffer", 1, 10_000_000) {
        cfg.buffer.size = n;
    }
    if let Some(n) = count(scope, "seed", 0, 1 << 53) {
        cfg.seed = n as u64;
    }
    let baseline = count(scope, "baseline", 0, 1).unwrap_or(0) == 1;
    let checkpoint_every = count(scope, "checkpoint_every", 0, 1 << 40).unwrap_or(500);
    let mut number = |scope: &mut Scope, arg: &str, strict: bool| {
        a.get(arg)
            .and_then(|v| keep(&mut diags, scope.positive(v, arg, strict)))
    };
    if let Some(v) = number(scope, "lr", true) {
        cfg.optim.lr = v;
    }
    if let Some(v) = number(scope, "px_weight", false) {
        cfg.objective = Objective::Jem { weight: v };
    }
    if let Some(v) = number(scope, "step", true) {
        cfg.sampler.step = v;
    }
    if let Some(v) = number(scope, "noise", false) {
        cfg.sampler.method = crate::sample::Method::Ula(crate::sample::UlaOptions {
            noise: Some(v),
            ..Default::default()
        });
    }
    if let Some(v) = number(scope, "reinit", false) {
        cfg.buffer.reinit = v.min(1.0);
    }
    if baseline {
        cfg.objective = Objective::Classifier;
    }
    let (dtype, out) = run_outputs(
        scope,
        &a,
        &mut cfg,
        &mut diags,
        pair.as_ref().map(|(m, _)| format!("out/jem_{m}")),
    );
    let (Some((model, data)), Some(dtype), Some(out)) = (pair, dtype, out) else {
        return Err(diags);
    };
    if !diags.is_empty() {
        return Err(diags);
    }
    cfg.threads = crate::backend::cpu::default_threads();
    Ok(JemSpec {
        model,
        data,
        config: cfg,
        dtype,
        out: scope.module.base_dir.join(out),
        checkpoint_every,
        span: stmt.call.span,
    })
}

/// The `init = [lo, hi]` range of the fresh noise (set in `cfg`), the
/// kernels' `dtype` and the `out` folder (else `default_out`) that `train`
/// and `jem` share.
fn run_outputs(
    scope: &mut Scope,
    a: &super::args::Args,
    cfg: &mut TrainConfig,
    diags: &mut Vec<Diagnostic>,
    default_out: Option<String>,
) -> (Option<DType>, Option<String>) {
    if let Some(v) = a.get("init")
        && let Some(vals) = keep(diags, scope.values(v, "init"))
    {
        match vals[..] {
            [lo, hi] if lo < hi => {
                cfg.buffer.fresh = crate::train::buffer::Fresh::Uniform { lo, hi }
            }
            _ => diags.push(err::out_of_range(
                "init",
                "a range [lo, hi] with lo < hi",
                &format!("{vals:?}"),
                v.span,
            )),
        }
    }
    let dtype = match a.get("dtype") {
        Some(v) => keep(diags, scope.choice(v, "dtype", &["f32", "f64"])),
        None => Some("f32".into()),
    }
    .map(|d| if d == "f64" { DType::F64 } else { DType::F32 });
    let out = match a.get("out") {
        Some(v) => keep(diags, scope.string(v, "out", "a folder name in quotes")),
        None => default_out,
    };
    (dtype, out)
}

/// The arguments of score matching and NCE, and the refusal of arguments
/// the method does not use.
fn method_arguments(
    scope: &mut Scope,
    a: &super::args::Args,
    m: Method,
    cfg: &mut TrainConfig,
    diags: &mut Vec<Diagnostic>,
) {
    for &arg in CD_ONLY {
        if let Some(v) = a.get(arg)
            && !m.samples_negatives()
        {
            diags.push(err::not_for_method(
                arg,
                m.name(),
                "cd, pcd and icd",
                v.span,
            ));
        }
    }
    for &(arg, owner) in METHOD_ONLY {
        if let Some(v) = a.get(arg)
            && m != owner
        {
            diags.push(err::not_for_method(arg, m.name(), owner.name(), v.span));
        }
    }
    if !m.samples_negatives() {
        cfg.l2 = 0.0;
    }
    let max = crate::train::score::MAX_PROJECTIONS as u64;
    if let Some(v) = a.get("projections")
        && let Some(n) = keep(diags, scope.count(v, "projections", 1, max))
    {
        cfg.score.projections = n as usize;
    }
    if let Some(v) = a.get("projection")
        && let Some(p) = keep(
            diags,
            scope.choice(v, "projection", &["rademacher", "gaussian"]),
        )
        && let Some(p) = crate::train::score::Projection::parse(&p)
    {
        cfg.score.projection = p;
    }
    if let Some(v) = a.get("sigma")
        && let Some(s) = keep(diags, scope.values(v, "sigma"))
    {
        if s.is_empty() || s.len() > 64 || !s.iter().all(|x| *x > 0.0 && x.is_finite()) {
            diags.push(err::out_of_range(
                "sigma",
                "1 to 64 noise levels, each a number > 0",
                &format!("{s:?}"),
                v.span,
            ));
        } else {
            cfg.score.sigmas = s;
        }
    }
    if let Some(v) = a.get("nce_noise")
        && let Some(text) = keep(
            diags,
            scope.string(v, "nce_noise", "a noise density in quotes"),
        )
    {
        match crate::train::nce::Noise::parse(&text) {
            Some(n) => cfg.nce.noise = n,
            None => diags.push(err::wrong_type(
                "\"fitted\", \"fitted:SCALE\", \"normal:SD\" or \"uniform:A,B\"",
                "nce_noise",
                &format!("\"{text}\""),
                v.span,
            )),
        }
    }
    if let Some(v) = a.get("nce_ratio")
        && let Some(n) = keep(diags, scope.count(v, "nce_ratio", 1, 64))
    {
        cfg.nce.ratio = n as usize;
    }
}

/// `method = pcd` (a bare name) or `method = "pcd"`.
fn method_arg(scope: &mut Scope, e: &Expr) -> R<Method> {
    let name = match &e.kind {
        ExprKind::Name(n) => n.clone(),
        ExprKind::Str(s) => s.clone(),
        _ => {
            let found = scope.found(e);
            return Err(vec![err::wrong_type(
                "cd, pcd, icd, sm, ssm, dsm or nce",
                "method",
                &found,
                e.span,
            )]);
        }
    };
    Method::parse(&name)
        .ok_or_else(|| vec![err::bad_choice("method", &Method::NAMES, &name, e.span)])
}

/// `evaluate(e, moons, chains = 2000, steps = 1000, step = 0.01, seed = 0)`.
pub fn parse_evaluate(scope: &mut Scope, stmt: &Statement) -> R<EvaluateSpec> {
    // invariant: the statement table dispatches only call statements here.
    let (_, _, args) = call_parts(&stmt.call).expect("runner statements are calls");
    let mut diags = Vec::new();
    let names = &["energy", "data", "chains", "steps", "step", "seed"];
    let a = bind("evaluate", stmt.call.span, args, names, 2, &mut diags);
    // `evaluate(f, digits)` with a model `f` scores it as a classifier.
    let is_model = a.get("energy").is_some_and(|e| {
        matches!(&e.kind, ExprKind::Name(n)
            if scope.module.def(n).is_some_and(|d| d.kind == DefKind::Model))
    });
    let pair = if is_model {
        model_and_data(
            scope,
            &a,
            ("evaluate", "energy"),
            stmt.call.span,
            &mut diags,
        )
    } else {
        energy_and_data(scope, &a, "evaluate", stmt.call.span, &mut diags)
    };
    let mut count =
        |scope: &mut Scope, arg: &str, min: u64, max: u64, default: usize| match a.get(arg) {
            Some(v) => keep(&mut diags, scope.count(v, arg, min, max)).map(|n| n as usize),
            None => Some(default),
        };
    let chains = count(scope, "chains", 2, 1_000_000, 2000);
    let steps = count(scope, "steps", 1, 1_000_000, 1000);
    let seed = count(scope, "seed", 0, 1 << 53, 0);
    let step = match a.get("step") {
        Some(v) => keep(&mut diags, scope.positive(v, "step", true)),
        None => Some(0.01),
    };
    match (pair, chains, steps, seed, step) {
        (Some((energy, data)), Some(chains), Some(steps), Some(seed), Some(step))
            if diags.is_empty() =>
        {
            Ok(EvaluateSpec {
                energy,
                model: is_model,
                data,
                chains,
                steps,
                step,
                seed: seed as u64,
                span: stmt.call.span,
            })
        }
        _ => Err(diags),
    }
}

/// `load_params("out/params.safetensors")`: the file may be written by an
/// earlier `train` of the same script, so only its name is checked here.
pub fn parse_load_params(scope: &mut Scope, stmt: &Statement) -> R<PathBuf> {
    // invariant: the statement table dispatches only call statements here.
    let (_, _, args) = call_parts(&stmt.call).expect("runner statements are calls");
    let mut diags = Vec::new();
    let a = bind(
        "load_params",
        stmt.call.span,
        args,
        &["file"],
        1,
        &mut diags,
    );
    let path = match a.get("file") {
        Some(e) => keep(&mut diags, scope.path(e, "file", &["safetensors"])),
        None => {
            diags.push(err::missing_argument(
                "load_params",
                "file",
                "a .safetensors file name",
                stmt.call.span,
            ));
            None
        }
    };
    match path {
        Some(p) if diags.is_empty() => Ok(scope.module.base_dir.join(p)),
        _ => Err(diags),
    }
}

/// What `export(..)` writes: definitions and the model file.
#[derive(Clone, Debug)]
pub struct ExportSpec {
    pub names: Vec<String>,
    pub path: PathBuf,
    pub path_span: Span,
}

/// `export(E, "model.ebmc")` or `export([E, F], "model.ebmc")`: energies
/// and models with their parameters' values at that point of the script.
pub fn parse_export(scope: &mut Scope, stmt: &Statement) -> R<ExportSpec> {
    // invariant: the statement table dispatches only call statements here.
    let (_, _, args) = call_parts(&stmt.call).expect("runner statements are calls");
    let mut diags = Vec::new();
    let a = bind(
        "export",
        stmt.call.span,
        args,
        &["definitions", "file"],
        2,
        &mut diags,
    );
    let names = match a.get("definitions") {
        Some(e) => export_names(scope, e, &mut diags),
        None => {
            diags.push(err::missing_argument(
                "export",
                "definitions",
                "an energy or model, or a list of them",
                stmt.call.span,
            ));
            None
        }
    };
    let path = match a.get("file") {
        Some(e) => keep(
            &mut diags,
            scope.path(e, "file", &[crate::artifact::EXTENSION]),
        )
        .map(|p| (p, e.span)),
        None => {
            diags.push(err::missing_argument(
                "export",
                "file",
                "a file name ending in .ebmc",
                stmt.call.span,
            ));
            None
        }
    };
    match (names, path) {
        (Some(names), Some((p, path_span))) if diags.is_empty() => Ok(ExportSpec {
            names,
            path: scope.module.base_dir.join(p),
            path_span,
        }),
        _ => Err(diags),
    }
}

/// One definition name, or a list `[a, b]` of them.
fn export_names(scope: &mut Scope, e: &Expr, diags: &mut Vec<Diagnostic>) -> Option<Vec<String>> {
    let items: Vec<&Expr> = match &e.kind {
        ExprKind::Tensor(items) if !items.is_empty() => items.iter().collect(),
        _ => vec![e],
    };
    let mut names = Vec::new();
    for item in items {
        match &item.kind {
            ExprKind::Name(n) if scope.module.def(n).is_some() => {
                if names.contains(n) {
                    diags.push(err::out_of_range(
                        "definitions",
                        "each definition once",
                        &format!("`{n}` twice"),
                        item.span,
                    ));
                }
                names.push(n.clone());
            }
            _ => {
                keep(diags, scope.energy(item));
            }
        }
    }
    Some(names)
}
