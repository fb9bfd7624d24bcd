//! The runner statements `sample`, `plot`, `save` and `summary`: reading
//! their arguments into specs (at check time, so `ebm check` reports every
//! bad argument) and carrying them out. `ebm sample`/`ebm plot` on the
//! command line build the same specs and call the same functions.

use std::path::{Path, PathBuf};

use super::args::{INITS, R, SAMPLERS, Scope, bind, call_parts, keep};
use super::errors as err;
use crate::backend::DType;
use crate::diag::{Diagnostic, Span};
use crate::runtime::CompiledEnergy;
use crate::sample::{BatchEnergy, Draws, Init, RunConfig, SamplerConfig, UlaOptions, io};
use crate::sema::Statement;
use crate::syntax::ast::{Expr, ExprKind};

/// Keyword arguments of `sample`; the first two may be positional.
pub const SAMPLE_ARGS: &[&str] = &[
    "energy", "sampler", "chains", "steps", "warmup", "thin", "seed", "init", "cond", "dtype",
    "backend",
];

/// The most values (chains × kept draws × dimension) one run may store.
pub const MAX_VALUES: usize = 1 << 28;

/// Default settings of a run.
pub const DEFAULT_CHAINS: usize = 4;
pub const DEFAULT_STEPS: usize = 1000;
pub const DEFAULT_WARMUP: usize = 500;
pub const DEFAULT_LEAPFROG: usize = 16;
/// Parallel tempering: replicas per chain and the hottest temperature of
/// the default geometric ladder.
pub const DEFAULT_REPLICAS: usize = 8;
pub const DEFAULT_MAX_TEMP: f64 = 10.0;
/// The initial step of random-walk moves (rwmh, and pt's rwmh replicas).
pub const DEFAULT_RWMH_STEP: f64 = 0.5;
/// ULD's default time step and friction.
pub const DEFAULT_ULD_STEP: f64 = 0.1;
pub const DEFAULT_FRICTION: f64 = 1.0;

/// Where the chains start: a distribution, or the points in a file.
#[derive(Clone, Debug, PartialEq)]
pub enum InitSpec {
    Dist(Init),
    /// A sample CSV (each chain's last draw) or an NPY array of points.
    File(PathBuf),
}

/// Everything one `sample(..)` statement or `ebm sample` command asks for.
#[derive(Clone, Debug)]
pub struct SampleSpec {
    pub energy: String,
    pub sampler: SamplerConfig,
    /// Run settings; `run.init` is replaced when `init` is a file.
    pub run: RunConfig,
    pub init: InitSpec,
    pub cond: Option<Vec<f64>>,
    pub dtype: DType,
    pub backend: String,
    /// Source spans (script only): the call, the energy and the init arguments.
    pub span: Span,
    pub energy_span: Span,
    pub init_span: Span,
}

/// A sampler by name with its default step size.
pub fn sampler_named(name: &str) -> Option<SamplerConfig> {
    Some(match name {
        "ula" => SamplerConfig::ula(0.01),
        "mala" => SamplerConfig::mala(0.1),
        "rwmh" => SamplerConfig::rwmh(DEFAULT_RWMH_STEP),
        "hmc" => SamplerConfig::hmc(0.1, DEFAULT_LEAPFROG),
        "nuts" => SamplerConfig::nuts(0.1, crate::sample::config::DEFAULT_MAX_DEPTH),
        "pt" => SamplerConfig::pt(0.1, DEFAULT_REPLICAS, DEFAULT_MAX_TEMP),
        "uld" => SamplerConfig::uld(DEFAULT_ULD_STEP, DEFAULT_FRICTION),
        _ => return None,
    })
}

