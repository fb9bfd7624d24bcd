//! One constructor per kind of semantic error. Codes: `E02xx` names and
//! calls, `E03xx` shapes and values, `E04xx` data files. Each headline is
//! one sentence, "expected X, found Y" where that reads naturally, and the
//! span is the offending piece of source.

use crate::data::DataError;
use crate::diag::{Diagnostic, Span, suggest};
use crate::syntax::ast::Ident;

use super::builtins::{Sig, signature_text};
use super::{DefInfo, DefKind, shape_text as st};

fn plural(n: usize, word: &str) -> String {
    match (n, word) {
        (1, _) => format!("1 {word}"),
        (_, "index") => format!("{n} indices"),
        _ => format!("{n} {word}s"),
    }
}

// ----- E02xx: names, definitions, calls -----

pub fn unknown_name(name: &str, span: Span, hint: Option<&str>, call: bool) -> Diagnostic {
    let (code, what) = if call {
        ("E0202", "function")
    } else {
        ("E0201", "name")
    };
    let d =
        Diagnostic::new(code, span, format!("unknown {what} `{name}`")).with_label("not defined");
    match hint {
        Some(h) => d.with_help(format!("did you mean `{h}`?")),
        None => d,
    }
}

pub fn unknown_statement(callee: &Ident, known: Option<&str>) -> Diagnostic {
    let d = Diagnostic::new(
        "E0202",
        callee.span,
        format!(
            "expected a statement such as `print(...)`, found a call of `{}`",
            callee.name
        ),
    );
    match (
        known,
        suggest(&callee.name, super::builtins::STATEMENTS.iter().copied()),
    ) {
        (_, Some(h)) => d.with_help(format!("did you mean `{h}`?")),
        (Some(k), None) => d.with_note(format!(
            "`{}` is {k}; only statements ({}) run at the top level",
            callee.name,
            super::builtins::STATEMENTS.join(", ")
        )),
        _ => d.with_note(format!(
            "statements are {}",
            super::builtins::STATEMENTS.join(", ")
        )),
    }
}

pub fn not_a_statement(span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0206",
        span,
        "expected a statement such as `print(...)`, found a bare expression",
    )
    .with_help("bind it with `const NAME = ...` or print it with `print(...)`")
}

pub fn duplicate_definition(name: &Ident, first: Span) -> Diagnostic {
    let _ = first;
    Diagnostic::new(
        "E0203",
        name.span,
        format!("`{}` is defined more than once", name.name),
    )
    .with_label("second definition")
    .with_help("rename one of them")
}

pub fn shadows_builtin(name: &Ident) -> Diagnostic {
    Diagnostic::new(
        "E0203",
        name.span,
        format!(
            "expected a new name, found `{}`, which is a statement",
            name.name
        ),
    )
}

pub fn reserved_param_name(name: &Ident) -> Diagnostic {
    Diagnostic::new(
        "E0203",
        name.span,
        format!(
            "expected a parameter name other than `x` or `c`, found `{}`",
            name.name
        ),
    )
    .with_note("compiled kernels name the sample and conditioning inputs `x` and `c`")
}

pub fn duplicate_argument(name: &Ident) -> Diagnostic {
    Diagnostic::new(
        "E0203",
        name.span,
        format!(
            "expected distinct argument names, found `{}` twice",
            name.name
        ),
    )
}

pub fn used_before_definition(name: &str, span: Span, _def: Span) -> Diagnostic {
    Diagnostic::new(
        "E0204",
        span,
        format!("`{name}` is used before its definition"),
    )
    .with_label("defined further down")
    .with_help("definitions must come before their uses; move it up")
}

pub fn recursive(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0205",
        span,
        format!("`{name}` refers to itself, and recursive definitions are not allowed"),
    )
    .with_label("recursive use")
}

pub fn def_as_value(def: &DefInfo, span: Span) -> Diagnostic {
    let kind = match def.kind {
        DefKind::Energy => "energy",
        DefKind::Model => "model",
    };
    let call = match &def.cond {
        Some(c) => format!("{}(x | {})", def.name, c.name),
        None => format!("{}(x)", def.name),
    };
    Diagnostic::new(
        "E0206",
        span,
        format!("expected a tensor, found the {kind} `{}`", def.name),
    )
    .with_help(format!("call it: `{call}`"))
}

