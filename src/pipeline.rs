//! The compiler stages strung together: read a file, parse, analyse, lower,
//! compile, evaluate, print a stage. The CLI (`src/main.rs`, `src/cli`), the
//! embedding API, the benchmarks and the tests all go through here.
//!
//! This module knows nothing of command-line flags. Functions that can only
//! fail with diagnostics about the source text (`parse`, `analyze`, `check`,
//! `check_source`, `run`) return them already rendered against the file (a
//! `String`, `file:line:col` and caret), so callers only print them; the
//! others return an [`Error`], which says whether its text is rendered
//! diagnostics or a plain message (without an `error:` prefix: that is the
//! printer's business).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::artifact::{self, Artifact};
use crate::autodiff::derived::{KernelSpec, derive};
use crate::backend::{Backend, DType};
use crate::diag::{Diagnostic, render_all};
use crate::ir::{Graph, print};
use crate::runtime::{CompiledEnergy, ParamStore, Scalar};
use crate::sema::DefKind;
use crate::syntax::{self, ast};
use crate::{lower, opt, script, sema};

/// Why a pipeline step failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// Diagnostics against the source file (data; rendered when displayed).
    Diagnostics(Diagnostics),
    /// A message about something other than the source text (a missing
    /// file, an unknown energy, a wrong-length vector); no `error:` prefix.
    Message(String),
}

impl Error {
    pub fn message(text: impl Into<String>) -> Error {
        Error::Message(text.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Diagnostics(d) => d.fmt(f),
            Error::Message(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for Error {}

impl From<Diagnostics> for Error {
    fn from(d: Diagnostics) -> Error {
        Error::Diagnostics(d)
    }
}

/// Diagnostics with the file they point into. They stay data (codes, spans,
/// messages) for whoever handles them; `Display` renders them the way the
/// CLI prints them (`file:line:col`, the source line, a caret).
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostics {
    pub diags: Vec<Diagnostic>,
    pub path: String,
    pub text: String,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_all(&self.diags, &self.path, &self.text))
    }
}

impl std::error::Error for Diagnostics {}

/// For callers that only print: the rendered text.
impl From<Diagnostics> for String {
    fn from(d: Diagnostics) -> String {
        d.to_string()
    }
}

/// A source file read into memory, with the name used in diagnostics.
/// The largest program file read (far beyond any hand-written script).
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// A program's text from its bytes: a leading byte-order mark (which some
/// editors write) is dropped; invalid UTF-8 becomes U+FFFD, which the parser
/// then reports with a caret.
fn source_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<SourceFile, Error> {
        // Regular files only (a FIFO would block), of a size a program can have.
        let bytes = crate::data::read_regular(path, MAX_SOURCE_BYTES)
            .map_err(|e| Error::Message(e.to_string()))?;
        Ok(SourceFile {
            path: path.display().to_string(),
            text: source_text(&bytes),
        })
    }

    /// A program read from `reader` (standard input, for `ebm run -`),
    /// named `name` in diagnostics; at most [`MAX_SOURCE_BYTES`] are read.
    pub fn from_reader(name: &str, reader: impl std::io::Read) -> Result<SourceFile, Error> {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        reader
            .take(MAX_SOURCE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Message(format!("cannot read {name}: {e}")))?;
        if bytes.len() as u64 > MAX_SOURCE_BYTES {
            return Err(Error::Message(format!(
                "{name} holds more than {} MiB: not a program",
                MAX_SOURCE_BYTES >> 20
            )));
        }
        Ok(SourceFile {
            path: name.to_string(),
            text: source_text(&bytes),
        })
    }

    /// The folder that relative data paths in the script are resolved against
    /// (the current folder for a program read from standard input).
    pub fn base_dir(&self) -> &Path {
        Path::new(&self.path).parent().unwrap_or(Path::new("."))
    }

    fn diagnostics(&self, diags: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics {
            diags,
            path: self.path.clone(),
            text: self.text.clone(),
        }
    }
}

/// Parses, or returns the diagnostics.
pub fn parse(file: &SourceFile) -> Result<ast::Program, Diagnostics> {
    syntax::parse(&file.text).map_err(|d| file.diagnostics(d))
}

/// Parses and analyses (constants folded by `lower::eval_const`), or returns
/// the diagnostics.
pub fn analyze(file: &SourceFile) -> Result<sema::Module, Diagnostics> {
    analyze_in(file, file.base_dir())
}

/// `analyze` with relative `load(..)` paths resolved against `base_dir`
/// instead of the file's folder (the `ebm-macros` crate resolves them
/// against the host crate's manifest folder, when it checks and at run time).
pub fn analyze_in(file: &SourceFile, base_dir: &Path) -> Result<sema::Module, Diagnostics> {
    let program = parse(file)?;
    sema::analyze(&program, base_dir, lower::eval_const).map_err(|d| file.diagnostics(d))
}

/// Everything `ebm check` does: succeeds iff the program is valid (it parses,
/// passes semantic analysis, every definition lowers to IR, and every script
/// statement's arguments check). A valid program may still carry warnings
/// (`lint`: an energy unbounded below); they are in [`Checked::warnings`].
pub fn check(file: &SourceFile) -> Result<Checked, Diagnostics> {
    check_in(file, file.base_dir())
}

/// `check` with relative `load(..)` paths resolved against `base_dir`.
pub fn check_in(file: &SourceFile, base_dir: &Path) -> Result<Checked, Diagnostics> {
    let module = analyze_in(file, base_dir)?;
    for def in &module.defs {
        lower::lower(&module, &def.name).map_err(|d| file.diagnostics(vec![d]))?;
    }
    script::check(&module).map_err(|d| file.diagnostics(d))?;
    let count = |k: DefKind| module.defs.iter().filter(|d| d.kind == k).count();
    Ok(Checked {
        energies: count(DefKind::Energy),
        models: count(DefKind::Model),
        statements: module.statements.len(),
        warnings: warnings(file, &module),
    })
}

/// What a valid program holds (`ebm check` reports it).
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub energies: usize,
    pub models: usize,
    pub statements: usize,
    /// Warnings (never errors): a valid program still runs.
    pub warnings: Diagnostics,
}