fn sampler_args(name: &str) -> &'static [&'static str] {
    match name {
        "ula" => &["step", "noise", "clip", "clamp"],
        "hmc" => &["step", "steps", "target", "metric"],
        "nuts" => &["step", "max_depth", "target", "metric"],
        "mala" => &["step", "target", "metric"],
        "pt" => &[
            "step",
            "replicas",
            "max_temp",
            "ladder",
            "swap_every",
            "move",
            "target",
        ],
        "uld" => &["step", "friction"],
        _ => &["step", "target"],
    }
}

/// `mala`, `mala(step = 0.05)`, `hmc(0.1, steps = 20, target = 0.9)`, ...
pub(crate) fn parse_sampler(scope: &mut Scope, e: &Expr) -> R<SamplerConfig> {
    let (name, span, args) = match &e.kind {
        ExprKind::Name(n) => (n.as_str(), e.span, &[][..]),
        ExprKind::Call { callee, args, .. } => (callee.name.as_str(), callee.span, &args[..]),
        _ => {
            let found = scope.found(e);
            return Err(vec![err::not_a_sampler(&found, e.span, SAMPLERS)]);
        }
    };
    let Some(mut cfg) = sampler_named(name) else {
        let known_elsewhere = INITS.contains(&name)
            || matches!(&e.kind, ExprKind::Name(n)
                if scope.module.def(n).is_some() || scope.module.constant(n).is_some());
        if known_elsewhere {
            let found = scope.found(e);
            return Err(vec![err::not_a_sampler(&found, e.span, SAMPLERS)]);
        }
        return Err(vec![err::unknown_sampler(name, span, SAMPLERS)]);
    };
    let mut diags = Vec::new();
    let a = bind(name, span, args, sampler_args(name), 1, &mut diags);
    // pt's replica move comes first: it sets the default step and target.
    if let Some(v) = a.get("move")
        && let Some(m) = keep(&mut diags, scope.choice(v, "move", &["mala", "rwmh"]))
        && m == "rwmh"
    {
        cfg.step = DEFAULT_RWMH_STEP;
        cfg.target_accept = 0.234;
        if let crate::sample::Method::Pt(o) = &mut cfg.method {
            o.moves = crate::sample::PtMove::Rwmh;
        }
    }
    if let Some(v) = a.get("step")
        && let Some(s) = keep(&mut diags, scope.positive(v, "step", true))
    {
        cfg.step = s;
    }
    if let Some(v) = a.get("target")
        && let Some(t) = keep(&mut diags, scope.number(v, "target"))
    {
        if t > 0.0 && t < 1.0 {
            cfg.target_accept = t;
        } else {
            diags.push(err::out_of_range(
                "target",
                "an acceptance rate between 0 and 1",
                &t.to_string(),
                v.span,
            ));
        }
    }
    if let Some(v) = a.get("steps")
        && let Some(n) = keep(&mut diags, scope.count(v, "steps", 1, 10_000))
    {
        cfg.method = crate::sample::Method::Hmc {
            leapfrog: n as usize,
        };
    }
    if let Some(v) = a.get("max_depth")
        && let Some(n) = keep(
            &mut diags,
            scope.count(
                v,
                "max_depth",
                1,
                crate::sample::config::MAX_TREE_DEPTH as u64,
            ),
        )
    {
        cfg.method = crate::sample::Method::Nuts {
            max_depth: n as usize,
        };
    }
    if let Some(v) = a.get("metric")
        && let Some(m) = keep(
            &mut diags,
            scope.choice(v, "metric", &["unit", "diag", "dense"]),
        )
        && let Some(kind) = crate::sample::MetricKind::named(&m)
    {
        cfg.metric = kind;
    }
    if name == "pt" {
        pt_args(scope, &a, &mut cfg, &mut diags);
    }
    if name == "uld"
        && let Some(v) = a.get("friction")
        && let Some(g) = keep(&mut diags, scope.positive(v, "friction", true))
    {
        cfg.method = crate::sample::Method::Uld(crate::sample::UldOptions { friction: g });
    }
    if name == "ula" {
        let mut o = UlaOptions::default();
        if let Some(v) = a.get("noise") {
            o.noise = keep(&mut diags, scope.positive(v, "noise", false));
        }
        if let Some(v) = a.get("clip") {
            o.clip_grad = keep(&mut diags, scope.positive(v, "clip", true));
        }
        if let Some(v) = a.get("clamp")
            && let Some(b) = keep(&mut diags, scope.values(v, "clamp"))
        {
            match b[..] {
                [lo, hi] if lo < hi => o.clamp = Some((lo, hi)),
                _ => diags.push(err::out_of_range(
                    "clamp",
                    "two numbers [lo, hi] with lo < hi",
                    &super::format_tensor(&crate::sema::Tensor::new(vec![b.len()], b.clone())),
                    v.span,
                )),
            }
        }
        cfg.method = crate::sample::Method::Ula(o);
    }
    if diags.is_empty() {
        Ok(cfg)
    } else {
        Err(diags)
    }
}

