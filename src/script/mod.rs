//! Script execution for `ebm run`: the top-level statements of a module, in
//! source order. Each statement kind is one row of `STATEMENTS`; a row
//! without a handler reports "not supported yet". Runners (`sample`, `plot`,
//! `save`, `train`, `export`, data sets) are added by giving their row a
//! handler; handlers receive the checked `Statement` (with its original call
//! AST for their own argument checking) and the run state.

pub mod args;
pub mod errors;
pub mod estimate;
pub mod runners;
pub mod training;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::{Diagnostic, Span};
use crate::lower;
use crate::runtime::{CompiledEnergy, ParamStore};
use crate::sample::Draws;
use crate::sema::{Module, Statement, Tensor};
use crate::syntax::ast::{CallArg, Expr, ExprKind};

use args::{R, Scope};
use runners::{OutputSpec, SampleSpec, failed};

/// What a checked statement will do.
#[derive(Clone, Debug)]
pub enum Action {
    /// `print(..)`; the samples of each `summary(s)` argument, in order.
    Print(Vec<String>),
    /// A tensor `let`, inlined by `sema` where used.
    Nothing,
    Sample(Box<SampleSpec>),
    Plot(OutputSpec),
    Save(OutputSpec),
    Summary(String),
    Data(Box<training::DataSpec>),
    Train(Box<training::TrainSpec>),
    Evaluate(Box<training::EvaluateSpec>),
    Ais(Box<estimate::AisSpec>),
    Jem(Box<training::JemSpec>),
    LoadParams(std::path::PathBuf),
    Export(Box<training::ExportSpec>),
    /// A statement `ebm run` cannot execute yet (E0501).
    Unsupported,
}

/// Reads a statement's arguments (reporting every bad one) into its action.
pub type Checker = fn(&mut Scope, &Statement) -> R<Action>;

/// One statement kind: its name and, once implemented, its checker (which
/// `ebm check` runs too); `run` carries out the action it returns.
pub struct StatementKind {
    pub name: &'static str,
    pub check: Option<Checker>,
}

/// Every statement `ebm run` knows. `let NAME = expr` of a tensor expression
/// is checked by `sema` and inlined where used, so it needs no work here.
pub const STATEMENTS: &[StatementKind] = &[
    StatementKind {
        name: "print",
        check: Some(check_print),
    },
    StatementKind {
        name: "let",
        check: Some(|_, _| Ok(Action::Nothing)),
    },
    StatementKind {
        name: "sample",
        check: Some(|s, st| runners::parse_sample(s, st).map(|p| Action::Sample(Box::new(p)))),
    },
    StatementKind {
        name: "plot",
        check: Some(|s, st| runners::parse_plot(s, st).map(Action::Plot)),
    },
    StatementKind {
        name: "save",
        check: Some(|s, st| runners::parse_save(s, st).map(Action::Save)),
    },
    StatementKind {
        name: "summary",
        check: Some(|s, st| runners::parse_summary(s, &st.call).map(|(n, _)| Action::Summary(n))),
    },
    StatementKind {
        name: "train",
        check: Some(|s, st| training::parse_train(s, st).map(|t| Action::Train(Box::new(t)))),
    },
    StatementKind {
        name: "jem",
        check: Some(|s, st| training::parse_jem(s, st).map(|t| Action::Jem(Box::new(t)))),
    },
    StatementKind {
        name: "evaluate",
        check: Some(|s, st| training::parse_evaluate(s, st).map(|t| Action::Evaluate(Box::new(t)))),
    },
    StatementKind {
        name: "ais",
        check: Some(|s, st| estimate::parse_ais(s, st).map(|t| Action::Ais(Box::new(t)))),
    },
    StatementKind {
        name: "load_params",
        check: Some(|s, st| training::parse_load_params(s, st).map(Action::LoadParams)),
    },
    StatementKind {
        name: "export",
        check: Some(|s, st| training::parse_export(s, st).map(|e| Action::Export(Box::new(e)))),
    },
];

fn check_data(scope: &mut Scope, stmt: &Statement) -> R<Action> {
    training::parse_data(scope, stmt).map(|d| Action::Data(Box::new(d)))
}

/// The samples of one `sample(..)` statement, kept for later statements.
pub struct Sampled {
    pub energy: CompiledEnergy,
    pub cond: Option<Vec<f64>>,
    pub draws: Draws,
}

