//! The commands of the `ebm` binary: reading flags into the library's types
//! (with the flags' own wording in every error), calling `ebm::pipeline` and
//! the runners, and the text each command prints. Nothing here is part of
//! the library.

pub mod draws;
pub mod evaluate;
pub mod jem;
pub mod logz;
pub mod model;
pub mod repl;
pub mod sample;
pub mod train;

use std::path::Path;
use std::sync::Arc;

use ebm::backend::{Backend, DType};
use ebm::pipeline::{self, EvalRequest, SourceFile, Stage};

/// Why a command failed, as it is printed.
#[derive(Debug)]
pub enum Failure {
    /// Printed as it is: diagnostics rendered against the source file.
    Rendered(String),
    /// Printed after `error: `.
    Message(String),
}

impl From<pipeline::Error> for Failure {
    fn from(e: pipeline::Error) -> Failure {
        match e {
            pipeline::Error::Diagnostics(d) => Failure::Rendered(d.to_string()),
            pipeline::Error::Message(text) => Failure::Message(text),
        }
    }
}

impl From<pipeline::Diagnostics> for Failure {
    fn from(d: pipeline::Diagnostics) -> Failure {
        Failure::Rendered(d.to_string())
    }
}

impl Failure {
    /// The text on standard error, ending in a newline.
    pub fn text(&self) -> String {
        let mut text = match self {
            Failure::Rendered(text) => text.clone(),
            Failure::Message(text) => format!("error: {text}"),
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// A plain failure message (printed after `error: `).
pub fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(Failure::Message(message.into()))
}

/// Reads the program a command names.
/// The program at `path`; `-` reads it from standard input.
pub fn read(path: &Path) -> Result<SourceFile> {
    if path == Path::new("-") {
        return Ok(SourceFile::from_reader("<stdin>", std::io::stdin().lock())?);
    }
    Ok(SourceFile::read(path)?)
}

/// What a command's FILE holds: a program's source, or a model file
/// (told apart by its first bytes, never by its name).
pub enum Program {
    Source(SourceFile),
    Model(Box<ebm::api::Artifact>),
}

/// Opens the program or model file a command names (`-`: a program on
/// standard input).
pub fn open(path: &Path) -> Result<Program> {
    if path != Path::new("-") && ebm::artifact::is_model_file(path) {
        return Ok(Program::Model(Box::new(
            ebm::api::Artifact::load(path).map_err(Failure::Message)?,
        )));
    }
    Ok(Program::Source(read(path)?))
}

/// The program at `path`, which must be source (commands that only read
/// programs say so for a model file).
pub fn read_source(path: &Path, command: &str) -> Result<SourceFile> {
    match open(path)? {
        Program::Source(f) => Ok(f),
        Program::Model(_) => fail(format!(
            "{} is a model file; `ebm {command}` reads a program's source (.ebm)",
            path.display()
        )),
    }
}

/// The energy `name` of the program or model file at `path`, compiled for
/// `backend` and `dtype`, its parameters from `params` when given (a
/// trained run's file), and the data scaling that file records: what
/// `eval`, `sample`, `evaluate` and `logz` all start from. A model file's
/// definitions already apply their scaling.
pub fn trained_energy(
    path: &Path,
    name: &str,
    params: Option<&Path>,
    backend: &str,
    dtype: &str,
) -> Result<(ebm::runtime::CompiledEnergy, Option<ebm::data::Scaler>)> {
    trained_energy_in(path, name, params, backend, dtype, false)
}

/// `trained_energy` that first prints the energy's warnings (`lint`, with
/// the parameters it will run with) on standard error: what `ebm sample`
/// runs before it samples.
pub fn trained_energy_warned(
    path: &Path,
    name: &str,
    params: Option<&Path>,
    backend: &str,
    dtype: &str,
) -> Result<(ebm::runtime::CompiledEnergy, Option<ebm::data::Scaler>)> {
    trained_energy_in(path, name, params, backend, dtype, true)
}

fn trained_energy_in(
    path: &Path,
    name: &str,
    params: Option<&Path>,
    backend: &str,
    dtype: &str,
    lint: bool,
) -> Result<(ebm::runtime::CompiledEnergy, Option<ebm::data::Scaler>)> {
    let backend = backend_named(backend)?;
    let dtype = dtype_named(dtype)?;
    let file = match open(path)? {
        Program::Source(file) => file,
        Program::Model(model) => {
            let energy = model
                .energy_with(name, backend, dtype)
                .map_err(Failure::Message)?;
            if let Some(p) = params {
                let scale = sample::load_trained(p, energy.store())?;
                if scale.is_some() {
                    return fail(format!(
                        "{}: these parameters were trained on scaled data; rebuild the model file with them (`ebm build --params`) instead",
                        p.display()
                    ));
                }
            }
            return Ok((energy, None));
        }
    };
    let module = analyze(&file)?;
    let store = pipeline::param_store(&module)?;
    let scale = match params {
        Some(p) => sample::load_trained(p, &store)?,
        None => None,
    };
    if lint {
        warn(&pipeline::energy_warnings(&file, &module, name, &store));
    }
    let energy = pipeline::compile_energy(&file, &module, name, store, backend, dtype)?;
    Ok((energy, scale))
}

/// Parses and analyses a program, reporting rendered diagnostics.
pub fn analyze(file: &SourceFile) -> Result<ebm::sema::Module> {
    pipeline::analyze(file).map_err(Failure::from)
}

/// A backend by its `--backend` name.
pub fn backend_named(name: &str) -> Result<Arc<dyn Backend>> {
    ebm::backend::named(name).map_err(Failure::Message)
}

/// A dtype by its `--dtype` name.
pub fn dtype_named(name: &str) -> Result<DType> {
    match name {
        "f64" => Ok(DType::F64),
        "f32" => Ok(DType::F32),
        other => fail(format!("unknown dtype `{other}`; expected `f32` or `f64`")),
    }
}

/// Parses `"1, 2.5, -3"` into finite numbers, naming the flag on error
/// (`nan` or `inf` in a point, a range or a conditioning input is a
/// mistake, never a value to run with).
pub fn parse_vector(flag: &str, text: &str) -> Result<Vec<f64>> {
    text.split(',')
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => fail(format!("{flag} expects finite numbers, found `{t}`")),
            Err(_) => fail(format!(
                "{flag} expects comma-separated numbers, found `{t}`"
            )),
        })
        .collect()
}

