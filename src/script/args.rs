//! Arguments of runner statements: matching a call's arguments to a list of
//! parameter names, and reading each one as the type its runner expects
//! (number, count, vector, string, energy name, samples name). Tensor-valued
//! arguments are checked by `sema::ScriptScope` (so `cond = onehot(0, 4)` or
//! `step = 0.1 / 2` work) and evaluated at check time: they are constants.

use super::errors as err;
use crate::diag::{Diagnostic, Span};
use crate::lower;
use crate::sema::{DefKind, Module, ScriptScope, Tensor, shape_text};
use crate::syntax::ast::{CallArg, Expr, ExprKind};

pub type R<T> = Result<T, Vec<Diagnostic>>;

/// Calls that are runner values, never tensors.
pub const SAMPLERS: &[&str] = &["ula", "mala", "rwmh", "hmc", "nuts", "pt", "uld"];
pub const INITS: &[&str] = &["normal", "uniform"];

/// The checking state of one script: names bound so far by `let s = sample(..)`.
/// What later statements may check about a data set: its width and, for
/// labelled data, the smallest and largest label.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DataInfo {
    pub width: usize,
    pub labels: Option<(i64, i64)>,
}

pub struct Scope<'m> {
    pub module: &'m Module,
    exprs: ScriptScope<'m>,
    /// `let NAME = sample(ENERGY, ..)` seen so far: (NAME, ENERGY).
    pub samples: Vec<(String, String)>,
    /// `data NAME = ..` seen so far: (NAME, values per row, unknown when
    /// the data set failed its checks).
    pub data: Vec<(String, Option<DataInfo>)>,
}

/// A call's arguments matched to parameter names.
pub struct Args<'e> {
    pub callee: String,
    pub span: Span,
    names: &'static [&'static str],
    slots: Vec<Option<&'e Expr>>,
}

impl<'e> Args<'e> {
    pub fn get(&self, name: &str) -> Option<&'e Expr> {
        let i = self.names.iter().position(|n| *n == name)?;
        self.slots[i]
    }
}

/// The text of a string literal, or of the name of a string constant
/// defined above it (`const path = "data.csv"`).
pub fn string_value(module: &Module, e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Str(s) => Some(s.clone()),
        ExprKind::Name(n) => module.string(n, e.span.start).map(str::to_string),
        _ => None,
    }
}

/// The arguments of `e` if it is a call.
pub fn call_parts(e: &Expr) -> Option<(&str, Span, &[CallArg])> {
    match &e.kind {
        ExprKind::Call { callee, args, .. } => Some((&callee.name, callee.span, &args[..])),
        _ => None,
    }
}

/// Matches `args` to `names`; the first `positional` names may also be
/// given by position. Misplaced, unknown and repeated arguments are
/// recorded in `diags` and left out, so the others are still checked.
pub fn bind<'e>(
    callee: &str,
    span: Span,
    args: &'e [CallArg],
    names: &'static [&'static str],
    positional: usize,
    diags: &mut Vec<Diagnostic>,
) -> Args<'e> {
    let mut slots: Vec<Option<&Expr>> = vec![None; names.len()];
    let mut next = 0;
    let mut seen_kw = false;
    for a in args {
        match a {
            CallArg::Positional(e) => {
                if seen_kw {
                    diags.push(err::positional_after_keyword(e.span));
                } else if next < positional {
                    slots[next] = Some(e);
                    next += 1;
                } else {
                    diags.push(err::too_many_positional(callee, positional, e.span));
                    break;
                }
            }
            CallArg::Keyword { name, value } => {
                seen_kw = true;
                match names.iter().position(|n| *n == name.name) {
                    Some(i) if slots[i].is_some() => {
                        diags.push(err::duplicate_keyword(callee, name))
                    }
                    Some(i) => slots[i] = Some(value),
                    None => diags.push(err::unknown_keyword(callee, name, names)),
                }
            }
        }
    }
    Args {
        callee: callee.to_string(),
        span,
        names,
        slots,
    }
}

/// Keeps going after an error: records it and returns `None`.
pub fn keep<T>(diags: &mut Vec<Diagnostic>, r: R<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(d) => {
            diags.extend(d);
            None
        }
    }
}

fn fmt_num(v: f64) -> String {
    crate::diag::shortest(v)
}