/// State shared by the statements of one run.
pub struct Runner<'a> {
    pub module: &'a Module,
    /// The program's parameters (initial values at the start), shared by
    /// every energy a statement compiles.
    pub params: Arc<ParamStore>,
    /// Samples by binding name.
    pub samples: HashMap<String, Sampled>,
    /// Data sets by name.
    pub data: HashMap<String, training::DataSpec>,
    /// The data scaling each trained definition's parameters expect.
    pub scales: HashMap<String, crate::data::Scaler>,
    /// The script's path and text (recorded in exported model files).
    pub source: (&'a str, &'a str),
    pub out: &'a mut dyn Write,
}

/// Checks the arguments of every runner statement, in order, without
/// running anything; returns each statement's action.
pub fn check(module: &Module) -> Result<Vec<Action>, Vec<Diagnostic>> {
    crate::sema::with_big_stack(|| {
        let mut scope = Scope::new(module);
        let mut actions = Vec::new();
        let mut diags = Vec::new();
        for stmt in &module.statements {
            // A `data NAME = SOURCE(..)` item is a statement named by its source.
            let data_item = stmt.binding.is_some()
                && stmt.name != "let"
                && !STATEMENTS.iter().any(|k| k.name == stmt.name);
            let checker: Option<Option<Checker>> = if data_item {
                Some(Some(check_data))
            } else {
                STATEMENTS
                    .iter()
                    .find(|k| k.name == stmt.name)
                    .map(|k| k.check)
            };
            let action = match checker {
                Some(Some(c)) => match c(&mut scope, stmt) {
                    Ok(a) => a,
                    Err(d) => {
                        diags.extend(d);
                        Action::Unsupported
                    }
                },
                _ => Action::Unsupported,
            };
            if data_item && let Some(b) = &stmt.binding {
                // A data set that failed its checks is still defined, so later
                // statements naming it are not reported again.
                let info = match &action {
                    Action::Data(d) => Some(training::data_info(d)),
                    _ => None,
                };
                scope.data.push((b.clone(), info));
            }
            if stmt.name == "sample"
                && let Some(b) = &stmt.binding
            {
                let energy = match &action {
                    Action::Sample(s) => s.energy.clone(),
                    _ => String::new(),
                };
                scope.samples.push((b.clone(), energy));
            }
            actions.push(action);
        }
        if diags.is_empty() {
            diags = check_outputs_static(module, &actions);
        }
        if diags.is_empty() {
            Ok(actions)
        } else {
            diags.sort_by_key(|d| d.span.start);
            Err(diags)
        }
    })
}

/// Every `save`/`plot` output can be written (a folder, or a folder that
/// refuses new files, is reported before the first statement runs, not
/// after the sampling it follows). A CmdStan `save` checks each chain's file.
fn check_outputs(module: &Module, actions: &[Action]) -> Result<(), Vec<Diagnostic>> {
    check_outputs_where(module, actions, |_| true)
}

/// `check_outputs` for statement `k` only (the REPL runs one statement at
/// a time, after the program it extends).
pub fn check_outputs_of(
    module: &Module,
    actions: &[Action],
    k: usize,
) -> Result<(), Vec<Diagnostic>> {
    check_outputs_where(module, actions, |i| i == k)
}

/// The files the statements `include` selects write, with the span of
/// each path.
fn outputs_where(
    module: &Module,
    actions: &[Action],
    include: impl Fn(usize) -> bool,
) -> Vec<(PathBuf, Span)> {
    let mut chains: HashMap<&str, usize> = HashMap::new();
    let mut outputs = Vec::new();
    for (i, (stmt, a)) in module.statements.iter().zip(actions).enumerate() {
        if !include(i) && !matches!(a, Action::Sample(_)) {
            continue;
        }
        match a {
            Action::Sample(spec) => {
                if let Some(b) = &stmt.binding {
                    chains.insert(b, spec.run.chains);
                }
            }
            Action::Save(o) => {
                let n = chains.get(o.samples.as_str()).copied().unwrap_or(1);
                // `parse_save` refused a CmdStan output without `.csv`.
                let paths = crate::sample::io::csv_paths(&o.path, n, o.format)
                    .unwrap_or_else(|_| vec![o.path.clone()]);
                outputs.extend(paths.into_iter().map(|p| (p, o.path_span)));
            }
            Action::Plot(o) => outputs.push((o.path.clone(), o.path_span)),
            Action::Export(e) => outputs.push((e.path.clone(), e.path_span)),
            _ => {}
        }
    }
    outputs
}