/// `--FLAG` must hold `want` numbers.
pub fn check_len(flag: &str, v: &[f64], want: usize) -> Result<()> {
    if v.len() == want {
        Ok(())
    } else {
        fail(format!("{flag} needs {want} numbers, found {}", v.len()))
    }
}

/// Whether `path` ends in one of `exts` (any case).
pub fn has_ext(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .is_some_and(|x| exts.iter().any(|e| x.eq_ignore_ascii_case(e)))
}

/// `--data FILE` (.csv or .npy, with `columns` and `label`) or
/// `toy:NAME[:ROWS]`, a seeded toy set of `default_rows` rows unless given.
pub fn read_dataset(
    path: &Path,
    columns: Option<&[String]>,
    label: Option<&str>,
    seed: u64,
    default_rows: usize,
) -> Result<ebm::data::Dataset> {
    let text = path.to_string_lossy();
    let Some(spec) = text.strip_prefix("toy:") else {
        return ebm::data::Dataset::from_file(path, columns, label)
            .map_err(|e| Failure::Message(format!("{}: {e}", path.display())));
    };
    let (name, rows) = match spec.split_once(':') {
        Some((name, n)) => (
            name,
            n.parse::<usize>().map_err(|_| {
                Failure::Message(format!(
                    "--data toy:NAME:ROWS expects a row count, found `{n}`"
                ))
            })?,
        ),
        None => (spec, default_rows),
    };
    ebm::data::toy(name, rows, None, seed).map_err(|e| Failure::Message(format!("--data: {e}")))
}

/// The toy set `--data toy:NAME[..]` names, if it names one.
pub fn toy_name(path: &Path) -> Option<String> {
    let text = path.to_string_lossy();
    let spec = text.strip_prefix("toy:")?;
    Some(spec.split(':').next().unwrap_or(spec).to_string())
}

/// `ebm check FILE`.
pub fn check(path: &Path) -> Result<String> {
    let file = match open(path)? {
        Program::Source(file) => file,
        Program::Model(m) => {
            return Ok(format!(
                "ok: {} (model file: {} energies, {} models, {} parameter values)\n",
                path.display(),
                m.energies().len(),
                m.models().len(),
                m.file().param_count()
            ));
        }
    };
    let c = pipeline::check(&file).map_err(Failure::from)?;
    warn(&c.warnings);
    let n = |k: usize, what: &str| format!("{k} {what}{}", if k == 1 { "" } else { "s" });
    Ok(format!(
        "ok: {} ({}, {}, {})\n",
        file.path,
        n(c.energies, "energy").replace("energys", "energies"),
        n(c.models, "model"),
        n(c.statements, "statement")
    ))
}

/// Prints warnings on standard error (a warning never stops a command).
pub fn warn(w: &pipeline::Diagnostics) {
    if !w.diags.is_empty() {
        eprint!("{w}");
    }
}

/// `ebm run FILE`: the script prints as it runs (warnings first, on
/// standard error).
pub fn run(path: &Path) -> Result<String> {
    let file = read_source(path, "run")?;
    let module = analyze(&file)?;
    warn(&pipeline::warnings(&file, &module));
    pipeline::run_module(&file, &module, &mut std::io::stdout()).map_err(Failure::from)?;
    Ok(String::new())
}

/// The flags of `ebm eval`.
pub struct EvalFlags {
    pub energy: String,
    pub at: String,
    pub data: Option<std::path::PathBuf>,
    pub params: Option<std::path::PathBuf>,
    pub cond: Option<String>,
    pub grad: bool,
    pub hvp: Option<String>,
    pub dtype: String,
    pub backend: String,
    pub json: bool,
}