/// `pt(..)`'s ladder (`replicas` and `max_temp`, or `ladder`) and
/// `swap_every`.
fn pt_args(
    scope: &mut Scope,
    a: &super::args::Args,
    cfg: &mut SamplerConfig,
    diags: &mut Vec<Diagnostic>,
) {
    let crate::sample::Method::Pt(pt) = &mut cfg.method else {
        return;
    };
    let max = crate::sample::config::MAX_REPLICAS as u64;
    let k = match a.get("replicas") {
        Some(v) => keep(diags, scope.count(v, "replicas", 2, max)).map(|k| k as usize),
        None => Some(DEFAULT_REPLICAS),
    };
    let t_max = match a.get("max_temp") {
        Some(v) => match keep(diags, scope.number(v, "max_temp")) {
            Some(t) if t > 1.0 && t.is_finite() => Some(t),
            Some(t) => {
                diags.push(err::out_of_range(
                    "max_temp",
                    "a temperature > 1",
                    &t.to_string(),
                    v.span,
                ));
                None
            }
            None => None,
        },
        None => Some(DEFAULT_MAX_TEMP),
    };
    if let (Some(k), Some(t)) = (k, t_max) {
        pt.ladder = crate::sample::PtOptions::geometric(k, t).ladder;
    }
    if let Some(v) = a.get("ladder") {
        if a.get("replicas").is_some() || a.get("max_temp").is_some() {
            diags.push(err::out_of_range(
                "ladder",
                "either `ladder` or `replicas`/`max_temp`",
                "both",
                v.span,
            ));
        } else if let Some(l) = keep(diags, scope.values(v, "ladder")) {
            let old = std::mem::replace(&mut pt.ladder, l);
            if pt.check().is_some() {
                let text: Vec<String> = pt.ladder.iter().map(|t| t.to_string()).collect();
                diags.push(err::out_of_range(
                    "ladder",
                    &format!(
                        "2 to {max} finite temperatures increasing from 1 (e.g. [1, 2, 4, 8])"
                    ),
                    &format!("[{}]", text.join(", ")),
                    v.span,
                ));
                pt.ladder = old;
            }
        }
    }
    if let Some(v) = a.get("swap_every")
        && let Some(n) = keep(diags, scope.count(v, "swap_every", 1, 1_000_000))
    {
        pt.swap_every = n as usize;
    }
}