/// The warnings of every energy of an analysed program (`lint`), the
/// parameters at their initial values.
pub fn warnings(file: &SourceFile, module: &sema::Module) -> Diagnostics {
    file.diagnostics(crate::lint::module_warnings(module, &file.text))
}

/// The warnings of one energy, its parameters' values from `store`
/// (what `ebm sample` checks before it samples).
pub fn energy_warnings(
    file: &SourceFile,
    module: &sema::Module,
    name: &str,
    store: &ParamStore,
) -> Diagnostics {
    let params = |p: &str| store.get(p);
    file.diagnostics(crate::lint::energy_warnings(
        module, name, &file.text, &params,
    ))
}

/// `ebm run`: analyses the script, then executes its statements.
pub fn run(file: &SourceFile, out: &mut dyn std::io::Write) -> Result<(), Diagnostics> {
    let module = analyze(file)?;
    run_module(file, &module, out)
}

/// `run` on a program already analysed (the CLI prints its `warnings`
/// first).
pub fn run_module(
    file: &SourceFile,
    module: &sema::Module,
    out: &mut dyn std::io::Write,
) -> Result<(), Diagnostics> {
    script::run(module, (&file.path, &file.text), out).map_err(|d| file.diagnostics(d))
}

/// `check` on text held in memory (the fuzzer and tests use it); `path` is
/// only the name printed in diagnostics.
pub fn check_source(path: &str, text: &str) -> Result<Checked, Diagnostics> {
    check(&SourceFile {
        path: path.to_string(),
        text: text.to_string(),
    })
}

/// `check_source` with relative `load(..)` paths resolved against `base_dir`.
pub fn check_source_in(path: &str, text: &str, base_dir: &Path) -> Result<Checked, Diagnostics> {
    let file = SourceFile {
        path: path.to_string(),
        text: text.to_string(),
    };
    check_in(&file, base_dir)
}

/// The energy definition `name`, or an error naming the energies there are.
fn energy_def<'m>(module: &'m sema::Module, name: &str) -> Result<&'m sema::DefInfo, Error> {
    let energies: Vec<&str> = module
        .defs
        .iter()
        .filter(|d| d.kind == DefKind::Energy)
        .map(|d| d.name.as_str())
        .collect();
    match module.def(name) {
        Some(d) if d.kind == DefKind::Energy => Ok(d),
        Some(_) => Err(Error::Message(format!(
            "`{name}` is a model, not an energy"
        ))),
        None => {
            let mut msg = format!("no energy named `{name}`");
            match crate::diag::suggest(name, energies.iter().copied()) {
                Some(s) => msg.push_str(&format!("; did you mean `{s}`?")),
                None => msg.push_str(&format!("; the program defines: {}", energies.join(", "))),
            }
            Err(Error::Message(msg))
        }
    }
}

