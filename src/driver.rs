//! The driver strings the stages together for the CLI and the tests: read a
//! file, parse, analyse, lower. Each function returns diagnostics already
//! rendered against the file, so callers only print them.

use std::path::Path;
use std::sync::Arc;

use crate::autodiff::derived::{KernelSpec, derive};
use crate::backend::{Backend, DType};
use crate::diag::render_all;
use crate::ir::print;
use crate::runtime::{CompiledEnergy, ParamStore, Scalar};
use crate::sema::DefKind;
use crate::syntax::{self, ast};
use crate::{lower, opt, script, sema};

/// A source file read into memory, with the name used in diagnostics.
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<SourceFile, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("error: cannot read {}: {e}", path.display()))?;
        Ok(SourceFile {
            path: path.display().to_string(),
            // Invalid UTF-8 becomes U+FFFD, which the parser then reports with a caret.
            text: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// The folder that relative data paths in the script are resolved against.
    pub fn base_dir(&self) -> &Path {
        Path::new(&self.path).parent().unwrap_or(Path::new("."))
    }
}

/// Parses, or returns the rendered diagnostics.
pub fn parse(file: &SourceFile) -> Result<ast::Program, String> {
    syntax::parse(&file.text).map_err(|d| render_all(&d, &file.path, &file.text))
}

/// Parses and analyses, or returns the rendered diagnostics.
pub fn analyze(file: &SourceFile) -> Result<sema::Module, String> {
    let program = parse(file)?;
    sema::analyze(&program, file.base_dir()).map_err(|d| render_all(&d, &file.path, &file.text))
}

/// Everything `ebm check` does: succeeds iff the program is valid (it parses,
/// passes semantic analysis, and every definition lowers to IR).
pub fn check(file: &SourceFile) -> Result<(), String> {
    let module = analyze(file)?;
    for def in &module.defs {
        lower::lower(&module, &def.name).map_err(|d| render_all(&[d], &file.path, &file.text))?;
    }
    script::check(&module).map_err(|d| render_all(&d, &file.path, &file.text))?;
    Ok(())
}

/// `ebm run`: analyses the script, then executes its statements.
pub fn run(file: &SourceFile, out: &mut dyn std::io::Write) -> Result<(), String> {
    let module = analyze(file)?;
    script::run(&module, out).map_err(|d| render_all(&d, &file.path, &file.text))
}

/// `check` on text held in memory (the fuzzer and tests use it); `path` is
/// only the name printed in diagnostics.
pub fn check_source(path: &str, text: &str) -> Result<(), String> {
    check(&SourceFile {
        path: path.to_string(),
        text: text.to_string(),
    })
}

/// A backend by its command-line name.
pub fn backend_named(name: &str) -> Result<Arc<dyn Backend>, String> {
    crate::backend::named(name).map_err(|e| format!("error: {e}"))
}

pub fn dtype_named(name: &str) -> Result<DType, String> {
    match name {
        "f64" => Ok(DType::F64),
        "f32" => Ok(DType::F32),
        other => Err(format!(
            "error: unknown dtype `{other}`; expected `f32` or `f64`"
        )),
    }
}

/// The energy definition `name`, or a rendered error naming the energies there are.
fn energy_def<'m>(module: &'m sema::Module, name: &str) -> Result<&'m sema::DefInfo, String> {
    let energies: Vec<&str> = module
        .defs
        .iter()
        .filter(|d| d.kind == DefKind::Energy)
        .map(|d| d.name.as_str())
        .collect();
    match module.def(name) {
        Some(d) if d.kind == DefKind::Energy => Ok(d),
        Some(_) => Err(format!("error: `{name}` is a model, not an energy")),
        None => {
            let mut msg = format!("error: no energy named `{name}`");
            match crate::diag::suggest(name, energies.iter().copied()) {
                Some(s) => msg.push_str(&format!("; did you mean `{s}`?")),
                None => msg.push_str(&format!("; the program defines: {}", energies.join(", "))),
            }
            Err(msg)
        }
    }
}