pub fn function_as_value(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0206",
        span,
        format!("expected a tensor, found the builtin function `{name}`"),
    )
    .with_help(format!("call it: `{name}(...)`"))
}

pub fn not_callable(name: &str, kind: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0206",
        span,
        format!("expected a function, energy or model, found `{name}`, which is {kind}"),
    )
    .with_label("not callable")
}

pub fn run_value_in_expr(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0206",
        span,
        format!("expected a tensor, found `{name}`, a value that exists only when the script runs"),
    )
}

pub fn statement_in_expr(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0206",
        span,
        format!("expected an expression, found the statement `{name}`"),
    )
    .with_help("statements stand on their own line at the top level")
}

pub fn param_in_const(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0206",
        span,
        format!("expected a compile-time constant, found the parameter `{name}`"),
    )
    .with_note("parameters change during training, so constants and shapes cannot use them")
}

pub fn call_in_const(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0206",
        span,
        format!("expected a compile-time constant, found a call of `{name}`"),
    )
    .with_help("use it inside an `energy`/`model` body, or `print` it")
}

pub fn init_outside_param(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0206",
        span,
        format!("expected an expression, found the initialiser `{name}`"),
    )
    .with_help(format!(
        "initialisers go after `~`: `param W: [2, 2] ~ {name}(...)`"
    ))
}

pub fn primitive_outside_def(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0206",
        span,
        format!("expected `{name}` inside an `energy` or `model` body, found it outside one"),
    )
    .with_note("each call site of a neural primitive creates parameters owned by its definition")
}

pub fn unknown_keyword(sig: &Sig, name: &Ident) -> Diagnostic {
    let names: Vec<&str> = sig.params.iter().map(|p| p.name).collect();
    let d = Diagnostic::new(
        "E0207",
        name.span,
        format!("`{}` has no argument named `{}`", sig.name, name.name),
    )
    .with_label("unknown keyword");
    match suggest(&name.name, names.iter().copied()) {
        Some(h) => d.with_help(format!("did you mean `{h}`?")),
        None => d.with_note(format!("the signature is `{}`", signature_text(sig))),
    }
}

pub fn too_many_args(sig: &Sig, span: Span, found: usize) -> Diagnostic {
    let max = sig.params.iter().filter(|p| !p.kw_only).count();
    Diagnostic::new(
        "E0208",
        span,
        format!(
            "expected at most {} for `{}`, found {found}",
            plural(max, "argument"),
            sig.name
        ),
    )
    .with_label("unexpected argument")
    .with_note(format!("the signature is `{}`", signature_text(sig)))
}

pub fn missing_arg(sig: &Sig, callee: &Ident, call: Span, param: &str, found: usize) -> Diagnostic {
    let required = sig.params.iter().filter(|p| p.required).count() + usize::from(sig.variadic);
    let _ = callee;
    Diagnostic::new(
        "E0208",
        call,
        format!(
            "expected {} for `{}`, found {found}",
            plural(required, "argument"),
            sig.name
        ),
    )
    .with_label(format!("missing `{param}`"))
    .with_note(format!("the signature is `{}`", signature_text(sig)))
}

pub fn def_arity(name: &str, found: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0208",
        span,
        format!("expected 1 argument for `{name}`, found {found}"),
    )
    .with_help(format!(
        "pass the sample, and conditioning after `|`: `{name}(x)` or `{name}(x | c)`"
    ))
}

pub fn def_keyword(name: &str, kw: &Ident) -> Diagnostic {
    Diagnostic::new(
        "E0208",
        kw.span,
        format!(
            "expected a positional sample argument for `{name}`, found the keyword `{}`",
            kw.name
        ),
    )
}

pub fn duplicate_arg(fname: &str, name: &Ident) -> Diagnostic {
    Diagnostic::new(
        "E0209",
        name.span,
        format!(
            "expected each argument of `{fname}` once, found `{}` again",
            name.name
        ),
    )
}