/// `normal`, `normal(0, 2)`, `uniform(-3, 3)` or `"start.csv"`.
fn parse_init(scope: &mut Scope, e: &Expr) -> R<InitSpec> {
    if super::args::string_value(scope.module, e).is_some() {
        let p = scope.path(e, "init", &["csv", "npy"])?;
        return Ok(InitSpec::File(scope.module.base_dir.join(p)));
    }
    let (name, span, args) = match &e.kind {
        ExprKind::Name(n) if INITS.contains(&n.as_str()) => (n.as_str(), e.span, &[][..]),
        ExprKind::Call { callee, args, .. } if INITS.contains(&callee.name.as_str()) => {
            (callee.name.as_str(), callee.span, &args[..])
        }
        _ => {
            let found = scope.found(e);
            return Err(vec![err::unknown_init(&found, e.span)]);
        }
    };
    let mut diags = Vec::new();
    if name == "normal" {
        let a = bind(name, span, args, &["mean", "std"], 2, &mut diags);
        let mean = match a.get("mean") {
            Some(v) => keep(&mut diags, scope.number(v, "mean")),
            None => Some(0.0),
        };
        let sd = match a.get("std") {
            Some(v) => keep(&mut diags, scope.positive(v, "std", false)),
            None => Some(1.0),
        };
        match (mean, sd) {
            (Some(mean), Some(sd)) if diags.is_empty() => {
                Ok(InitSpec::Dist(Init::Normal { mean, sd }))
            }
            _ => Err(diags),
        }
    } else {
        let a = bind(name, span, args, &["a", "b"], 2, &mut diags);
        let mut get = |arg: &'static str| match a.get(arg) {
            Some(v) => keep(&mut diags, scope.number(v, arg)).map(|x| (x, v.span)),
            None => {
                diags.push(err::missing_argument("uniform", arg, "a number", e.span));
                None
            }
        };
        let (lo, hi) = (get("a"), get("b"));
        match (lo, hi) {
            (Some((a, _)), Some((b, _))) if a < b && diags.is_empty() => {
                Ok(InitSpec::Dist(Init::Uniform { a, b }))
            }
            (Some((a, _)), Some((b, bs))) if a >= b => {
                diags.push(err::out_of_range(
                    "b",
                    &format!("a number > {a}"),
                    &b.to_string(),
                    bs,
                ));
                Err(diags)
            }
            _ => Err(diags),
        }
    }
}