/// A parameter store holding every parameter of `module` at its initial value.
pub fn param_store(module: &sema::Module) -> Result<Arc<ParamStore>, String> {
    let store = Arc::new(ParamStore::new());
    for p in &module.params {
        store
            .insert(&p.name, &p.shape, p.initial_value())
            .map_err(|e| format!("error: {e}"))?;
    }
    Ok(store)
}

/// Lowers an energy; its parameters come from `store`.
pub fn compile_energy(
    file: &SourceFile,
    module: &sema::Module,
    name: &str,
    store: Arc<ParamStore>,
    backend: Arc<dyn Backend>,
    dtype: DType,
) -> Result<CompiledEnergy, String> {
    energy_def(module, name)?;
    let graph = lower::lower(module, name).map_err(|d| render_all(&[d], &file.path, &file.text))?;
    CompiledEnergy::in_store(graph, store, backend, dtype).map_err(|e| format!("error: {e}"))
}

/// Parses `"1, 2.5, -3"` into numbers, naming the flag on error.
pub fn parse_vector(flag: &str, text: &str) -> Result<Vec<f64>, String> {
    text.split(',')
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<f64>()
                .map_err(|_| format!("error: {flag} expects comma-separated numbers, found `{t}`"))
        })
        .collect()
}

/// What `ebm eval` computes at one point.
pub struct EvalRequest<'a> {
    pub energy: &'a str,
    pub at: Vec<f64>,
    pub cond: Option<Vec<f64>>,
    pub grad: bool,
    pub hvp: Option<Vec<f64>>,
}

/// The values `ebm eval` prints.
#[derive(Debug, Default, PartialEq)]
pub struct EvalResult {
    pub energy: f64,
    pub grad: Option<Vec<f64>>,
    pub hvp: Option<Vec<f64>>,
}

impl EvalResult {
    pub fn to_json(&self) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("energy".into(), json_number(self.energy));
        for (key, v) in [("grad", &self.grad), ("hvp", &self.hvp)] {
            if let Some(v) = v {
                obj.insert(
                    key.into(),
                    serde_json::Value::Array(v.iter().map(|&x| json_number(x)).collect()),
                );
            }
        }
        serde_json::Value::Object(obj).to_string()
    }

    pub fn to_text(&self) -> String {
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = format!("energy: {}\n", self.energy);
        if let Some(g) = &self.grad {
            out.push_str(&format!("grad:   [{}]\n", list(g)));
        }
        if let Some(h) = &self.hvp {
            out.push_str(&format!("hvp:    [{}]\n", list(h)));
        }
        out
    }
}

/// JSON has no NaN or infinity; they are written as strings so nothing is lost.
fn json_number(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(x.to_string()))
}

/// `ebm eval`: energy, and optionally ∇ₓE and a Hessian-vector product, at one point.
pub fn eval(energy: &CompiledEnergy, req: &EvalRequest) -> Result<EvalResult, String> {
    check_len("--at", &req.at, energy.dim())?;
    match (&req.cond, energy.cond_dim()) {
        (None, 0) => {}
        (None, n) => {
            return Err(format!(
                "error: `{}` is conditional: pass --cond with {n} numbers",
                req.energy
            ));
        }
        (Some(c), n) => check_len("--cond", c, n)?,
    }
    if let Some(v) = &req.hvp {
        check_len("--hvp", v, energy.dim())?;
    }
    match energy.dtype() {
        DType::F64 => eval_in::<f64>(energy, req),
        DType::F32 => eval_in::<f32>(energy, req),
    }
}

fn check_len(flag: &str, v: &[f64], want: usize) -> Result<(), String> {
    if v.len() == want {
        Ok(())
    } else {
        Err(format!(
            "error: {flag} needs {want} numbers, found {}",
            v.len()
        ))
    }
}