pub fn positional_after_keyword(span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0209",
        span,
        "expected keyword arguments after positional ones, found a positional argument after a keyword",
    )
}

pub fn print_keyword(name: &Ident) -> Diagnostic {
    Diagnostic::new(
        "E0209",
        name.span,
        format!(
            "expected only positional arguments for `print`, found `{}`",
            name.name
        ),
    )
}

pub fn unknown_activation(name: Option<&str>, span: Span) -> Diagnostic {
    let acts = super::builtins::ACTIVATIONS;
    match name {
        Some(n) => {
            let d = Diagnostic::new(
                "E0210",
                span,
                format!("expected an activation, found `{n}`"),
            )
            .with_label("unknown activation");
            match suggest(n, acts.iter().copied()) {
                Some(h) => d.with_help(format!("did you mean `{h}`?")),
                None => d.with_note(format!("activations are {}", acts.join(", "))),
            }
        }
        None => Diagnostic::new("E0210", span, "expected an activation name such as `swish`")
            .with_note(format!("activations are {}", acts.join(", "))),
    }
}

pub fn unexpected_cond(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0211",
        span,
        format!("`{name}` takes no conditioning argument, found one after `|`"),
    )
    .with_label("unexpected conditioning")
}

pub fn missing_cond(name: &str, cond: &str, shape: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0211",
        span,
        format!(
            "expected a conditioning argument `{cond}: {}` for `{name}`, found none",
            st(shape)
        ),
    )
    .with_help(format!("pass it after `|`: `{name}(x | ...)`"))
}

pub fn bad_init(name: Option<&str>, hint: Option<&str>, span: Span) -> Diagnostic {
    let found = match name {
        Some(n) => format!("`{n}`"),
        None => "an expression".into(),
    };
    let d = Diagnostic::new(
        "E0212",
        span,
        format!("expected a parameter initialiser, found {found}"),
    );
    match hint {
        Some(h) => d.with_help(format!("did you mean `{h}`?")),
        None => d.with_note(
            "initialisers are normal(mean, std), uniform(a, b), zeros and glorot".to_string(),
        ),
    }
}

pub fn init_takes_no_args(name: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0212",
        span,
        format!("expected no arguments for `{name}`, found some"),
    )
    .with_help(format!("write `~ {name}`"))
}

pub fn bad_slice_step(step: i64, span: Span) -> Diagnostic {
    let d = Diagnostic::new(
        "E0326",
        span,
        format!("expected a positive slice step, found {step}"),
    )
    .with_label("steps must be 1 or more");
    if step < 0 {
        d.with_note("negative steps (reversed slices) are not supported")
    } else {
        d
    }
}

/// `step`: bound by a step function's parameter list, else by `let`.
pub fn local_out_of_scope(name: &str, step: bool, span: Span) -> Diagnostic {
    let label = "not in scope here";
    let note = if step {
        format!("a step function `({name}, ..) => BODY` binds `{name}` only inside BODY")
    } else {
        format!("`let {name} = .. in BODY` binds `{name}` only inside BODY, after `in`")
    };
    Diagnostic::new(
        "E0221",
        span,
        format!("expected a name in scope, found `{name}`, a local name used outside its scope"),
    )
    .with_label(label)
    .with_note(note)
}

pub fn step_outside_scan(span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0219",
        span,
        "expected a value, found a step function `(..) => ..`",
    )
    .with_label("a step function is not a value")
    .with_help(
        "step functions are the last argument of `scan(init, xs, (s, xt) => ..)` and `fold(..)`",
    )
}

pub fn expected_step(func: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0222",
        span,
        format!("expected a step function `(s, xt) => ..` as the last argument of `{func}`, found another expression"),
    )
    .with_label("not a step function")
    .with_help(format!("write `{func}(init, xs, (s, xt) => NEXT)`: `s` is the carry, `xt` one element of `xs`"))
}

pub fn step_arity(n: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0222",
        span,
        format!(
            "expected a step function of 2 parameters (the carry and one element), found {}",
            plural(n, "parameter")
        ),
    )
    .with_label("takes `(s, xt)`")
}