/// Reads the arguments of `sample(..)`.
pub fn parse_sample(scope: &mut Scope, stmt: &Statement) -> R<SampleSpec> {
    // invariant: the statement table dispatches only call statements here.
    let (_, _, args) = call_parts(&stmt.call).expect("runner statements are calls");
    let mut diags = Vec::new();
    let a = bind("sample", stmt.call.span, args, SAMPLE_ARGS, 2, &mut diags);
    let energy_expr = a.get("energy");
    let energy = match energy_expr {
        Some(e) => keep(&mut diags, scope.energy(e)),
        None => {
            diags.push(err::missing_argument(
                "sample",
                "energy",
                "the name of an energy",
                stmt.call.span,
            ));
            None
        }
    };
    let sampler = match a.get("sampler") {
        Some(e) => keep(&mut diags, parse_sampler(scope, e)),
        None => sampler_named("mala"),
    };
    let mut count = |scope: &mut Scope, arg: &str, min: u64, max: u64, default: usize| match a
        .get(arg)
    {
        Some(v) => keep(&mut diags, scope.count(v, arg, min, max)).map(|n| (n as usize, v.span)),
        None => Some((default, a.span)),
    };
    let chains = count(scope, "chains", 1, 1 << 24, DEFAULT_CHAINS);
    let steps = count(scope, "steps", 1, 1 << 40, DEFAULT_STEPS);
    let warmup = count(scope, "warmup", 0, 1 << 40, DEFAULT_WARMUP);
    let thin = count(scope, "thin", 1, 1 << 40, 1);
    let seed = count(scope, "seed", 0, 1 << 53, 0);
    let init = match a.get("init") {
        Some(v) => keep(&mut diags, parse_init(scope, v)),
        None => Some(InitSpec::Dist(Init::Normal { mean: 0.0, sd: 1.0 })),
    };
    let cond = match a.get("cond") {
        Some(v) => keep(&mut diags, scope.values(v, "cond")).map(Some),
        None => Some(None),
    };
    let dtype = match a.get("dtype") {
        Some(v) => keep(&mut diags, scope.choice(v, "dtype", &["f64", "f32"])),
        None => Some("f64".into()),
    };
    let backend = match a.get("backend") {
        Some(v) => keep(
            &mut diags,
            scope.choice(v, "backend", &["cpu", "interp", "gpu"]),
        ),
        None => Some("cpu".into()),
    };
    // WGSL has no f64: refused here, where the dtype can still be named.
    if let (Some("gpu"), Some("f64"), Some(b)) =
        (backend.as_deref(), dtype.as_deref(), a.get("backend"))
    {
        diags.push(err::gpu_needs_f32(
            a.get("dtype").map_or(b.span, |d| d.span),
        ));
    }
    // The conditioning input must match the energy.
    if let (Some(name), Some(ee)) = (&energy, energy_expr) {
        // invariant: `scope.energy` accepted this name as a definition above.
        let def = scope.module.def(name).expect("checked above");
        let want = def.cond.as_ref().map(|c| c.shape.iter().product::<usize>());
        match (want, &cond, a.get("cond")) {
            (Some(n), Some(None), _) => diags.push(err::missing_cond(name, n, ee.span)),
            (None, Some(Some(_)), Some(ce)) => diags.push(err::unexpected_cond(name, ce.span)),
            (Some(n), Some(Some(v)), Some(ce)) if v.len() != n => {
                diags.push(err::cond_length(name, n, v.len(), ce.span))
            }
            _ => {}
        }
        if let (Some((c, cs)), Some((s, _)), Some((t, _))) = (chains, steps, thin) {
            let dim: usize = def.input.shape.iter().product();
            let n = c
                .saturating_mul(s.div_ceil(t.max(1)))
                .saturating_mul(dim.max(1));
            if n > MAX_VALUES {
                diags.push(err::too_many_values(n, MAX_VALUES, cs));
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let (Some(energy), Some(sampler), Some(chains), Some(steps), Some(warmup)) =
        (energy, sampler, chains, steps, warmup)
    else {
        // invariant: each `None` above pushed a diagnostic, and diagnostics return early.
        unreachable!("every missing value recorded a diagnostic")
    };
    let (Some(thin), Some(seed), Some(init), Some(cond), Some(dtype), Some(backend)) =
        (thin, seed, init, cond, dtype, backend)
    else {
        unreachable!("every missing value recorded a diagnostic")
    };
    let mut run = RunConfig::new(chains.0, warmup.0, steps.0, seed.0 as u64);
    run.thin = thin.0;
    run.progress = true;
    if let Some(m) = crate::sample::run::too_long(&sampler, &run) {
        return Err(vec![err::run_too_long(&m, stmt.call.span)]);
    }
    if let InitSpec::Dist(d) = &init {
        run.init = d.clone();
    }
    Ok(SampleSpec {
        energy,
        sampler,
        run,
        init,
        cond,
        dtype: if dtype == "f32" {
            DType::F32
        } else {
            DType::F64
        },
        backend,
        span: stmt.call.span,
        energy_span: energy_expr.map_or(stmt.call.span, |e| e.span),
        init_span: a.get("init").map_or(stmt.call.span, |e| e.span),
    })
}

/// The starting points in a file: a sample CSV gives each chain's last
/// draw; an NPY array of shape `(chains, draws, *x)` likewise, `(rows, *x)`
/// gives its rows and `(dim,)` one point. Any other shape is an error (a
/// 64-wide array is not 32 points of a 2-D energy).
pub fn load_init(path: &Path, dim: usize) -> Result<Init, String> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let (values, rows) = match ext.as_deref() {
        Some("csv") => {
            let d = io::read_csv(path)?;
            if d.dim != dim {
                return Err(format!(
                    "{}: expected points with {dim} coordinates, found {}",
                    path.display(),
                    d.dim
                ));
            }
            if d.draws == 0 {
                return Err(format!("{}: no draws", path.display()));
            }
            let v: Vec<f64> = (0..d.chains)
                .flat_map(|c| d.point(c, d.draws - 1).to_vec())
                .collect();
            (v, d.chains)
        }
        Some("npy") => {
            let bytes = crate::data::read_regular(path, crate::data::MAX_DATA_BYTES)
                .map_err(|e| e.to_string())?;
            let a =
                crate::data::npy::read(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            let trailing: usize = a.shape.iter().skip(2).product();
            let row: usize = a.shape.iter().skip(1).product();
            match a.shape[..] {
                _ if a.data.is_empty() || dim == 0 => {
                    return Err(format!("{}: the array is empty", path.display()));
                }
                [chains, draws, ..] if a.shape.len() >= 3 && trailing == dim && draws > 0 => {
                    let v: Vec<f64> = (0..chains)
                        .flat_map(|c| {
                            let o = (c * draws + draws - 1) * dim;
                            a.data[o..o + dim].to_vec()
                        })
                        .collect();
                    (v, chains)
                }
                [rows, ..] if a.shape.len() >= 2 && row == dim => (a.data, rows),
                [n] if n == dim => (a.data, 1),
                _ => {
                    return Err(format!(
                        "{}: expected points with {dim} coordinates — an array of shape (rows, {dim}), ({dim},) or (chains, draws, {dim}) — found shape {:?}",
                        path.display(),
                        a.shape
                    ));
                }
            }
        }
        _ => {
            return Err(format!("{}: expected a .csv or .npy file", path.display()));
        }
    };
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(format!(
            "{}: starting points must be finite, found {bad}",
            path.display()
        ));
    }
    Ok(Init::Array { values, rows })
}

/// Runs the chains of `spec` on a compiled energy, on every core.
pub fn run_sample(energy: &CompiledEnergy, spec: &SampleSpec) -> Result<Draws, String> {
    let mut run = spec.run.clone();
    if let InitSpec::File(p) = &spec.init {
        run.init = load_init(p, energy.dim())?;
    }
    run.threads = crate::backend::cpu::default_threads().min(run.chains);
    let mut d = crate::sample::run_compiled(energy, spec.cond.as_deref(), &spec.sampler, &run)
        .map_err(|e| e.to_string())?;
    if let InitSpec::File(p) = &spec.init {
        set_header(&mut d, "init", format!("file {}", p.display()));
    }
    let mut extra = vec![
        ("energy".to_string(), spec.energy.clone()),
        ("backend".into(), spec.backend.clone()),
        (
            "dtype".into(),
            match spec.dtype {
                DType::F64 => "f64".into(),
                DType::F32 => "f32".into(),
            },
        ),
    ];
    if let Some(c) = &spec.cond {
        let v: Vec<String> = c.iter().map(|x| x.to_string()).collect();
        extra.push(("cond".into(), format!("[{}]", v.join(", "))));
    }
    // After `ebm_version`, before the sampler settings.
    let at = 1.min(d.header.len());
    d.header.splice(at..at, extra);
    Ok(d)
}

fn set_header(d: &mut Draws, key: &str, value: String) {
    match d.header.iter_mut().find(|(k, _)| k == key) {
        Some(kv) => kv.1 = value,
        None => d.header.push((key.to_string(), value)),
    }
}

/// Creates the folder that `path` goes into.
fn make_parent(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => std::fs::create_dir_all(p)
            .map_err(|e| format!("cannot create folder {}: {e}", p.display())),
        _ => Ok(()),
    }
}

/// Writes draws as CSV or NPY, by the file's extension.
pub fn write_draws(path: &Path, d: &Draws) -> Result<(), String> {
    write_draws_as(path, d, io::Format::Ebm).map(|_| ())
}

/// Writes draws as CSV (in `format`) or NPY, by the file's extension;
/// returns the files written (one per chain for CmdStan's format).
pub fn write_draws_as(path: &Path, d: &Draws, format: io::Format) -> Result<Vec<PathBuf>, String> {
    make_parent(path)?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => io::write_csv_as(path, d, format),
        Some("npy") if format == io::Format::Ebm => {
            io::write_npy(path, d).map(|()| vec![path.to_path_buf()])
        }
        _ => Err(format!(
            "{}: expected a file name ending in .csv{}",
            path.display(),
            if format == io::Format::Ebm {
                " or .npy"
            } else {
                ""
            }
        )),
    }
}