/// The files a script reads: `load` and `use` (recorded by analysis), data
/// sets, starting points and `load_params`.
fn inputs(module: &Module, actions: &[Action]) -> Vec<PathBuf> {
    let mut inputs = module.inputs.clone();
    for a in actions {
        match a {
            Action::Data(d) => {
                inputs.push(PathBuf::from(&d.train.source));
                if let Some(h) = &d.heldout {
                    inputs.push(PathBuf::from(&h.source));
                }
            }
            Action::Sample(spec) => {
                if let runners::InitSpec::File(p) = &spec.init {
                    inputs.push(p.clone());
                }
            }
            Action::LoadParams(p) => inputs.push(p.clone()),
            _ => {}
        }
    }
    inputs
}

/// Whether two paths name the same existing file (by device and inode,
/// so links and `./` spellings are seen through).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        (Ok(x), Ok(y)) => {
            use std::os::unix::fs::MetadataExt;
            x.dev() == y.dev() && x.ino() == y.ino()
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok(),
        _ => false,
    }
}

/// The output checks that touch nothing, run by `check` (so by `ebm check`
/// too): no output is a folder or special file, and none is a file the
/// script reads (`load("points.csv")` then `save(s, "points.csv")` would
/// overwrite its own input).
fn check_outputs_static(module: &Module, actions: &[Action]) -> Vec<Diagnostic> {
    let inputs = inputs(module, actions);
    outputs_where(module, actions, |_| true)
        .into_iter()
        .filter_map(|(path, span)| {
            if let Err(m) = crate::data::atomic::not_a_file(&path) {
                return Some(errors::output_not_writable(&m, span));
            }
            inputs.iter().any(|i| same_file(i, &path)).then(|| {
                let m = format!(
                    "{} is read by this script, and writing it would replace that input",
                    path.display()
                );
                errors::output_not_writable(&m, span)
            })
        })
        .collect()
}