fn eval_in<T: Scalar>(energy: &CompiledEnergy, req: &EvalRequest) -> Result<EvalResult, String> {
    let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let widen = |v: Vec<T>| v.into_iter().map(T::to_f64).collect::<Vec<f64>>();
    let x = cast(&req.at);
    let c = req.cond.as_deref().map(cast);
    let fail = |e: crate::runtime::RuntimeError| format!("error: {e}");
    let eg = energy
        .energy_and_grad_x(&x, c.as_deref(), 1)
        .map_err(fail)?;
    let hvp = match &req.hvp {
        Some(v) => Some(widen(
            energy.hvp(&x, &cast(v), c.as_deref(), 1).map_err(fail)?,
        )),
        None => None,
    };
    Ok(EvalResult {
        energy: eg.energy[0].to_f64(),
        grad: req.grad.then(|| widen(eg.grad_x)),
        hvp,
    })
}

/// The compiler stages `ebm dump` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Ast,
    Ir,
    Grad,
    Opt,
    Clif,
}

impl Stage {
    pub fn named(name: &str) -> Result<Stage, String> {
        match name {
            "ast" => Ok(Stage::Ast),
            "ir" => Ok(Stage::Ir),
            "grad" => Ok(Stage::Grad),
            "opt" => Ok(Stage::Opt),
            "clif" => Ok(Stage::Clif),
            other => Err(format!(
                "error: unknown stage `{other}`; expected ast, ir, grad, opt or clif"
            )),
        }
    }
}

/// Which derivative kernel the `grad`, `opt` and `clif` stages show.
pub fn want_named(name: &str) -> Result<KernelSpec, String> {
    let with_value = |k: KernelSpec| KernelSpec { value: true, ..k };
    match name {
        "energy" => Ok(KernelSpec::ENERGY),
        "grad" => Ok(KernelSpec::ENERGY_GRAD),
        "params" => Ok(with_value(KernelSpec::GRAD_PARAMS)),
        "hvp" => Ok(with_value(KernelSpec::HVP)),
        "mixed" => Ok(with_value(KernelSpec::MIXED)),
        "all" => Ok(KernelSpec::ALL),
        other => Err(format!(
            "error: unknown kernel `{other}`; expected energy, grad, params, hvp, mixed or all"
        )),
    }
}

/// `ebm dump`: the text of one stage, for one definition or all of them.
pub fn dump(
    file: &SourceFile,
    stage: Stage,
    name: Option<&str>,
    want: KernelSpec,
    dtype: DType,
) -> Result<String, String> {
    if stage == Stage::Ast {
        return Ok(syntax::print::print(&parse(file)?));
    }
    let module = analyze(file)?;
    let names: Vec<String> = match name {
        Some(n) => vec![
            energy_def(&module, n)
                .map(|d| d.name.clone())
                .or_else(|e| module.def(n).map(|d| d.name.clone()).ok_or(e))?,
        ],
        None => module.defs.iter().map(|d| d.name.clone()).collect(),
    };
    let mut out = String::new();
    for n in names {
        let graph =
            lower::lower(&module, &n).map_err(|d| render_all(&[d], &file.path, &file.text))?;
        let is_energy = module.def(&n).is_some_and(|d| d.kind == DefKind::Energy);
        let text = match stage {
            Stage::Ast => unreachable!(),
            Stage::Ir => print::print(&graph),
            _ if !is_energy => print::print(&graph),
            Stage::Grad => print::print(&derive(&graph, want)?),
            Stage::Opt => print::print(&opt::optimize(
                &derive(&graph, want)?,
                opt::Config::default(),
            )),
            Stage::Clif => {
                let g = opt::optimize(&derive(&graph, want)?, opt::Config::default());
                crate::backend::cpu::clif_text(&g, dtype)?
            }
        };
        out.push_str(&text);
    }
    Ok(out)
}