/// Plot kinds of `plot(.., kind = ..)` and `ebm plot --kind`.
pub const PLOT_KINDS: &[&str] = &["auto", "scatter", "hist", "trace"];

/// Draws a PNG of `d`: `auto` picks a scatter over the density (2-D), a
/// histogram with the density (1-D), marginal histograms or an image grid.
pub fn plot_draws(
    path: &Path,
    d: &Draws,
    energy: Option<&dyn BatchEnergy>,
    kind: &str,
    title: &str,
) -> Result<(), String> {
    make_parent(path)?;
    let energy = energy.filter(|e| e.dim() == d.dim);
    let title = &crate::plot::noted_title(title, d);
    let coords: Vec<usize> = (0..d.dim.min(8)).collect();
    match kind {
        "scatter" if d.dim >= 2 => crate::plot::scatter_density(path, d, energy, (0, 1), title),
        "hist" => crate::plot::histograms(path, d, &coords, None, title),
        "trace" => crate::plot::trace(path, d, &coords[..d.dim.min(4)], 4, title),
        _ => crate::plot::plot_auto(path, d, energy, title),
    }
}

/// A plot title: "mala on gmm: 2000 chains × 20 draws".
pub fn default_title(d: &Draws) -> String {
    let get = |k: &str| {
        d.header
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    };
    let mut t = String::new();
    if let Some(s) = get("sampler") {
        t.push_str(s);
        if let Some(e) = get("energy") {
            t.push_str(&format!(" on {e}"));
        }
        t.push_str(": ");
    }
    t.push_str(&format!("{} chains × {} draws", d.chains, d.stored_draws()));
    t
}