/// A parameter store holding every parameter of `module` at its initial value.
pub fn param_store(module: &sema::Module) -> Result<Arc<ParamStore>, Error> {
    let store = Arc::new(ParamStore::new());
    for p in &module.params {
        store
            .insert(&p.name, &p.shape, p.initial_value())
            .map_err(|e| Error::Message(e.to_string()))?;
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
) -> Result<CompiledEnergy, Error> {
    energy_def(module, name)?;
    compile_def(file, module, name, store, backend, dtype)
}

/// The lowered graph of the energy `name` (its parameters are read by full
/// name from whatever store it is later bound to).
pub fn energy_graph(file: &SourceFile, module: &sema::Module, name: &str) -> Result<Graph, Error> {
    energy_def(module, name)?;
    lower::lower(module, name).map_err(|d| Error::Diagnostics(file.diagnostics(vec![d])))
}

/// Lowers a definition already known to exist and binds it to `store`.
fn compile_def(
    file: &SourceFile,
    module: &sema::Module,
    name: &str,
    store: Arc<ParamStore>,
    backend: Arc<dyn Backend>,
    dtype: DType,
) -> Result<CompiledEnergy, Error> {
    let graph =
        lower::lower(module, name).map_err(|d| Error::Diagnostics(file.diagnostics(vec![d])))?;
    CompiledEnergy::in_store(graph, store, backend, dtype)
        .map_err(|e| Error::Message(e.to_string()))
}

/// Lowers a model (`model f(x) -> [K] = ...`); its values are the kernel's
/// `Slot::Value`, and pullbacks take a per-sample seed shaped like them.
pub fn compile_model(
    file: &SourceFile,
    module: &sema::Module,
    name: &str,
    store: Arc<ParamStore>,
    backend: Arc<dyn Backend>,
    dtype: DType,
) -> Result<CompiledEnergy, Error> {
    match module.def(name) {
        Some(d) if d.kind == DefKind::Model => {}
        Some(_) => {
            return Err(Error::Message(format!(
                "`{name}` is an energy, not a model"
            )));
        }
        None => return Err(Error::Message(format!("no model named `{name}`"))),
    }
    compile_def(file, module, name, store, backend, dtype)
}

/// What goes into a model file besides the program itself.
pub struct BuildRequest<'a> {
    /// The energies and models to include; empty means all of them.
    pub names: &'a [String],
    /// The scaling the parameters were trained under (from a trained run's
    /// parameter file): applied inside each graph, so the file's
    /// definitions take points in the data's own coordinates.
    pub scale: Option<&'a crate::data::Scaler>,
    /// Facts recorded in the header (where the parameters came from).
    pub provenance: std::collections::BTreeMap<String, String>,
}

/// `ebm build`: the model file of `module`'s definitions with the
/// parameter values `store` holds now.
pub fn build_model(
    file: &SourceFile,
    module: &sema::Module,
    store: &ParamStore,
    req: &BuildRequest,
) -> Result<Artifact, Error> {
    for (i, name) in req.names.iter().enumerate() {
        if module.def(name).is_none() {
            energy_def(module, name)?;
        }
        if req.names[..i].contains(name) {
            return Err(Error::message(format!("`{name}` is named twice")));
        }
    }
    let scale = req.scale.map(|s| artifact::Scale {
        shift: s.shift.clone(),
        mul: s.mul.clone(),
    });
    let graphs = lower::lower_all(module, req.names, scale.as_ref())
        .map_err(|d| Error::Diagnostics(file.diagnostics(vec![d])))?;
    Artifact::new(
        &file.path,
        &file.text,
        graphs,
        &store.snapshot(),
        scale,
        req.provenance.clone(),
    )
    .map_err(|e| Error::message(e.to_string()))
}