impl<'m> Scope<'m> {
    pub fn new(module: &'m Module) -> Scope<'m> {
        Scope {
            module,
            exprs: ScriptScope::new(module, lower::eval_const),
            samples: Vec::new(),
            data: Vec::new(),
        }
    }

    pub fn sample_names(&self) -> Vec<&str> {
        self.samples.iter().map(|(n, _)| n.as_str()).collect()
    }

    pub fn energy_names(&self) -> Vec<&str> {
        self.module
            .defs
            .iter()
            .filter(|d| d.kind == DefKind::Energy)
            .map(|d| d.name.as_str())
            .collect()
    }

    /// What `e` is, for "found ..." when it is not a tensor; `None` for a
    /// tensor expression.
    fn non_tensor(&self, e: &Expr) -> Option<String> {
        match &e.kind {
            ExprKind::Str(s) => Some(format!("the string \"{s}\"")),
            ExprKind::Name(n) if self.module.string(n, e.span.start).is_some() => {
                Some(format!("the string constant `{n}`"))
            }
            ExprKind::Name(n) => {
                if let Some(d) = self.module.def(n) {
                    let kind = match d.kind {
                        DefKind::Energy => "energy",
                        DefKind::Model => "model",
                    };
                    Some(format!("the {kind} `{n}`"))
                } else if self.samples.iter().any(|(s, _)| s == n) {
                    Some(format!("the samples `{n}`"))
                } else {
                    let run_value = self.module.statements.iter().any(|s| {
                        s.binding.as_deref() == Some(n) && !(s.name == "let" && s.args.is_some())
                    });
                    run_value
                        .then(|| format!("`{n}`, a value that exists only when the script runs"))
                }
            }
            ExprKind::Call { callee, .. } if SAMPLERS.contains(&callee.name.as_str()) => {
                Some(format!("the sampler `{}(..)`", callee.name))
            }
            ExprKind::Call { callee, .. } if INITS.contains(&callee.name.as_str()) => {
                Some(format!("the initialisation `{}(..)`", callee.name))
            }
            ExprKind::Call { callee, .. } if callee.name == "summary" => {
                Some("a summary".to_string())
            }
            _ => None,
        }
    }

    /// "found ..." text for any argument.
    pub fn found(&mut self, e: &Expr) -> String {
        if let Some(f) = self.non_tensor(e) {
            return f;
        }
        if let ExprKind::Name(n) = &e.kind
            && self.module.constant(n).is_none()
            && !self.module.params.iter().any(|p| p.name == *n)
            && !self
                .module
                .statements
                .iter()
                .any(|s| s.binding.as_deref() == Some(n))
        {
            return format!("`{n}`, which is not defined");
        }
        match self.exprs.expr(e) {
            Ok(t) if t.shape.iter().product::<usize>() == 1 => match t.as_const() {
                Some(c) => format!("the number {}", fmt_num(c.data[0])),
                None => "a number".to_string(),
            },
            Ok(t) => format!("a tensor of shape {}", shape_text(&t.shape)),
            Err(_) => "an expression".to_string(),
        }
    }

    /// The constant value of a tensor-valued argument.
    pub fn tensor(&mut self, e: &Expr, arg: &str, what: &str) -> R<Tensor> {
        if let Some(found) = self.non_tensor(e) {
            return Err(vec![err::wrong_type(what, arg, &found, e.span)]);
        }
        let t = self.exprs.expr(e)?;
        // A parameter's initial values are built only when an argument reads
        // it (checking a program must not fill every weight matrix).
        let module = self.module;
        lower::eval_expr(&module.defs, &t, &|n| {
            module.param(n).map(|p| p.initial_value())
        })
        .map_err(|m| vec![err::run_failed("cannot evaluate this argument", &m, e.span)])
    }

    /// A finite number.
    pub fn number(&mut self, e: &Expr, arg: &str) -> R<f64> {
        self.number_as(e, arg, "a number")
    }

    /// A finite number, described as `what` in messages.
    fn number_as(&mut self, e: &Expr, arg: &str, what: &str) -> R<f64> {
        let t = self.tensor(e, arg, what)?;
        if t.data.len() != 1 {
            let found = format!("a tensor of shape {}", shape_text(&t.shape));
            return Err(vec![err::wrong_type(what, arg, &found, e.span)]);
        }
        let v = t.data[0];
        if !v.is_finite() {
            return Err(vec![err::out_of_range(
                arg,
                "a finite number",
                &fmt_num(v),
                e.span,
            )]);
        }
        Ok(v)
    }

    /// A number `> 0` (`strict`) or `≥ 0`.
    pub fn positive(&mut self, e: &Expr, arg: &str, strict: bool) -> R<f64> {
        let v = self.number(e, arg)?;
        if (strict && v <= 0.0) || v < 0.0 {
            let want = if strict {
                "a number > 0"
            } else {
                "a number ≥ 0"
            };
            return Err(vec![err::out_of_range(arg, want, &fmt_num(v), e.span)]);
        }
        Ok(v)
    }

    /// A whole number in `[min, max]`.
    pub fn count(&mut self, e: &Expr, arg: &str, min: u64, max: u64) -> R<u64> {
        let v = self.number_as(e, arg, "a whole number")?;
        if v.fract() != 0.0 {
            return Err(vec![err::wrong_type(
                "a whole number",
                arg,
                &format!("the number {}", fmt_num(v)),
                e.span,
            )]);
        }
        if v < min as f64 || v > max as f64 {
            let want = if max >= 1 << 30 {
                format!("a whole number ≥ {min}")
            } else {
                format!("a whole number from {min} to {max}")
            };
            return Err(vec![err::out_of_range(arg, &want, &fmt_num(v), e.span)]);
        }
        Ok(v as u64)
    }

    /// A tensor's values in row-major order.
    pub fn values(&mut self, e: &Expr, arg: &str) -> R<Vec<f64>> {
        let t = self.tensor(e, arg, "a tensor of numbers")?;
        Ok(t.data)
    }

    /// A string literal, or a string constant defined above `e`.
    pub fn string(&mut self, e: &Expr, arg: &str, what: &str) -> R<String> {
        match string_value(self.module, e) {
            Some(s) => Ok(s),
            None => {
                let found = self.found(e);
                Err(vec![err::wrong_type(what, arg, &found, e.span)])
            }
        }
    }

    /// One of `choices` (a string literal).
    pub fn choice(&mut self, e: &Expr, arg: &str, choices: &[&str]) -> R<String> {
        let what = format!("one of {}", choices.join(", "));
        let s = self.string(e, arg, &what)?;
        if choices.contains(&s.as_str()) {
            Ok(s)
        } else {
            Err(vec![err::bad_choice(arg, choices, &s, e.span)])
        }
    }

    /// A file name (string literal) ending in one of `exts`.
    pub fn path(&mut self, e: &Expr, arg: &str, exts: &[&str]) -> R<String> {
        let s = self.string(e, arg, "a file name in quotes")?;
        let ok = std::path::Path::new(&s)
            .extension()
            .is_some_and(|x| exts.iter().any(|e| x.eq_ignore_ascii_case(e)));
        if ok {
            Ok(s)
        } else {
            Err(vec![err::bad_extension(arg, exts, &s, e.span)])
        }
    }

    /// The name of an energy definition.
    pub fn energy(&mut self, e: &Expr) -> R<String> {
        match &e.kind {
            ExprKind::Name(n) => match self.module.def(n) {
                Some(d) if d.kind == DefKind::Energy => Ok(n.clone()),
                Some(_) => Err(vec![
                    err::not_an_energy(&format!("`{n}`, which is a model"), e.span)
                        .with_help(format!("define an energy from it, e.g. `energy e(x: [..]) = -logsumexp({n}(x))`")),
                ]),
                None => {
                    let names = self.energy_names();
                    let found = self.non_tensor(e);
                    match found {
                        Some(f) => Err(vec![err::not_an_energy(&f, e.span)]),
                        None if self.module.constant(n).is_some() => Err(vec![
                            err::not_an_energy(&format!("the constant `{n}`"), e.span),
                        ]),
                        None => Err(vec![err::unknown_energy(n, e.span, &names)]),
                    }
                }
            },
            _ => {
                let f = self.found(e);
                Err(vec![err::not_an_energy(&f, e.span)])
            }
        }
    }

    /// The name of samples bound earlier, and the energy they sample.
    pub fn samples(&mut self, e: &Expr) -> R<(String, String)> {
        let known: Vec<String> = self.samples.iter().map(|(n, _)| n.clone()).collect();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        if let ExprKind::Name(n) = &e.kind {
            if let Some(s) = self.samples.iter().rev().find(|(s, _)| s == n) {
                return Ok(s.clone());
            }
            if self.non_tensor(e).is_none()
                && self.module.def(n).is_none()
                && self.module.constant(n).is_none()
            {
                return Err(vec![err::unknown_samples(n, e.span, &known)]);
            }
        }
        let f = self.found(e);
        Err(vec![err::not_samples(&f, e.span, &known)])
    }
}