// ----- plot, save, summary -----

#[derive(Clone, Debug)]
pub struct OutputSpec {
    /// The samples' binding.
    pub samples: String,
    pub samples_span: Span,
    /// `plot([a, b, ..], ..)`: every binding, drawn as panels side by side
    /// (empty for one sample set).
    pub panels: Vec<(String, Span)>,
    /// The output file, resolved against the script's folder.
    pub path: PathBuf,
    pub path_span: Span,
    pub kind: String,
    pub title: Option<String>,
    /// `save(.., format = "cmdstan")`: the CSV layout.
    pub format: io::Format,
}

fn parse_output(
    scope: &mut Scope,
    stmt: &Statement,
    callee: &str,
    names: &'static [&'static str],
    exts: &[&str],
) -> R<OutputSpec> {
    // invariant: the statement table dispatches only call statements here.
    let (_, _, args) = call_parts(&stmt.call).expect("runner statements are calls");
    let mut diags = Vec::new();
    let a = bind(callee, stmt.call.span, args, names, 2, &mut diags);
    let mut panels = Vec::new();
    let samples = match a.get(names[0]) {
        Some(e)
            if callee == "plot"
                && matches!(&e.kind, ExprKind::Tensor(items) if !items.is_empty()) =>
        {
            let ExprKind::Tensor(items) = &e.kind else {
                unreachable!("matched above")
            };
            if items.len() > MAX_PANELS {
                let found = format!("{} sample sets", items.len());
                let want = format!("at most {MAX_PANELS} sample sets");
                diags.push(err::out_of_range("samples", &want, &found, e.span));
            }
            for item in items.iter().take(MAX_PANELS) {
                if let Some(s) = keep(&mut diags, scope.samples(item)) {
                    panels.push((s.0, item.span));
                }
            }
            panels.first().cloned()
        }
        Some(e) => keep(&mut diags, scope.samples(e)).map(|s| (s.0, e.span)),
        None => {
            diags.push(err::missing_argument(
                callee,
                names[0],
                "samples",
                stmt.call.span,
            ));
            None
        }
    };
    let path = match a.get("file") {
        Some(e) => keep(&mut diags, scope.path(e, "file", exts)).map(|p| (p, e.span)),
        None => {
            let what = format!("a file name ending in .{}", exts.join(" or ."));
            diags.push(err::missing_argument(callee, "file", &what, stmt.call.span));
            None
        }
    };
    let kind = match a.get("kind") {
        Some(e) => keep(&mut diags, scope.choice(e, "kind", PLOT_KINDS)),
        None => Some("auto".into()),
    };
    let title = match a.get("title") {
        Some(e) => keep(&mut diags, scope.string(e, "title", "a title in quotes")).map(Some),
        None => Some(None),
    };
    let format = match a.get("format") {
        Some(e) => keep(&mut diags, scope.choice(e, "format", &io::Format::NAMES))
            .and_then(|f| io::Format::named(&f)),
        None => Some(io::Format::Ebm),
    };
    if let (Some(io::Format::CmdStan), Some((p, span))) = (format, &path)
        && !p.to_ascii_lowercase().ends_with(".csv")
    {
        diags.push(err::cmdstan_not_csv(p, *span));
    }
    match (samples, path, kind, title, format) {
        (
            Some((samples, samples_span)),
            Some((p, path_span)),
            Some(kind),
            Some(title),
            Some(format),
        ) if diags.is_empty() => Ok(OutputSpec {
            samples,
            samples_span,
            panels,
            path: scope.module.base_dir.join(p),
            path_span,
            kind,
            title,
            format,
        }),
        _ => Err(diags),
    }
}