/// Compiles the definition `name` of a model file, its parameters read
/// from `store` (which `api::Artifact` fills from the file).
pub fn compile_artifact(
    artifact: &Artifact,
    name: &str,
    kind: artifact::Kind,
    store: Arc<ParamStore>,
    backend: Arc<dyn Backend>,
    dtype: DType,
) -> Result<CompiledEnergy, Error> {
    let graph = artifact_graph(artifact, name, kind)?;
    CompiledEnergy::in_store(graph.clone(), store, backend, dtype)
        .map_err(|e| Error::message(e.to_string()))
}

/// The graph of the definition `name` of a model file, which must be of `kind`.
pub fn artifact_graph<'a>(
    artifact: &'a Artifact,
    name: &str,
    kind: artifact::Kind,
) -> Result<&'a Graph, Error> {
    let (sig, graph) = artifact
        .def(name)
        .map_err(|e| Error::message(e.to_string()))?;
    if sig.kind != kind {
        let (is, not) = match sig.kind {
            artifact::Kind::Energy => ("an energy", "a model"),
            artifact::Kind::Model => ("a model", "an energy"),
        };
        return Err(Error::message(format!("`{name}` is {is}, not {not}")));
    }
    Ok(graph)
}

/// A parameter store holding a model file's parameter values.
pub fn artifact_store(artifact: &Artifact) -> Result<Arc<ParamStore>, Error> {
    let store = Arc::new(ParamStore::new());
    for p in artifact.params() {
        store
            .insert(&p.name, &p.shape, p.data.clone())
            .map_err(|e| Error::message(e.to_string()))?;
    }
    Ok(store)
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
                .map(|&x| crate::diag::shortest(x))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = format!("energy: {}\n", crate::diag::shortest(self.energy));
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
pub fn eval(energy: &CompiledEnergy, req: &EvalRequest) -> Result<EvalResult, Error> {
    let name = req.energy;
    check_len("the point", &req.at, energy.dim(), name)?;
    match (&req.cond, energy.cond_dim()) {
        (None, 0) => {}
        (None, n) => {
            return Err(Error::Message(format!(
                "`{name}` is conditional: it needs a conditioning input of {n} numbers"
            )));
        }
        (Some(c), n) => check_len("the conditioning input", c, n, name)?,
    }
    if let Some(v) = &req.hvp {
        check_len("the HVP direction", v, energy.dim(), name)?;
    }
    match energy.dtype() {
        DType::F64 => eval_in::<f64>(energy, req),
        DType::F32 => eval_in::<f32>(energy, req),
    }
}

fn check_len(what: &str, v: &[f64], want: usize, energy: &str) -> Result<(), Error> {
    if v.len() == want {
        Ok(())
    } else {
        Err(Error::Message(format!(
            "{what} has {} numbers; `{energy}` needs {want}",
            v.len()
        )))
    }
}

fn eval_in<T: Scalar>(energy: &CompiledEnergy, req: &EvalRequest) -> Result<EvalResult, Error> {
    let cast = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect::<Vec<T>>();
    let widen = |v: Vec<T>| v.into_iter().map(T::to_f64).collect::<Vec<f64>>();
    let x = cast(&req.at);
    let c = req.cond.as_deref().map(cast);
    let fail = |e: crate::runtime::RuntimeError| Error::Message(e.to_string());
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
    Wgsl,
}

impl Stage {
    /// Every stage by name, in pipeline order.
    pub const NAMES: &[(&str, Stage)] = &[
        ("ast", Stage::Ast),
        ("ir", Stage::Ir),
        ("grad", Stage::Grad),
        ("opt", Stage::Opt),
        ("clif", Stage::Clif),
        ("wgsl", Stage::Wgsl),
    ];

    /// The stage called `name` (`ast`, `ir`, `grad`, `opt`, `clif`, `wgsl`).
    pub fn named(name: &str) -> Result<Stage, Error> {
        Stage::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, s)| s)
            .ok_or_else(|| {
                Error::Message(format!(
                    "unknown stage `{name}`; expected ast, ir, grad, opt or clif"
                ))
            })
    }
}