pub fn scan_scalar(func: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0324",
        span,
        format!(
            "expected a tensor to `{func}` over (its first axis is the sequence), found a scalar"
        ),
    )
    .with_label("nothing to iterate over")
}

/// The program's parameters and constants, counted up to the one at `span`,
/// need more memory than the limit (`budget::max_memory`).
pub fn memory_budget(
    what: &str,
    name: &str,
    shape: &[usize],
    total: u64,
    span: Span,
) -> Diagnostic {
    let named = if name.is_empty() {
        what.to_string()
    } else {
        format!("{what} `{name}`")
    };
    Diagnostic::new(
        "E0328",
        span,
        format!(
            "expected parameters and constants that fit in memory, found {} of them with {named} of shape {}; {}",
            crate::budget::bytes_text(total as f64),
            st(shape),
            crate::budget::limit_text()
        ),
    )
    .with_label("exceeds the memory limit")
    .with_note("every parameter and constant value takes 8 bytes; EBM_MAX_MEMORY=SIZE (e.g. 16G) sets the limit")
}

pub fn scan_too_large(stored: usize, max: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0327",
        span,
        format!("expected a scan that stores at most {max} values per sample, found {stored}"),
    )
    .with_label("too much to keep for its gradient")
    .with_note("a scan keeps, per element of the sequence, its carry, the element and the adjoints of what the step reads (x, parameters, outer values)")
    .with_help("scan a shorter sequence, or split it into several scans")
}

pub fn step_shape(carry: &[usize], found: &[usize], span: Span, init: Span) -> Diagnostic {
    let _ = init;
    Diagnostic::new(
        "E0325",
        span,
        format!(
            "expected the step to return the carry's shape {}, found {}",
            st(carry),
            st(found)
        ),
    )
    .with_label(format!("has shape {}", st(found)))
    .with_note("the carry keeps the shape of `init` at every step")
}

pub fn too_deep(span: Span) -> Diagnostic {
    let max = crate::syntax::errors::MAX_EXPR_DEPTH as usize + 100;
    Diagnostic::new(
        "E0213",
        span,
        format!("expected an expression nested at most {max} levels deep, found a deeper one"),
    )
}

pub fn inlined_too_deep(name: &str, depth: usize, max: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0214",
        span,
        format!("expected `{name}` to nest at most {max} levels deep with its calls inlined, found {depth}"),
    )
    .with_note("each call is inlined: a call is as deep as its callee's body")
    .with_help("use `let` for values used more than once, or `scan`/`fold` for a recurrence")
}

pub fn calls_too_deep(name: &str, max: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0214",
        span,
        format!("expected at most {max} nested calls of definitions, found more in `{name}`"),
    )
    .with_note("each call is inlined; chains of definitions calling each other are bounded")
}

pub fn inlines_too_much(name: &str, size: usize, max: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0215",
        span,
        format!(
            "expected a definition that inlines to at most {max} operations, found `{name}` with about {}",
            if size == usize::MAX { "2^64".to_string() } else { size.to_string() }
        ),
    )
    .with_note("every call is expanded in place, so a definition that calls another several times with different arguments multiplies its size")
}

// ----- E03xx: shapes and values -----

pub fn broadcast_mismatch(op: &str, a: &[usize], b: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0301",
        span,
        format!(
            "expected shapes that broadcast for `{op}`, found {} and {}",
            st(a),
            st(b)
        ),
    )
    .with_note("shapes broadcast when, aligned from the right, each pair of dimensions is equal or one of them is 1")
}

pub fn where_mismatch(c: &[usize], a: &[usize], b: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0301",
        span,
        format!(
            "expected shapes that broadcast for `where`, found {}, {} and {}",
            st(c),
            st(a),
            st(b)
        ),
    )
}

pub fn non_scalar_energy(name: &str, shape: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0302",
        span,
        format!(
            "expected the energy `{name}` to be a scalar, found shape {}",
            st(shape)
        ),
    )
    .with_label(format!("this has shape {}", st(shape)))
    .with_help("reduce it to a scalar, e.g. `sum(...)`, `sqnorm(...)` or `logsumexp(...)`")
}