/// The most panels one `plot([..])` draws (the image grows with the grid).
pub const MAX_PANELS: usize = 64;

/// `plot(s, "file.png", kind = "auto", title = "..")`, or
/// `plot([s1, s2, ..], "file.png", title = "..")`: 2-D sample sets as
/// panels side by side on common axes, each over its energy's density.
pub fn parse_plot(scope: &mut Scope, stmt: &Statement) -> R<OutputSpec> {
    parse_output(
        scope,
        stmt,
        "plot",
        &["samples", "file", "kind", "title"],
        &["png"],
    )
}

/// `save(s, "file.csv")`, `save(s, "file.npy")` or `save(s, "dir/name.csv",
/// format = "cmdstan")` (CmdStan's files `dir/name_1.csv …`, one per chain).
pub fn parse_save(scope: &mut Scope, stmt: &Statement) -> R<OutputSpec> {
    parse_output(
        scope,
        stmt,
        "save",
        &["samples", "file", "format"],
        &["csv", "npy"],
    )
}

/// `summary(s)`: the samples' name.
pub fn parse_summary(scope: &mut Scope, call: &Expr) -> R<(String, Span)> {
    // invariant: `summary` reaches here only as a call.
    let (_, _, args) = call_parts(call).expect("summary is a call");
    let mut diags = Vec::new();
    let a = bind("summary", call.span, args, &["samples"], 1, &mut diags);
    let r = match a.get("samples") {
        Some(e) => keep(&mut diags, scope.samples(e)).map(|s| (s.0, e.span)),
        None => {
            diags.push(err::missing_argument(
                "summary", "samples", "samples", call.span,
            ));
            None
        }
    };
    match r {
        Some(v) if diags.is_empty() => Ok(v),
        _ => Err(diags),
    }
}

/// A run-time failure at `span`.
pub fn failed(what: &str, span: Span) -> impl Fn(String) -> Diagnostic + '_ {
    move |m| err::run_failed(what, &m, span)
}