/// The derivative kernel called `name`, as the `grad`, `opt` and `clif`
/// stages show it: `energy`, `grad`, `params`, `hvp`, `mixed` or `all`.
pub fn kernel_named(name: &str) -> Result<KernelSpec, Error> {
    let with_value = |k: KernelSpec| KernelSpec { value: true, ..k };
    match name {
        "energy" => Ok(KernelSpec::ENERGY),
        "grad" => Ok(KernelSpec::ENERGY_GRAD),
        "params" => Ok(with_value(KernelSpec::GRAD_PARAMS)),
        "hvp" => Ok(with_value(KernelSpec::HVP)),
        "mixed" => Ok(with_value(KernelSpec::MIXED)),
        "all" => Ok(KernelSpec::ALL),
        other => Err(Error::Message(format!(
            "unknown kernel `{other}`; expected energy, grad, params, hvp, mixed or all"
        ))),
    }
}

/// The sampler moves `ebm dump --kernel` can show, as the engine compiles
/// them (ULA with the default step λ = 0.01).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    Ula,
    Mala,
    Rwmh,
    Leapfrog,
}

/// What the `grad`, `opt` and `clif` stages of `ebm dump` show: a
/// derivative kernel, or a fused sampler step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DumpKernel {
    Spec(KernelSpec),
    Step(StepKind),
}

/// A derivative kernel (`kernel_named`) or a sampler step by name.
pub fn dump_kernel_named(name: &str) -> Result<DumpKernel, Error> {
    Ok(match name {
        "ula" => DumpKernel::Step(StepKind::Ula),
        "mala" => DumpKernel::Step(StepKind::Mala),
        "rwmh" => DumpKernel::Step(StepKind::Rwmh),
        "leapfrog" => DumpKernel::Step(StepKind::Leapfrog),
        other => DumpKernel::Spec(kernel_named(other).map_err(|_| {
            Error::Message(format!(
                "unknown kernel `{other}`; expected energy, grad, params, hvp, mixed, all, ula, mala, rwmh or leapfrog"
            ))
        })?),
    })
}

/// The graph `kernel` computes for an energy, before optimisation.
fn kernel_graph(energy: &Graph, kernel: DumpKernel) -> Result<Graph, String> {
    use crate::runtime::steps;
    match kernel {
        DumpKernel::Spec(spec) => derive(energy, spec),
        DumpKernel::Step(StepKind::Ula) => {
            let m = steps::UlaMove {
                drift: 0.005,
                noise: 0.1,
                clip: None,
                clamp: None,
            };
            steps::ula(energy, m).map(|s| s.graph)
        }
        DumpKernel::Step(StepKind::Mala) => steps::mala(energy).map(|s| s.graph),
        DumpKernel::Step(StepKind::Rwmh) => steps::rwmh(energy).map(|s| s.graph),
        DumpKernel::Step(StepKind::Leapfrog) => steps::leapfrog(energy).map(|s| s.graph),
    }
}

/// `ebm dump`: the text of one stage, for one definition or all of them.
pub fn dump(
    file: &SourceFile,
    stage: Stage,
    name: Option<&str>,
    kernel: DumpKernel,
    dtype: DType,
) -> Result<String, Error> {
    dump_in(file, file.base_dir(), stage, name, kernel, dtype)
}

/// `dump` with relative data paths resolved against `base_dir` (the REPL's
/// program is text in memory, its folder the session's).
pub fn dump_in(
    file: &SourceFile,
    base_dir: &Path,
    stage: Stage,
    name: Option<&str>,
    kernel: DumpKernel,
    dtype: DType,
) -> Result<String, Error> {
    if stage == Stage::Ast {
        return Ok(syntax::print::print(&parse(file)?));
    }
    let module = analyze_in(file, base_dir)?;
    let names: Vec<String> = match name {
        Some(n) => vec![
            energy_def(&module, n)
                .map(|d| d.name.clone())
                .or_else(|e| module.def(n).map(|d| d.name.clone()).ok_or(e))?,
        ],
        None => module.defs.iter().map(|d| d.name.clone()).collect(),
    };
    let mut out = String::new();
    if stage == Stage::Wgsl {
        // Once, not per kernel: every module starts with it.
        out.push_str("// Every module starts with this prelude, then its kernel below.\n");
        out.push_str(crate::backend::gpu::wgsl::PRELUDE);
    }
    for n in names {
        let graph =
            lower::lower(&module, &n).map_err(|d| Error::Diagnostics(file.diagnostics(vec![d])))?;
        let is_energy = module.def(&n).is_some_and(|d| d.kind == DefKind::Energy);
        out.push_str(&dump_graph(&graph, is_energy, stage, kernel, dtype)?);
    }
    Ok(out)
}