pub fn compose_non_scalar(op: &str, side: &str, shape: &[usize], span: Span) -> Diagnostic {
    let place = match side {
        "" => format!("after `{op}`"),
        s => format!("on the {s} of `{op}`"),
    };
    Diagnostic::new(
        "E0303",
        span,
        format!(
            "expected a scalar energy {place}, found shape {}",
            st(shape)
        ),
    )
    .with_help("composition combines scalar energies; reduce first, e.g. `sum(...)`")
}

pub fn lse_non_scalar(shape: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0303",
        span,
        format!(
            "expected scalar arguments for `logsumexp(a, b, ...)`, found shape {}",
            st(shape)
        ),
    )
    .with_help("pass one tensor, `logsumexp(t)`, to reduce over its elements")
}

/// A `mix(..)` whose components or `weights`/`logz` do not fit.
pub fn bad_mix(message: String, span: Span) -> Diagnostic {
    Diagnostic::new("E0323", span, format!("cannot mix these energies: {message}")).with_help(
        "write `mix(E1(x), E2(x), weights = [0.7, 0.3], logz = [z1, z2])`: scalar energies, positive weights, finite log-normalisers",
    )
}

pub fn comparison_outside_where(op: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0304",
        span,
        format!("expected an arithmetic expression, found the comparison `{op}`"),
    )
    .with_help("comparisons may only be the condition of `where(cond, a, b)`")
}

pub fn matmul_mismatch(a: &[usize], b: &[usize], span: Span) -> Diagnostic {
    let msg = if a.is_empty() || b.is_empty() || a.len() > 2 || b.len() > 2 {
        format!(
            "expected vectors or matrices for `@`, found {} @ {}",
            st(a),
            st(b)
        )
    } else {
        format!(
            "expected matching inner dimensions for `@`, found {} @ {}",
            st(a),
            st(b)
        )
    };
    Diagnostic::new("E0305", span, msg)
        .with_note("the last dimension of the left operand must equal the first of the right one")
}

pub fn index_out_of_range(i: i64, axis: usize, dim: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0306",
        span,
        format!("expected an index in 0..{dim} for axis {axis}, found {i}"),
    )
    .with_label("out of range")
}

pub fn too_many_indices(n: usize, shape: &[usize], span: Span) -> Diagnostic {
    let msg = if shape.is_empty() {
        format!(
            "expected no index on a scalar, found {}",
            plural(n, "index")
        )
    } else {
        format!(
            "expected at most {} for shape {}, found {n}",
            plural(shape.len(), "index"),
            st(shape)
        )
    };
    Diagnostic::new("E0306", span, msg)
}

pub fn bad_slice(start: i64, end: i64, axis: usize, dim: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0307",
        span,
        format!("expected a non-empty slice within 0..{dim} for axis {axis}, found {start}:{end}"),
    )
}

pub fn bad_dimension(v: f64, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0308",
        span,
        format!("expected a positive integer dimension, found {v}"),
    )
}

pub fn not_constant(what: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0309",
        span,
        format!(
            "expected a compile-time constant for {what}, found an expression that depends on inputs or parameters"
        ),
    )
}

pub fn expected_number(what: &str, shape: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0309",
        span,
        format!(
            "expected a number for {what}, found a tensor of shape {}",
            st(shape)
        ),
    )
}

pub fn expected_integer(what: &str, v: f64, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0309",
        span,
        format!("expected an integer for {what}, found {v}"),
    )
}

pub fn expected_int_list(what: &str, shape: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0309",
        span,
        format!(
            "expected a list of integers for {what}, found a tensor of shape {}",
            st(shape)
        ),
    )
}

pub fn arg_shape(def: &str, arg: &str, want: &[usize], found: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0310",
        span,
        format!(
            "expected `{arg}` of `{def}` to have shape {}, found {}",
            st(want),
            st(found)
        ),
    )
}

pub fn model_output_mismatch(
    name: &str,
    want: &[usize],
    found: &[usize],
    span: Span,
) -> Diagnostic {
    Diagnostic::new(
        "E0311",
        span,
        format!(
            "expected the model `{name}` to return shape {}, found {}",
            st(want),
            st(found)
        ),
    )
    .with_label(format!("this has shape {}", st(found)))
}