/// The flags of `ebm sample` (parsed by clap in `main.rs`).
#[derive(Clone, Debug, clap::Args)]
pub struct SampleOptions {
    /// The energy to sample.
    #[arg(long)]
    pub energy: String,
    #[arg(long, default_value = "mala", value_parser = ["ula", "mala", "rwmh", "hmc"])]
    pub sampler: String,
    #[arg(long, default_value_t = 4)]
    pub chains: usize,
    /// Iterations after warm-up (every --thin-th is kept).
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Warm-up iterations (step-size and mass-matrix adaptation for mala/rwmh/hmc).
    #[arg(long, default_value_t = 500)]
    pub warmup: usize,
    #[arg(long, default_value_t = 1)]
    pub thin: usize,
    /// Initial step size (ula/mala: λ; rwmh: proposal sd; hmc: leapfrog ε).
    #[arg(long)]
    pub step: Option<f64>,
    /// ula only: decoupled noise sd σ (samples at temperature σ²/(2·step)).
    #[arg(long)]
    pub noise: Option<f64>,
    /// hmc only: leapfrog steps per transition.
    #[arg(long)]
    pub leapfrog: Option<usize>,
    /// Target acceptance rate of the warm-up adaptation.
    #[arg(long)]
    pub target: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The conditioning input c of a conditional energy.
    #[arg(long, allow_hyphen_values = true)]
    pub cond: Option<String>,
    /// normal, normal:MEAN,STD, uniform:A,B, or a .csv/.npy file of starting points.
    #[arg(long, default_value = "normal", allow_hyphen_values = true)]
    pub init: String,
    #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
    pub dtype: String,
    #[arg(long, default_value = "cpu", value_parser = ["interp", "cpu"])]
    pub backend: String,
    /// Output file: .csv (Stan-style, with the configuration) or .npy.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Also draw a PNG (a scatter over the density for 2-D energies).
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
}

fn has_ext(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .is_some_and(|x| exts.iter().any(|e| x.eq_ignore_ascii_case(e)))
}

/// `--init normal|normal:MEAN,STD|uniform:A,B|FILE`.
pub fn init_named(text: &str) -> Result<script::runners::InitSpec, String> {
    use crate::sample::Init;
    use script::runners::InitSpec;
    let (name, args) = match text.split_once(':') {
        Some((n, a)) => (n, Some(parse_vector("--init", a)?)),
        None => (text, None),
    };
    match (name, args.as_deref()) {
        ("normal", None) => Ok(InitSpec::Dist(Init::Normal { mean: 0.0, sd: 1.0 })),
        ("normal", Some(&[mean, sd])) if sd >= 0.0 && sd.is_finite() && mean.is_finite() => {
            Ok(InitSpec::Dist(Init::Normal { mean, sd }))
        }
        ("uniform", Some(&[a, b])) if a < b && a.is_finite() && b.is_finite() => {
            Ok(InitSpec::Dist(Init::Uniform { a, b }))
        }
        ("uniform", None) => Ok(InitSpec::Dist(Init::Uniform { a: -2.0, b: 2.0 })),
        _ if args.is_none() && has_ext(Path::new(text), &["csv", "npy"]) => {
            Ok(InitSpec::File(text.into()))
        }
        _ => Err(format!(
            "error: --init expects `normal`, `normal:MEAN,STD` (STD ≥ 0), `uniform:A,B` (A < B) or a .csv/.npy file, found `{text}`"
        )),
    }
}

/// The sampler `--sampler` names, with the step-size flags applied.
pub fn sampler_from_flags(o: &SampleOptions) -> Result<crate::sample::SamplerConfig, String> {
    use crate::sample::{Method, UlaOptions};
    let mut cfg = script::runners::sampler_named(&o.sampler).ok_or_else(|| {
        format!(
            "error: unknown sampler `{}`; expected ula, mala, rwmh or hmc",
            o.sampler
        )
    })?;
    if let Some(s) = o.step {
        if !(s > 0.0 && s.is_finite()) {
            return Err(format!("error: --step must be a number > 0, found {s}"));
        }
        cfg.step = s;
    }
    if let Some(t) = o.target {
        if !(t > 0.0 && t < 1.0 && cfg.method.is_mh()) {
            return Err(format!(
                "error: --target must be an acceptance rate between 0 and 1 for mala, rwmh or hmc, found {t}"
            ));
        }
        cfg.target_accept = t;
    }
    if let Some(n) = o.noise {
        if !matches!(cfg.method, Method::Ula(_)) {
            return Err("error: --noise applies to --sampler ula only".into());
        }
        if !(n >= 0.0 && n.is_finite()) {
            return Err(format!("error: --noise must be a number ≥ 0, found {n}"));
        }
        cfg.method = Method::Ula(UlaOptions {
            noise: Some(n),
            ..UlaOptions::default()
        });
    }
    if let Some(l) = o.leapfrog {
        if !matches!(cfg.method, Method::Hmc { .. }) {
            return Err("error: --leapfrog applies to --sampler hmc only".into());
        }
        if l == 0 {
            return Err("error: --leapfrog must be at least 1".into());
        }
        cfg.method = Method::Hmc { leapfrog: l };
    }
    Ok(cfg)
}