/// `ebm dump` of a model file: the same stages from its stored graphs
/// (there is no AST: the file holds IR).
pub fn dump_artifact(
    artifact: &Artifact,
    stage: Stage,
    name: Option<&str>,
    kernel: DumpKernel,
    dtype: DType,
) -> Result<String, Error> {
    if stage == Stage::Ast {
        return Err(Error::message(
            "a model file holds IR, not source: use --stage ir, grad, opt or clif (`ebm info --source` shows the source text it was built from)",
        ));
    }
    let names: Vec<&str> = match name {
        Some(n) => vec![n],
        None => artifact.defs().iter().map(|d| d.name.as_str()).collect(),
    };
    let mut out = String::new();
    for n in names {
        let (sig, graph) = artifact.def(n).map_err(|e| Error::message(e.to_string()))?;
        let is_energy = sig.kind == artifact::Kind::Energy;
        out.push_str(&dump_graph(graph, is_energy, stage, kernel, dtype)?);
    }
    Ok(out)
}

/// The optimised graph of the derivative kernel `spec` of the energy
/// `name`: what `ebm dump --stage opt --kernel K` prints (and the REPL's
/// `:grad` shows as math, `ir::math`).
pub fn optimized_kernel_graph(
    file: &SourceFile,
    module: &sema::Module,
    name: &str,
    spec: KernelSpec,
) -> Result<Graph, Error> {
    let energy = energy_graph(file, module, name)?;
    optimized(&energy, DumpKernel::Spec(spec))
}

/// `kernel` of an energy's graph, optimised as every stage after `grad` shows it.
fn optimized(energy: &Graph, kernel: DumpKernel) -> Result<Graph, Error> {
    let derived = kernel_graph(energy, kernel).map_err(Error::Message)?;
    Ok(opt::optimize(&derived, opt::Config::default()))
}

/// One definition's graph at `stage` (models show their graph at every stage).
fn dump_graph(
    graph: &Graph,
    is_energy: bool,
    stage: Stage,
    kernel: DumpKernel,
    dtype: DType,
) -> Result<String, Error> {
    Ok(match stage {
        Stage::Ast | Stage::Ir => print::print(graph),
        _ if !is_energy => print::print(graph),
        Stage::Grad => print::print(&kernel_graph(graph, kernel).map_err(Error::Message)?),
        Stage::Opt => print::print(&optimized(graph, kernel)?),
        Stage::Clif => crate::backend::cpu::clif_text(&optimized(graph, kernel)?, dtype)
            .map_err(Error::Message)?,
        Stage::Wgsl => crate::backend::gpu::wgsl_text(&optimized(graph, kernel)?)
            .map_err(|e| Error::Message(e.to_string()))?,
    })
}

/// Draws from sample files: one CSV (ebm's format, one CmdStan chain, or
/// the `NAME.csv` base of CmdStan's `NAME_1.csv …`), several CmdStan CSVs
/// (one chain each, in order), or one NPY array of shape `(chains, draws,
/// *x)` (by the file's extension).
pub fn read_draws(paths: &[std::path::PathBuf]) -> Result<crate::sample::Draws, Error> {
    let is_npy = |p: &Path| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("npy"));
    match paths {
        [one] if is_npy(one) => read_npy_draws(one),
        _ if paths.iter().any(|p| is_npy(p)) => Err(Error::Message(
            "an .npy sample is one file; several files must be CmdStan CSVs".into(),
        )),
        _ => crate::sample::io::read_csv_files(paths).map_err(Error::Message),
    }
}

fn read_npy_draws(path: &Path) -> Result<crate::sample::Draws, Error> {
    let bytes = crate::data::read_regular(path, crate::data::MAX_DATA_BYTES)
        .map_err(|e| Error::Message(e.to_string()))?;
    let a = crate::data::npy::read(&bytes)
        .map_err(|e| Error::Message(format!("{}: {e}", path.display())))?;
    if a.shape.len() < 3 {
        return Err(Error::Message(format!(
            "{}: expected an array of shape (chains, draws, ...), found {:?}",
            path.display(),
            a.shape
        )));
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
}