pub fn expected_positive(what: &str, v: i64, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0312",
        span,
        format!("expected a positive integer for {what}, found {v}"),
    )
}

pub fn expected_count(what: &str, v: i64, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0312",
        span,
        format!("expected an integer ≥ 0 for {what}, found {v}"),
    )
}

pub fn bad_init_value(what: &str, v: f64, span: Span) -> Diagnostic {
    Diagnostic::new("E0312", span, format!("expected {what}, found {v}"))
}

pub fn axis_out_of_range(axis: i64, rank: usize, span: Span) -> Diagnostic {
    let msg = if rank == 0 {
        format!("expected no `axis` for a scalar, found axis {axis}")
    } else {
        format!("expected an axis in -{rank}..{rank} for a rank-{rank} tensor, found {axis}")
    };
    Diagnostic::new("E0313", span, msg)
}

pub fn axis_with_many(span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0313",
        span,
        "expected no `axis` when `logsumexp` combines several scalars, found one",
    )
}

pub fn reshape_size(from: &[usize], to: &[usize], span: Span) -> Diagnostic {
    let n: usize = from.iter().product();
    let m: usize = to.iter().product();
    Diagnostic::new(
        "E0314",
        span,
        format!(
            "expected a shape with {n} elements like {}, found {} with {m}",
            st(from),
            st(to)
        ),
    )
}

pub fn onehot_range(i: i64, n: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0315",
        span,
        format!("expected a one-hot index in 0..{n}, found {i}"),
    )
    .with_label("out of range")
}

pub fn string_not_tensor(span: Span) -> Diagnostic {
    Diagnostic::new("E0316", span, "expected a tensor, found a string")
}

pub fn string_const_not_tensor(name: &str, value: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0316",
        span,
        format!("expected a tensor, found the string constant `{name}`"),
    )
    .with_label(format!("`{name}` is the string {value:?}"))
    .with_note(
        "string constants stand for file paths and keys (`load(path)`, `csv(path)`), not numbers",
    )
}

pub fn expected_string(what: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0316",
        span,
        format!("expected a string for {what}, found an expression"),
    )
}

pub fn empty_tensor(span: Span) -> Diagnostic {
    Diagnostic::new("E0317", span, "expected at least one element, found `[]`")
}

pub fn ragged_tensor(first: &[usize], found: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0317",
        span,
        format!(
            "expected every element of the tensor literal to have shape {} like the first, found {}",
            st(first),
            st(found)
        ),
    )
}

pub fn bad_perm(p: &[i64], rank: usize, span: Span) -> Diagnostic {
    let shown: Vec<String> = p.iter().map(|v| v.to_string()).collect();
    Diagnostic::new(
        "E0318",
        span,
        format!(
            "expected a permutation of 0..{rank}, found [{}]",
            shown.join(", ")
        ),
    )
}

pub fn concat_mismatch(first: &[usize], found: &[usize], axis: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0319",
        span,
        format!(
            "expected a shape matching {} except along axis {axis}, found {}",
            st(first),
            st(found)
        ),
    )
}

pub fn too_large(shape: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0320",
        span,
        format!(
            "expected a tensor of rank ≤ 8 that fits in memory, found shape {}",
            st(shape)
        ),
    )
}

pub fn too_costly(span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0320",
        span,
        "expected a value small enough to compute at compile time, found one that is too large",
    )
}

pub fn image_input(name: &str, shape: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0321",
        span,
        format!(
            "expected an image [C, H, W] (or [H, W]) for `{name}`, found shape {}",
            st(shape)
        ),
    )
    .with_help("reshape it first, e.g. `reshape(x, [1, 8, 8])`")
}

pub fn kernel_too_large(
    name: &str,
    k: usize,
    shape: &[usize],
    pad: usize,
    span: Span,
) -> Diagnostic {
    Diagnostic::new(
        "E0322",
        span,
        format!(
            "expected a `kernel` no larger than the padded image for `{name}`, found {k} for an image {} with padding {pad}",
            st(shape)
        ),
    )
}