fn check_outputs_where(
    module: &Module,
    actions: &[Action],
    include: impl Fn(usize) -> bool,
) -> Result<(), Vec<Diagnostic>> {
    let diags: Vec<Diagnostic> = outputs_where(module, actions, include)
        .iter()
        .filter_map(|(path, span)| {
            crate::data::atomic::check_writable(path)
                .err()
                .map(|e| errors::output_not_writable(&e, *span))
        })
        .collect();
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

/// Runs every statement of `module` in order, writing output to `out`.
/// Every statement's arguments are checked before the first one runs.
/// `source` (path, text) is recorded in the model files `export` writes.
pub fn run(
    module: &Module,
    source: (&str, &str),
    out: &mut dyn Write,
) -> Result<(), Vec<Diagnostic>> {
    let actions = check(module)?;
    if let Some((stmt, _)) = module
        .statements
        .iter()
        .zip(&actions)
        .find(|(_, a)| matches!(a, Action::Unsupported))
    {
        return Err(vec![not_supported(stmt)]);
    }
    check_outputs(module, &actions)?;
    let params = Arc::new(ParamStore::new());
    for p in &module.params {
        params
            .insert(&p.name, &p.shape, p.initial_value())
            .map_err(|e| vec![Diagnostic::new("E0502", p.span, e.to_string())])?;
    }
    let mut runner = Runner {
        module,
        params,
        samples: HashMap::new(),
        data: HashMap::new(),
        scales: HashMap::new(),
        source,
        out,
    };
    for (stmt, action) in module.statements.iter().zip(actions) {
        execute(&mut runner, stmt, action).map_err(|d| vec![d])?;
    }
    Ok(())
}

/// Carries out one checked statement (its `Action` from [`check`]).
pub fn execute(r: &mut Runner, stmt: &Statement, action: Action) -> Result<(), Diagnostic> {
    match action {
        Action::Print(names) => print(r, stmt, &names),
        Action::Nothing => Ok(()),
        Action::Sample(spec) => sample(r, stmt, &spec),
        Action::Plot(o) => plot(r, stmt, &o),
        Action::Save(o) => save(r, stmt, &o),
        Action::Summary(name) => {
            let text = summary_text(r, &name);
            write(r, stmt.span, &text)
        }
        Action::Data(d) => {
            r.data.insert(d.name.clone(), *d);
            Ok(())
        }
        Action::Train(t) => train(r, stmt, &t),
        Action::Evaluate(e) if e.model => evaluate_classifier(r, stmt, &e),
        Action::Evaluate(e) => evaluate(r, stmt, &e),
        Action::Ais(a) => ais(r, stmt, &a),
        Action::Jem(j) => jem(r, stmt, &j),
        Action::LoadParams(p) => load_params(r, stmt, &p),
        Action::Export(e) => export(r, stmt, &e),
        Action::Unsupported => Err(not_supported(stmt)),
    }
}

fn compile(
    r: &Runner,
    energy: &str,
    dtype: crate::backend::DType,
    span: Span,
) -> Result<CompiledEnergy, Diagnostic> {
    let graph = lower::lower(r.module, energy)?;
    let backend =
        crate::backend::named("cpu").map_err(failed("cannot compile the energy", span))?;
    CompiledEnergy::in_store(graph, r.params.clone(), backend, dtype)
        .map_err(|e| e.to_string())
        .map_err(failed("cannot compile the energy", span))
}

/// `export(..)`: a model file of definitions with the parameters' values
/// now (after any `train` before it), each taking points in the data's
/// coordinates when it was trained on scaled data.
fn export(r: &mut Runner, stmt: &Statement, e: &training::ExportSpec) -> Result<(), Diagnostic> {
    let fail = failed("cannot export", e.path_span);
    let scales: Vec<&crate::data::Scaler> =
        e.names.iter().filter_map(|n| r.scales.get(n)).collect();
    if scales.windows(2).any(|w| w[0] != w[1])
        || (!scales.is_empty() && scales.len() != e.names.len())
    {
        return Err(fail(
            "these definitions were trained on differently scaled data: export them to separate files".into(),
        ));
    }
    let scale = scales.first().map(|s| crate::artifact::Scale {
        shift: s.shift.clone(),
        mul: s.mul.clone(),
    });
    let graphs = lower::lower_all(r.module, &e.names, scale.as_ref())?;
    let provenance = std::collections::BTreeMap::from([(
        "params".to_string(),
        "values at export(..) in the script".to_string(),
    )]);
    let (path, text) = r.source;
    let model =
        crate::artifact::Artifact::new(path, text, graphs, &r.params.snapshot(), scale, provenance)
            .map_err(|err| fail(err.to_string()))?;
    model.write(&e.path).map_err(|err| fail(err.to_string()))?;
    let text = format!(
        "wrote {} ({}; {} parameter values)",
        e.path.display(),
        e.names.join(", "),
        model.param_count()
    );
    write(r, stmt.span, &text)
}

fn train(r: &mut Runner, stmt: &Statement, t: &training::TrainSpec) -> Result<(), Diagnostic> {
    use crate::train::{Trainer, session};
    let energy = compile(r, &t.energy, t.dtype, t.span)?;
    if let Some(s) = &r.data[&t.data].scale {
        r.scales.insert(t.energy.clone(), s.clone());
    }
    let data = &r.data[&t.data];
    let mut cfg = t.config.clone();
    if !t.init_given {
        cfg.buffer.fresh = crate::train::buffer::Fresh::around(&data.train.x);
    }
    let metadata = crate::train::checkpoint::run_metadata(&t.energy, data.scale.as_ref());
    let fail = failed("training failed", t.span);
    let width = energy.cond_dim();
    let codes = |labels: &Option<Vec<i64>>| {
        labels
            .as_deref()
            .map(|l| crate::train::concepts::one_hot_codes(l, width))
            .transpose()
    };
    let train_codes = match width {
        0 => None,
        _ => codes(&data.train.labels).map_err(&fail)?,
    };
    let heldout_codes = match &data.heldout {
        Some(h) if width > 0 => codes(&h.labels).map_err(&fail)?,
        _ => None,
    };
    let mut trainer = match (&train_codes, width) {
        (Some(c), 1..) => Trainer::conditional(
            &energy,
            &data.train.x,
            crate::train::Concepts { of_row: c, width },
            cfg,
        ),
        _ => Trainer::new(&energy, &data.train.x, cfg),
    }
    .map_err(|e| fail(e.to_string()))?;
    let session = session::Session {
        dir: t.out.clone(),
        checkpoint_every: t.checkpoint_every,
        snapshot_every: t.snapshot_every,
        eval_every: 100,
        progress: true,
        run: String::new(),
        metadata,
        heldout: data.heldout.as_ref().map(|h| h.x.clone()),
        heldout_labels: None,
        heldout_cond: heldout_codes,
        stop_after: None,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = session::run(&mut trainer, &session, &stop).map_err(|e| fail(e.to_string()))?;
    let last = report.last.clone().unwrap_or_default();
    let text = format!(
        "train({}, {}) {} iterations in {:.2} s ({:.1} it/s): loss {:.5}, E+ {:.4}, E- {:.4}, {} rollbacks; wrote {}",
        t.energy,
        t.data,
        report.ran,
        report.seconds,
        report.iters_per_s(),
        last.loss,
        last.e_pos,
        last.e_neg,
        report.rollbacks.len(),
        t.out.display()
    );
    write(r, stmt.span, &text)
}

fn evaluate(
    r: &mut Runner,
    stmt: &Statement,
    e: &training::EvaluateSpec,
) -> Result<(), Diagnostic> {
    use crate::train::evaluate::{EvalConfig, evaluate as run_eval};
    let energy = compile(r, &e.energy, crate::backend::DType::F64, e.span)?;
    let data = &r.data[&e.data];
    let rows = data.heldout.as_ref().unwrap_or(&data.train);
    let cfg = EvalConfig::long_run(e.chains, e.steps, e.step, e.seed, data.toy.clone());
    let ev = run_eval(&energy, &rows.x, &cfg)
        .map_err(|err| failed("evaluation failed", e.span)(err.to_string()))?;
    let text = format!("evaluate({}, {}):\n{}", e.energy, e.data, ev.to_text());
    write(r, stmt.span, &text)
}

/// `ais(..)`: log Z ± SE, and with a data set the base fitted to its
/// training rows and the held-out NLL of its held-out rows.
fn ais(r: &mut Runner, stmt: &Statement, a: &estimate::AisSpec) -> Result<(), Diagnostic> {
    use crate::sample::ais::{self, Gaussian};
    let fail = failed("ais failed", a.span);
    let energy = compile(r, &a.energy, crate::backend::DType::F64, a.span)?;
    let d = energy.dim();
    let data = a.data.as_ref().map(|n| &r.data[n]);
    let base = match data {
        Some(spec) => Gaussian::fit(&spec.train.x, d).map_err(|e| fail(e.to_string()))?,
        None => Gaussian::standard(d),
    };
    let est = ais::ais_compiled(&energy, &base, &a.config).map_err(|e| fail(e.to_string()))?;
    let mut text = format!(
        "ais({}{}): log Z = {:.5} ± {:.5} ({} runs × {} chains, {} temperatures, {} base; weight ESS {:.1} per run)",
        a.energy,
        a.data
            .as_ref()
            .map(|n| format!(", {n}"))
            .unwrap_or_default(),
        est.log_z,
        est.se,
        a.config.runs,
        a.config.chains,
        a.config.steps,
        if data.is_some() {
            "fitted Gaussian"
        } else {
            "standard normal"
        },
        est.runs.iter().map(|r| r.ess).sum::<f64>() / est.runs.len().max(1) as f64
    );
    if let Some(rows) = data.and_then(|s| s.heldout.as_ref()) {
        let n = rows.rows;
        let e = crate::train::evaluate::energies(&energy, &rows.x, n)
            .map_err(|e| fail(e.to_string()))?;
        if let Some((nll, se)) = ais::heldout_nll(&e, &est) {
            text.push_str(&format!(
                "\n  held-out NLL = {nll:.5} ± {se:.5} nats ({n} rows)"
            ));
        }
    }
    write(r, stmt.span, &text)
}

/// A model compiled with its JEM energies, in the script's store.
fn classifier(
    r: &Runner,
    model: &str,
    dtype: crate::backend::DType,
    span: Span,
) -> Result<crate::train::classify::Classifier, Diagnostic> {
    let model = compile(r, model, dtype, span)?;
    crate::train::classify::Classifier::new(model)
        .map_err(|e| failed("cannot compile the classifier", span)(e.to_string()))
}

/// Data labels as class indices (checked against the model at check time).
fn class_indices(d: &crate::data::Dataset) -> Vec<usize> {
    d.labels
        .as_ref()
        .map(|l| l.iter().map(|&y| y.max(0) as usize).collect())
        .unwrap_or_default()
}

fn jem(r: &mut Runner, stmt: &Statement, j: &training::JemSpec) -> Result<(), Diagnostic> {
    use crate::train::{Labels, Trainer, session};
    let c = classifier(r, &j.model, j.dtype, j.span)?;
    if let Some(s) = &r.data[&j.data].scale {
        r.scales.insert(j.model.clone(), s.clone());
    }
    let data = &r.data[&j.data];
    let labels = class_indices(&data.train);
    let metadata = crate::train::checkpoint::run_metadata(&j.model, data.scale.as_ref());
    let fail = failed("training failed", j.span);
    let lab = Labels {
        of_row: &labels,
        classes: c.classes,
    };
    let mut trainer =
        Trainer::classifier(&c.energy, &c.model, &data.train.x, lab, j.config.clone())
            .map_err(|e| fail(e.to_string()))?;
    let session = session::Session {
        dir: j.out.clone(),
        checkpoint_every: j.checkpoint_every,
        snapshot_every: 0,
        eval_every: 100,
        progress: true,
        run: String::new(),
        metadata,
        heldout: data.heldout.as_ref().map(|h| h.x.clone()),
        heldout_labels: data.heldout.as_ref().map(class_indices),
        heldout_cond: None,
        stop_after: None,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = session::run(&mut trainer, &session, &stop).map_err(|e| fail(e.to_string()))?;
    let last = report.last.clone().unwrap_or_default();
    let text = format!(
        "jem({}, {}) {} {} iterations in {:.2} s ({:.1} it/s): loss {:.5}, CE {:.4}, batch accuracy {:.3}, E+ {:.4}, E- {:.4}, {} rollbacks; wrote {}",
        j.model,
        j.data,
        j.config.objective.name(),
        report.ran,
        report.seconds,
        report.iters_per_s(),
        last.loss,
        last.ce.unwrap_or(f64::NAN),
        last.acc.unwrap_or(f64::NAN),
        last.e_pos,
        last.e_neg,
        report.rollbacks.len(),
        j.out.display()
    );
    write(r, stmt.span, &text)
}

fn evaluate_classifier(
    r: &mut Runner,
    stmt: &Statement,
    e: &training::EvaluateSpec,
) -> Result<(), Diagnostic> {
    let c = classifier(r, &e.energy, crate::backend::DType::F64, e.span)?;
    let data = &r.data[&e.data];
    let rows = data.heldout.as_ref().unwrap_or(&data.train);
    let labels = class_indices(rows);
    let (lo, hi) = rows
        .x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |m, &v| {
            (m.0.min(v), m.1.max(v))
        });
    let range = if lo < hi { (lo, hi) } else { (-1.0, 1.0) };
    let rep = crate::train::classify::evaluate(&c, &rows.x, &labels, &[], range, e.seed)
        .map_err(|err| failed("evaluation failed", e.span)(err.to_string()))?;
    let cal = &rep.calibration;
    let mut text = format!(
        "evaluate({}, {}): {} rows, accuracy {:.4}, ECE {:.4}, NLL {:.4}\n  OOD AUROC (msp / logsumexp / grad_norm):",
        e.energy, e.data, rep.rows, cal.accuracy, cal.ece, cal.nll
    );
    for (set, per) in &rep.auroc {
        let v = |k: &str| per.get(k).copied().unwrap_or(f64::NAN);
        text.push_str(&format!(
            "\n    {set}: {:.4} / {:.4} / {:.4}",
            v("msp"),
            v("logsumexp"),
            v("grad_norm")
        ));
    }
    write(r, stmt.span, &text)
}

fn load_params(r: &mut Runner, stmt: &Statement, p: &std::path::Path) -> Result<(), Diagnostic> {
    let loaded = crate::train::checkpoint::load_params(p, &r.params)
        .map_err(|e| failed("cannot load parameters", stmt.call.span)(e.to_string()))?;
    let mut text = format!(
        "loaded {} parameters from {}",
        loaded.names.len(),
        p.display()
    );
    // A script has no data scale to map to: say that its points are in the
    // training's scaled coordinates (`ebm sample --params` maps them back).
    if loaded.scale.is_some() {
        text.push_str(
            " (trained on scaled data: positions in this script are in the scaled coordinates)",
        );
    }
    write(r, stmt.span, &text)
}

fn write(r: &mut Runner, span: Span, text: &str) -> Result<(), Diagnostic> {
    let nl = if text.ends_with('\n') { "" } else { "\n" };
    write!(r.out, "{text}{nl}")
        .map_err(|e| Diagnostic::new("E0503", span, format!("cannot write output: {e}")))
}

/// Compiles the energy of a `sample(..)` statement in the run's store and
/// samples it.
pub fn draw(r: &Runner, spec: &SampleSpec) -> Result<Sampled, Diagnostic> {
    let graph = lower::lower(r.module, &spec.energy)?;
    let backend = crate::backend::named(&spec.backend)
        .map_err(failed("cannot compile the energy", spec.energy_span))?;
    let energy = CompiledEnergy::in_store(graph, r.params.clone(), backend, spec.dtype)
        .map_err(|e| e.to_string())
        .map_err(failed("cannot compile the energy", spec.energy_span))?;
    if let runners::InitSpec::File(p) = &spec.init {
        runners::load_init(p, energy.dim())
            .map_err(failed("cannot read the starting points", spec.init_span))?;
    }
    let draws = runners::run_sample(&energy, spec).map_err(failed("sampling failed", spec.span))?;
    Ok(Sampled {
        energy,
        cond: spec.cond.clone(),
        draws,
    })
}

fn sample(r: &mut Runner, stmt: &Statement, spec: &SampleSpec) -> Result<(), Diagnostic> {
    let Sampled {
        energy,
        cond: _,
        draws,
    } = draw(r, spec)?;
    let summary = draws
        .summary
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let head = match &stmt.binding {
        Some(b) => format!("{b} = sample({})", spec.energy),
        None => format!("sample({})", spec.energy),
    };
    let mut text = format!("{head} with {summary}");
    if let Some(device) = energy.backend().device() {
        text.push_str(&format!("\n  device: {device}"));
    }
    write(r, stmt.span, &text)?;
    if let Some(b) = &stmt.binding {
        r.samples.insert(
            b.clone(),
            Sampled {
                energy,
                cond: spec.cond.clone(),
                draws,
            },
        );
    }
    Ok(())
}

/// `plot([a, b, ..], ..)`: one panel per sample set, titled by its energy,
/// on the axes that hold every set's points.
fn plot_panels(r: &mut Runner, stmt: &Statement, o: &OutputSpec) -> Result<(), Diagnostic> {
    let mut targets = Vec::new();
    for (name, span) in &o.panels {
        let s = &r.samples[name];
        if s.draws.dim != 2 {
            return Err(failed("cannot plot", *span)(format!(
                "panels show 2-D samples, `{name}` has {} coordinates",
                s.draws.dim
            )));
        }
        let target = crate::sample::DensityOf::new(&s.energy, s.cond.clone())
            .map_err(|e| e.to_string())
            .map_err(failed("cannot plot", *span))?;
        targets.push(target);
    }
    let panels: Vec<crate::plot::Panel> = o
        .panels
        .iter()
        .zip(&targets)
        .map(|((name, _), t)| {
            let s = &r.samples[name];
            crate::plot::Panel {
                title: s.energy.energy_graph().name.clone(),
                points: s.draws.x.clone(),
                energy: Some(t),
            }
        })
        .collect();
    let all: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.points.iter().copied())
        .collect();
    let bounds = crate::plot::bounds_2d(&all);
    // One row for up to three panels, else a square-ish grid.
    let cols = match panels.len() {
        n @ 1..=3 => n,
        n => (n as f64).sqrt().ceil() as usize,
    };
    let title = o.title.clone().unwrap_or_default();
    crate::plot::scatter_panels(&o.path, &title, &panels, cols, bounds)
        .map_err(failed("cannot plot", o.path_span))?;
    let text = format!("wrote {}", o.path.display());
    write(r, stmt.span, &text)
}

fn plot(r: &mut Runner, stmt: &Statement, o: &OutputSpec) -> Result<(), Diagnostic> {
    if o.panels.len() > 1 {
        return plot_panels(r, stmt, o);
    }
    let s = &r.samples[&o.samples];
    let target = crate::sample::DensityOf::new(&s.energy, s.cond.clone())
        .map_err(|e| e.to_string())
        .map_err(failed("cannot plot", o.samples_span))?;
    let title = o
        .title
        .clone()
        .unwrap_or_else(|| runners::default_title(&s.draws));
    runners::plot_draws(&o.path, &s.draws, Some(&target), &o.kind, &title)
        .map_err(failed("cannot plot", o.path_span))?;
    let text = format!("wrote {}", o.path.display());
    write(r, stmt.span, &text)
}

fn save(r: &mut Runner, stmt: &Statement, o: &OutputSpec) -> Result<(), Diagnostic> {
    let s = &r.samples[&o.samples];
    let written = runners::write_draws_as(&o.path, &s.draws, o.format)
        .map_err(failed("cannot save", o.path_span))?;
    let text = format!("wrote {}", crate::sample::io::describe_files(&written));
    write(r, stmt.span, &text)
}

fn summary_text(r: &Runner, name: &str) -> String {
    let d = &r.samples[name].draws;
    crate::stats::summarize(d, 20).to_string()
}

/// `print(..)`: its `summary(s)` arguments are checked here (`sema` checks the rest).
fn check_print(scope: &mut Scope, stmt: &Statement) -> R<Action> {
    let mut names = Vec::new();
    let mut diags = Vec::new();
    for a in call_args(stmt) {
        if let CallArg::Positional(e) = a
            && is_summary(e)
        {
            match runners::parse_summary(scope, e) {
                Ok((n, _)) => names.push(n),
                Err(d) => diags.extend(d),
            }
        }
    }
    if diags.is_empty() {
        Ok(Action::Print(names))
    } else {
        Err(diags)
    }
}

fn is_summary(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Call { callee, .. } if callee.name == "summary")
}