/// `ebm sample`: runs the chains, writes the draws (and a plot); returns the
/// run summary and the files written.
pub fn sample(file: &SourceFile, o: &SampleOptions) -> Result<String, String> {
    use script::runners;
    if o.chains == 0 {
        return Err("error: --chains must be at least 1".into());
    }
    if o.steps == 0 {
        return Err("error: --steps must be at least 1".into());
    }
    if o.thin == 0 {
        return Err("error: --thin must be at least 1".into());
    }
    if !has_ext(&o.out, &["csv", "npy"]) {
        return Err(format!(
            "error: --out expects a file name ending in .csv or .npy, found `{}`",
            o.out.display()
        ));
    }
    if let Some(p) = &o.plot
        && !has_ext(p, &["png"])
    {
        return Err(format!(
            "error: --plot expects a file name ending in .png, found `{}`",
            p.display()
        ));
    }
    let sampler = sampler_from_flags(o)?;
    let init = init_named(&o.init)?;
    let cond = o
        .cond
        .as_deref()
        .map(|c| parse_vector("--cond", c))
        .transpose()?;
    let dtype = dtype_named(&o.dtype)?;
    let module = analyze(file)?;
    let store = param_store(&module)?;
    let compiled = compile_energy(
        file,
        &module,
        &o.energy,
        store,
        backend_named(&o.backend)?,
        dtype,
    )?;
    let dim: usize = compiled.dim();
    let kept = o.steps.div_ceil(o.thin);
    if o.chains.saturating_mul(kept).saturating_mul(dim) > runners::MAX_VALUES {
        return Err(format!(
            "error: chains × kept draws × dimension must be at most {}; use fewer chains or steps, or --thin",
            runners::MAX_VALUES
        ));
    }
    match (&cond, compiled.cond_dim()) {
        (None, 0) => {}
        (None, n) => {
            return Err(format!(
                "error: `{}` is conditional: pass --cond with {n} numbers",
                o.energy
            ));
        }
        (Some(_), 0) => {
            return Err(format!(
                "error: `{}` is not conditional: remove --cond",
                o.energy
            ));
        }
        (Some(c), n) => check_len("--cond", c, n)?,
    }
    let mut run = crate::sample::RunConfig::new(o.chains, o.warmup, o.steps, o.seed);
    run.thin = o.thin;
    run.progress = true;
    if let runners::InitSpec::Dist(d) = &init {
        run.init = d.clone();
    }
    let spec = runners::SampleSpec {
        energy: o.energy.clone(),
        sampler,
        run,
        init,
        cond,
        dtype,
        backend: o.backend.clone(),
        span: Default::default(),
        energy_span: Default::default(),
        init_span: Default::default(),
    };
    let draws = runners::run_sample(&compiled, &spec).map_err(|e| format!("error: {e}"))?;
    let mut text = String::new();
    if let Some(s) = &draws.summary {
        text.push_str(&format!("{s}\n"));
    }
    runners::write_draws(&o.out, &draws).map_err(|e| format!("error: {e}"))?;
    text.push_str(&format!("wrote {}\n", o.out.display()));
    if let Some(p) = &o.plot {
        let target = crate::sample::DensityOf::new(&compiled, spec.cond.clone())
            .map_err(|e| format!("error: {e}"))?;
        let title = runners::default_title(&draws);
        runners::plot_draws(p, &draws, Some(&target), "auto", &title)
            .map_err(|e| format!("error: {e}"))?;
        text.push_str(&format!("wrote {}\n", p.display()));
    }
    Ok(text)
}

