//! The driver strings the stages together for the CLI and the tests: read a
//! file, parse, analyse, lower. Each function returns diagnostics already
//! rendered against the file, so callers only print them.

use std::path::Path;
use std::sync::Arc;

use crate::autodiff::derived::{Want, derive};
use crate::backend::cpu::Cpu;
use crate::backend::{Backend, DType, Interp};
use crate::diag::render_all;
use crate::ir::print;
use crate::runtime::{CompiledEnergy, Scalar};
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
    match name {
        "interp" => Ok(Arc::new(Interp)),
        "cpu" => Ok(Arc::new(Cpu::new())),
        other => Err(format!(
            "error: unknown backend `{other}`; expected `interp` or `cpu`"
        )),
    }
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

/// Lowers an energy and binds its parameters' initial values.
pub fn compile_energy(
    file: &SourceFile,
    module: &sema::Module,
    name: &str,
    backend: Arc<dyn Backend>,
    dtype: DType,
) -> Result<CompiledEnergy, String> {
    energy_def(module, name)?;
    let graph = lower::lower(module, name).map_err(|d| render_all(&[d], &file.path, &file.text))?;
    CompiledEnergy::new(
        graph,
        |p| module.param(p).map(sema::Param::initial_value),
        backend,
        dtype,
    )
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
    let eg = energy.energy_and_grad_x(&x, c.as_deref(), 1)?;
    let hvp = match &req.hvp {
        Some(v) => Some(widen(energy.hvp(&x, &cast(v), c.as_deref(), 1)?)),
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
pub fn want_named(name: &str) -> Result<Want, String> {
    let base = Want {
        energy: true,
        ..Want::default()
    };
    match name {
        "energy" => Ok(Want::ENERGY),
        "grad" => Ok(Want::ENERGY_GRAD),
        "params" => Ok(Want {
            grad_params: true,
            ..base
        }),
        "hvp" => Ok(Want { hvp: true, ..base }),
        "mixed" => Ok(Want {
            mixed: true,
            ..base
        }),
        "all" => Ok(Want {
            grad_x: true,
            grad_params: true,
            hvp: true,
            mixed: true,
            ..base
        }),
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
    want: Want,
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
