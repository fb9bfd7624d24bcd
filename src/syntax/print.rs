//! A stable, fully parenthesised text form of the AST (S-expressions, one
//! item per line) for `ebm dump --stage ast` and golden tests.
//!
//! `energy e(x: [2] | c: [4]) = -x^2` prints as
//! `(energy e (x [2]) (| c [4]) (neg (^ x 2.0)))`.

use std::fmt::Write as _;

use super::ast::*;

pub fn print(program: &Program) -> String {
    // Recursive over expressions as deep as the parser allows.
    crate::stack::with_big_stack(|| print_items(program))
}

fn print_items(program: &Program) -> String {
    let mut out = String::new();
    for item in &program.items {
        item_to(&mut out, item);
        out.push('\n');
    }
    out
}

/// One expression, e.g. `(+ a (* 2.0 b))`.
pub fn print_expr(expr: &Expr) -> String {
    let mut out = String::new();
    expr_to(&mut out, expr);
    out
}

fn item_to(out: &mut String, item: &Item) {
    match &item.kind {
        ItemKind::Const { name, value } => named(out, "const", name, value),
        ItemKind::Data { name, value } => named(out, "data", name, value),
        ItemKind::Let { name, value } => named(out, "let", name, value),
        ItemKind::Param { name, shape, init } => {
            let _ = write!(out, "(param {} ", name.name);
            shape_to(out, shape);
            out.push_str(" ~ ");
            expr_to(out, init);
            out.push(')');
        }
        ItemKind::Energy(def) => {
            out.push_str("(energy ");
            def_head(out, def);
            out.push(' ');
            expr_to(out, &def.body);
            out.push(')');
        }
        ItemKind::Model { def, output } => {
            out.push_str("(model ");
            def_head(out, def);
            out.push_str(" -> ");
            shape_to(out, output);
            out.push(' ');
            expr_to(out, &def.body);
            out.push(')');
        }
        ItemKind::Expr(e) => expr_to(out, e),
        ItemKind::Use { names, path, .. } => {
            out.push_str("(use");
            for n in names {
                match &n.alias {
                    Some(a) => {
                        let _ = write!(out, " (as {} {})", n.name.name, a.name);
                    }
                    None => {
                        let _ = write!(out, " {}", n.name.name);
                    }
                }
            }
            let _ = write!(out, " from {path:?})");
        }
    }
}

fn named(out: &mut String, kw: &str, name: &Ident, value: &Expr) {
    let _ = write!(out, "({kw} {} ", name.name);
    expr_to(out, value);
    out.push(')');
}

fn def_head(out: &mut String, def: &Def) {
    let _ = write!(out, "{} ({} ", def.name.name, def.input.name.name);
    shape_to(out, &def.input.shape);
    out.push(')');
    if let Some(c) = &def.cond {
        let _ = write!(out, " (| {} ", c.name.name);
        shape_to(out, &c.shape);
        out.push(')');
    }
}

fn shape_to(out: &mut String, shape: &ShapeAnn) {
    out.push('[');
    for (i, d) in shape.dims.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        expr_to(out, d);
    }
    out.push(']');
}

fn expr_to(out: &mut String, expr: &Expr) {
    match &expr.kind {
        // Integers print without a fraction (`8`), others in Rust's
        // shortest round-trip form (`0.001`, `1e-30`).
        ExprKind::Number(v) if v.fract() == 0.0 && v.abs() < 1e15 => {
            let _ = write!(out, "{v}");
        }
        ExprKind::Number(v) => {
            let _ = write!(out, "{v:?}");
        }
        ExprKind::Str(s) => {
            let _ = write!(out, "{s:?}");
        }
        ExprKind::Name(n) => out.push_str(n),
        ExprKind::Tensor(elems) => {
            out.push_str("(tensor");
            for e in elems {
                out.push(' ');
                expr_to(out, e);
            }
            out.push(')');
        }
        ExprKind::Unary { op, operand } => {
            out.push_str(match op {
                UnaryOp::Neg => "(neg ",
                UnaryOp::Not => "(not ",
            });
            expr_to(out, operand);
            out.push(')');
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let _ = write!(out, "({} ", op.symbol());
            expr_to(out, lhs);
            out.push(' ');
            expr_to(out, rhs);
            out.push(')');
        }
        ExprKind::Call { callee, args, cond } => {
            let _ = write!(out, "(call {}", callee.name);
            for a in args {
                out.push(' ');
                match a {
                    CallArg::Positional(e) => expr_to(out, e),
                    CallArg::Keyword { name, value } => {
                        let _ = write!(out, "(= {} ", name.name);
                        expr_to(out, value);
                        out.push(')');
                    }
                }
            }
            if let Some(c) = cond {
                out.push_str(" (| ");
                expr_to(out, c);
                out.push(')');
            }
            out.push(')');
        }
        ExprKind::Index { base, indices } => {
            out.push_str("(index ");
            expr_to(out, base);
            for ix in indices {
                out.push(' ');
                match ix {
                    IndexItem::At(e) => expr_to(out, e),
                    IndexItem::Range {
                        start, end, step, ..
                    } => {
                        out.push_str("(: ");
                        opt_to(out, start.as_ref());
                        out.push(' ');
                        opt_to(out, end.as_ref());
                        if let Some(s) = step {
                            out.push(' ');
                            expr_to(out, s);
                        }
                        out.push(')');
                    }
                }
            }
            out.push(')');
        }
        ExprKind::Let { name, value, body } => {
            let _ = write!(out, "(let {} ", name.name);
            expr_to(out, value);
            out.push(' ');
            expr_to(out, body);
            out.push(')');
        }
        ExprKind::Lambda { params, body } => {
            let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            let _ = write!(out, "(fn ({}) ", names.join(" "));
            expr_to(out, body);
            out.push(')');
        }
    }
}

fn opt_to(out: &mut String, e: Option<&Expr>) {
    match e {
        Some(e) => expr_to(out, e),
        None => out.push('_'),
    }
}