fn call_args(stmt: &Statement) -> &[CallArg] {
    match &stmt.call.kind {
        ExprKind::Call { args, .. } => &args[..],
        _ => &[],
    }
}

fn not_supported(stmt: &Statement) -> Diagnostic {
    Diagnostic::new(
        "E0501",
        stmt.call.span,
        format!(
            "expected a statement that `ebm run` supports, found `{}`, which is not supported yet",
            stmt.name
        ),
    )
    .with_note("`ebm run` executes `print`, `sample`, `plot`, `save`, `summary`, data sets, `train`, `jem`, `evaluate`, `ais`, `load_params` and `export`")
}

fn print(r: &mut Runner, stmt: &Statement, summaries: &[String]) -> Result<(), Diagnostic> {
    let mut parts = Vec::new();
    let mut summaries = summaries.iter();
    let mut tensors = stmt.args.as_deref().unwrap_or(&[]).iter();
    for a in call_args(stmt) {
        if let CallArg::Positional(e) = a
            && let Some(text) = args::string_value(r.module, e)
        {
            parts.push(text);
            continue;
        }
        if let CallArg::Positional(e) = a
            && is_summary(e)
        {
            if let Some(name) = summaries.next() {
                parts.push(summary_text(r, name).trim_end().to_string());
            }
            continue;
        }
        let Some(e) = tensors.next() else { break };
        let store = r.params.clone();
        let t = lower::eval_expr(&r.module.defs, e, &move |n| store.get(n))
            .map_err(|m| Diagnostic::new("E0502", e.span, format!("evaluation failed: {m}")))?;
        parts.push(format_tensor(&t));
    }
    writeln!(r.out, "{}", parts.join(" "))
        .map_err(|e| Diagnostic::new("E0503", stmt.span, format!("cannot write output: {e}")))
}

/// `1.5`, `[1, 2]`, `[[1, 2], [3, 4]]` (shortest round-trip decimal form).
pub fn format_tensor(t: &Tensor) -> String {
    fn rec(shape: &[usize], data: &[f64]) -> String {
        match shape {
            // −0 prints as 0: the sign of a zero energy is noise to a reader.
            [] => crate::diag::shortest(if data[0] == 0.0 { 0.0 } else { data[0] }),
            [n, rest @ ..] => {
                let stride: usize = rest.iter().product();
                let items: Vec<String> = (0..*n)
                    .map(|i| rec(rest, &data[i * stride..(i + 1) * stride]))
                    .collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
    rec(&t.shape, &t.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_tensors() {
        assert_eq!(format_tensor(&Tensor::new(vec![], vec![1.5])), "1.5");
        assert_eq!(
            format_tensor(&Tensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0])),
            "[[1, 2], [3, 4]]"
        );
    }

    #[test]
    fn statement_table_covers_sema_statements() {
        for s in crate::sema::builtins::STATEMENTS {
            assert!(STATEMENTS.iter().any(|k| k.name == *s), "{s}");
        }
    }
}