/// Draws from a sample CSV, or an NPY array of shape `(chains, draws, *x)`.
pub fn read_draws(path: &Path) -> Result<crate::sample::Draws, String> {
    if has_ext(path, &["npy"]) {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("error: cannot read {}: {e}", path.display()))?;
        let a = crate::data::npy::read(&bytes)
            .map_err(|e| format!("error: {}: {e}", path.display()))?;
        if a.shape.len() < 3 {
            return Err(format!(
                "error: {}: expected an array of shape (chains, draws, ...), found {:?}",
                path.display(),
                a.shape
            ));
        }
        let (chains, draws) = (a.shape[0], a.shape[1]);
        let dim: usize = a.shape[2..].iter().product();
        let mut d = crate::sample::Draws::empty(chains, draws, dim);
        d.x = a.data;
        d.energy.fill(f64::NAN);
        d.accept.fill(f64::NAN);
        if a.shape.len() > 3 {
            d.image_shape = Some(a.shape[2..].to_vec());
        }
        Ok(d)
    } else {
        crate::sample::io::read_csv(path).map_err(|e| format!("error: {e}"))
    }
}

/// `ebm summary FILE`: the per-coordinate table of a sample file.
pub fn summary(path: &Path, max_coords: usize) -> Result<String, String> {
    let d = read_draws(path)?;
    if d.chains == 0 || d.draws == 0 {
        return Err(format!("error: {}: no draws", path.display()));
    }
    Ok(crate::stats::summarize(&d, max_coords).to_string())
}

/// The flags of `ebm plot`.
#[derive(Clone, Debug, Default)]
pub struct PlotOptions {
    pub out: Option<std::path::PathBuf>,
    pub energy_file: Option<std::path::PathBuf>,
    pub energy: Option<String>,
    pub cond: Option<String>,
    pub kind: String,
    pub title: Option<String>,
}

/// `ebm plot FILE`: a PNG of a sample file, over the energy's density when
/// `--energy-file` and `--energy` name it. Returns the path written.
pub fn plot(path: &Path, o: &PlotOptions) -> Result<String, String> {
    use script::runners;
    let d = read_draws(path)?;
    if d.chains == 0 || d.draws == 0 {
        return Err(format!("error: {}: no draws", path.display()));
    }
    let out = o.out.clone().unwrap_or_else(|| path.with_extension("png"));
    if !has_ext(&out, &["png"]) {
        return Err(format!(
            "error: --out expects a file name ending in .png, found `{}`",
            out.display()
        ));
    }
    if !runners::PLOT_KINDS.contains(&o.kind.as_str()) {
        return Err(format!(
            "error: unknown plot kind `{}`; expected {}",
            o.kind,
            runners::PLOT_KINDS.join(", ")
        ));
    }
    let title = o
        .title
        .clone()
        .unwrap_or_else(|| runners::default_title(&d));
    let compiled = match (&o.energy_file, &o.energy) {
        (Some(f), Some(name)) => {
            let file = SourceFile::read(f)?;
            let module = analyze(&file)?;
            Some(compile_energy(
                &file,
                &module,
                name,
                param_store(&module)?,
                backend_named("cpu")?,
                DType::F64,
            )?)
        }
        (None, None) => None,
        _ => return Err("error: --energy-file and --energy go together".into()),
    };
    let cond = o
        .cond
        .as_deref()
        .map(|c| parse_vector("--cond", c))
        .transpose()?;
    let target = match &compiled {
        Some(c) => {
            if c.dim() != d.dim {
                return Err(format!(
                    "error: the energy has {} coordinates but the samples have {}",
                    c.dim(),
                    d.dim
                ));
            }
            Some(
                crate::sample::DensityOf::new(c, cond)
                    .map_err(|e| format!("error: {e}; pass --cond"))?,
            )
        }
        None => None,
    };
    let energy = target
        .as_ref()
        .map(|t| t as &dyn crate::sample::BatchEnergy);
    runners::plot_draws(&out, &d, energy, &o.kind, &title).map_err(|e| format!("error: {e}"))?;
    Ok(format!("wrote {}\n", out.display()))
}