/// `ebm eval FILE`: one line of JSON, or a few lines of text.
pub fn eval(path: &Path, o: &EvalFlags) -> Result<String> {
    // Parameters trained on scaled data see x' = (x − shift)·mul; points
    // given in the data's scale are mapped there, and derivatives back by
    // the chain rule (E is the density's energy up to a constant).
    let (compiled, scale) =
        trained_energy(path, &o.energy, o.params.as_deref(), &o.backend, &o.dtype)?;
    if let Some(d) = &o.data {
        return eval_rows(&compiled, d, scale.as_ref(), o);
    }
    let mut request = EvalRequest {
        energy: &o.energy,
        at: parse_vector("--at", &o.at)?,
        cond: o
            .cond
            .as_deref()
            .map(|c| parse_vector("--cond", c))
            .transpose()?,
        grad: o.grad,
        hvp: o
            .hvp
            .as_deref()
            .map(|v| parse_vector("--hvp", v))
            .transpose()?,
    };
    // The library checks these too; here they are worded as flags.
    check_len("--at", &request.at, compiled.dim())?;
    match (&request.cond, compiled.cond_dim()) {
        (None, 0) => {}
        (None, n) => {
            return fail(format!(
                "`{}` is conditional: pass --cond with {n} numbers",
                o.energy
            ));
        }
        (Some(c), n) => check_len("--cond", c, n)?,
    }
    if let Some(v) = &request.hvp {
        check_len("--hvp", v, compiled.dim())?;
    }
    if let Some(sc) = &scale {
        sc.apply(&mut request.at);
        if let Some(v) = request.hvp.as_mut() {
            v.iter_mut().zip(&sc.mul).for_each(|(a, m)| *a *= m);
        }
    }
    let mut result = pipeline::eval(&compiled, &request)?;
    if let Some(sc) = &scale {
        for g in [result.grad.as_mut(), result.hvp.as_mut()]
            .into_iter()
            .flatten()
        {
            g.iter_mut().zip(&sc.mul).for_each(|(a, m)| *a *= m);
        }
    }
    Ok(if o.json {
        format!("{}\n", result.to_json())
    } else {
        result.to_text()
    })
}

/// `ebm eval --data FILE`: E at every row, one per line (or a JSON array).
fn eval_rows(
    e: &ebm::runtime::CompiledEnergy,
    path: &Path,
    scale: Option<&ebm::data::Scaler>,
    o: &EvalFlags,
) -> Result<String> {
    if e.cond_dim() > 0 {
        return fail("--data evaluates unconditional energies only");
    }
    let mut data = ebm::data::Dataset::from_file(path, None, None)
        .map_err(|err| Failure::Message(format!("{}: {err}", path.display())))?;
    data.check_width(e.dim())
        .map_err(|err| Failure::Message(format!("{}: {err}", path.display())))?;
    if let Some(sc) = scale {
        sc.apply(&mut data.x);
    }
    let values = ebm::train::evaluate::energies(e, &data.x, data.rows)
        .map_err(|err| Failure::Message(err.to_string()))?;
    let text: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
    Ok(if o.json {
        format!("[{}]\n", text.join(", "))
    } else {
        format!("{}\n", text.join("\n"))
    })
}

/// `ebm dump FILE --stage S`.
pub fn dump(
    path: &Path,
    stage: &str,
    energy: Option<&str>,
    kernel: &str,
    dtype: &str,
) -> Result<String> {
    let (stage, kernel, dtype) = (
        Stage::named(stage)?,
        pipeline::dump_kernel_named(kernel)?,
        dtype_named(dtype)?,
    );
    Ok(match open(path)? {
        Program::Source(file) => pipeline::dump(&file, stage, energy, kernel, dtype)?,
        Program::Model(m) => pipeline::dump_artifact(m.file(), stage, energy, kernel, dtype)?,
    })
}

/// `ebm bench`: one JSON line per workload, printed as each finishes.
/// The most timed repetitions `ebm bench` runs.
const MAX_BENCH_REPEAT: usize = 1000;

pub fn bench(
    workload: &str,
    repeat: usize,
    threads: Option<usize>,
    backend: &str,
) -> Result<String> {
    // Each repetition runs a whole workload (up to a second or so): more
    // than a thousand is a mistyped flag, not a measurement.
    if !(1..=MAX_BENCH_REPEAT).contains(&repeat) {
        return Err(Failure::Message(format!(
            "--repeat must be between 1 and {MAX_BENCH_REPEAT}, found {repeat}"
        )));
    }
    if threads == Some(0) {
        return Err(Failure::Message("--threads must be at least 1".into()));
    }
    let workloads = if workload == "all" {
        ebm::bench::workload_names()
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        workload.split(',').map(|s| s.trim().to_string()).collect()
    };
    let opts = ebm::bench::Options {
        workloads,
        repeat,
        threads: threads.unwrap_or_else(ebm::backend::cpu::default_threads),
        backend: backend.to_string(),
    };
    // `bench` words its own errors (with their `error:` prefix where it has one).
    ebm::bench::run(&opts, &mut std::io::stdout()).map_err(Failure::Rendered)?;
    Ok(String::new())
}
