//! Script execution for `ebm run`: the top-level statements of a module, in
//! source order. Each statement kind is one row of `STATEMENTS`; a row
//! without a handler reports "not supported yet". Runners (`sample`, `plot`,
//! `save`, `train`, `export`, data sets) are added by giving their row a
//! handler; handlers receive the checked `Statement` (with its original call
//! AST for their own argument checking) and the run state.

use std::collections::HashMap;
use std::io::Write;

use crate::diag::Diagnostic;
use crate::lower;
use crate::sema::{Module, Statement, Tensor};
use crate::syntax::ast::{CallArg, Expr, ExprKind};

/// State shared by the statements of one run.
pub struct Runner<'a> {
    pub module: &'a Module,
    /// Current parameter values by full name (initial values at the start).
    pub params: HashMap<String, Vec<f64>>,
    pub out: &'a mut dyn Write,
}

pub type Handler = fn(&mut Runner, &Statement) -> Result<(), Diagnostic>;

/// One statement kind: its name and, once implemented, its handler.
pub struct StatementKind {
    pub name: &'static str,
    pub handler: Option<Handler>,
}

/// Every statement `ebm run` knows. `let NAME = expr` of a tensor expression
/// is checked by `sema` and inlined where used, so it needs no work here.
pub const STATEMENTS: &[StatementKind] = &[
    StatementKind {
        name: "print",
        handler: Some(print),
    },
    StatementKind {
        name: "let",
        handler: Some(|_, _| Ok(())),
    },
    StatementKind {
        name: "sample",
        handler: None,
    },
    StatementKind {
        name: "plot",
        handler: None,
    },
    StatementKind {
        name: "save",
        handler: None,
    },
    StatementKind {
        name: "train",
        handler: None,
    },
    StatementKind {
        name: "export",
        handler: None,
    },
];

/// Runs every statement of `module` in order, writing output to `out`.
pub fn run(module: &Module, out: &mut dyn Write) -> Result<(), Diagnostic> {
    let params = module
        .params
        .iter()
        .map(|p| (p.name.clone(), p.initial_value()))
        .collect();
    let mut runner = Runner {
        module,
        params,
        out,
    };
    for stmt in &module.statements {
        let handler = STATEMENTS
            .iter()
            .find(|k| k.name == stmt.name)
            .and_then(|k| k.handler);
        match handler {
            Some(h) => h(&mut runner, stmt)?,
            None => return Err(not_supported(stmt)),
        }
    }
    Ok(())
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
    .with_note("`ebm run` currently executes `print(...)`; runners are being added")
}

fn print(r: &mut Runner, stmt: &Statement) -> Result<(), Diagnostic> {
    let mut parts = Vec::new();
    let mut tensors = stmt.args.as_deref().unwrap_or(&[]).iter();
    let call_args = match &stmt.call.kind {
        ExprKind::Call { args, .. } => &args[..],
        _ => &[],
    };
    for a in call_args {
        if let CallArg::Positional(Expr {
            kind: ExprKind::Str(text),
            ..
        }) = a
        {
            parts.push(text.clone());
            continue;
        }
        let Some(e) = tensors.next() else { break };
        let t = lower::eval_expr(&r.module.defs, e, &r.params)
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
            [] => format!("{}", data[0]),
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