pub fn kernel_too_large_for_graph(name: &str, k: usize, max: usize, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0322",
        span,
        format!(
            "expected a `kernel` of at most {max} window positions for `{name}`, found {k}×{k}"
        ),
    )
    .with_help("each kernel position becomes its own view of the image; use a smaller kernel or pool first")
}

pub fn primitive_input(name: &str, shape: &[usize], span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0321",
        span,
        format!(
            "expected a vector input for `{name}`, found shape {}",
            st(shape)
        ),
    )
    .with_help("flatten it first, e.g. `reshape(x, [n])`")
}

// ----- E04xx: data files -----

pub fn data_error(e: &DataError, path: &str, path_span: Span, key_span: Span) -> Diagnostic {
    match e {
        DataError::Io(m) => Diagnostic::new(
            "E0401",
            path_span,
            format!(
                "expected a readable data file at \"{path}\", found {}",
                describe_io(m)
            ),
        )
        .with_note("relative paths are resolved against the script's folder"),
        DataError::UnknownFormat(ext) => Diagnostic::new(
            "E0402",
            path_span,
            format!("expected a .json, .csv or .npy file, found `{ext}`"),
        ),
        DataError::TooLarge { limit } => Diagnostic::new(
            "E0320",
            path_span,
            format!(
                "expected a constant of at most {limit} values, found more in \"{path}\""
            ),
        )
        .with_label("too large to hold at compile time")
        .with_help("load a part of the file (a column: load(path, \"name\")), or read it as a data set (`data NAME = csv(..)`)"),
        DataError::Malformed(m) => Diagnostic::new(
            "E0403",
            path_span,
            format!("expected valid data in \"{path}\", found a problem: {m}"),
        ),
        DataError::NoKey { key, available } => {
            let d = Diagnostic::new(
                "E0404",
                key_span,
                format!("expected a key of \"{path}\", found `{key}`"),
            )
            .with_label("no such key");
            match suggest(key, available.iter().map(|s| s.as_str())) {
                Some(h) => d.with_help(format!("did you mean `{h}`?")),
                None if available.is_empty() => d,
                None => d.with_note(format!("the keys are {}", available.join(", "))),
            }
        }
        // `load` never returns `Invalid` (it comes from the data set readers);
        // like a bad key, it is a whole sentence about the request.
        DataError::BadKey(m) | DataError::Invalid(m) => {
            Diagnostic::new("E0405", key_span, m.clone())
        }
    }
}

fn describe_io(m: &str) -> String {
    if m.starts_with("no such file") {
        "no such file".into()
    } else if m.ends_with("is a folder") {
        "a folder".into()
    } else if let Some((_, kind)) = m.split_once(": it is ") {
        // `data::read_regular`: "…: it is a FIFO, not a regular file".
        kind.to_string()
    } else if let Some((_, size)) = m.split_once(": it has ") {
        // "…: it has N bytes, more than the limit of M bytes".
        format!("a file of {size}")
    } else {
        match m.split_once(": ") {
            Some((_, why)) => format!("a file that cannot be read ({why})"),
            None => "a file that cannot be read".into(),
        }
    }
}

pub fn bad_model_file(path: &str, problem: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0216",
        span,
        format!("cannot import from `{path}`: {problem}"),
    )
    .with_label("expected a model file written by `ebm build` or a training run")
}

pub fn not_in_model_file(problem: &str, span: Span) -> Diagnostic {
    Diagnostic::new("E0217", span, problem.to_string())
        .with_label("not a definition of the model file")
}

pub fn imported_param_clash(param: &str, def: &Ident, span: Span) -> Diagnostic {
    Diagnostic::new(
        "E0218",
        span,
        format!(
            "importing `{}` would define parameter `{param}` a second time",
            def.name
        ),
    )
    .with_help(format!(
        "import it under its own namespace: `{} as NAME`",
        def.name
    ))
}

pub fn param_already_imported(name: &Ident) -> Diagnostic {
    Diagnostic::new(
        "E0218",
        name.span,
        format!(
            "`{}` is already a parameter of a definition imported above",
            name.name
        ),
    )
    .with_help(
        "rename this parameter, or import the definition under its own namespace with `as NAME`",
    )
}
