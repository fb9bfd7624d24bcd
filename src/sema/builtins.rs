//! The one table of builtin signatures. Argument binding (positional, then
//! keyword, with did-you-mean for unknown keywords) is generic over it, so a
//! builtin's arity and keyword names are declared exactly once.

use crate::diag::Diagnostic;
use crate::syntax::ast::{CallArg, Expr, Ident};

use super::errors;

/// One parameter of a builtin.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    /// Whether the caller must pass it.
    pub required: bool,
    /// Keyword-only (after a variadic list, e.g. `axis` of `concat`).
    pub kw_only: bool,
}

/// Where a builtin may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Elementwise activation/math function `f(x)`.
    Elementwise,
    /// Reductions and tensor operations.
    Tensor,
    /// Compile-time constructors (their arguments are constants).
    Constructor,
    /// Neural primitives: only inside `energy`/`model` bodies.
    Neural,
    /// Parameter initialisers: only after `~` in `param`.
    Init,
}

#[derive(Clone, Copy, Debug)]
pub struct Sig {
    pub name: &'static str,
    pub params: &'static [Param],
    /// Accepts any number (≥ 1) of leading positional arguments.
    pub variadic: bool,
    pub class: Class,
    /// One line for the language reference and `help`.
    pub doc: &'static str,
}

const fn req(name: &'static str) -> Param {
    Param {
        name,
        required: true,
        kw_only: false,
    }
}
const fn opt(name: &'static str) -> Param {
    Param {
        name,
        required: false,
        kw_only: false,
    }
}
const fn kw(name: &'static str) -> Param {
    Param {
        name,
        required: false,
        kw_only: true,
    }
}

macro_rules! sig {
    ($name:literal, [$($p:expr),*], $variadic:expr, $class:ident, $doc:literal) => {
        Sig { name: $name, params: &[$($p),*], variadic: $variadic, class: Class::$class, doc: $doc }
    };
}

/// Every builtin function, in documentation order.
pub const BUILTINS: &[Sig] = &[
    sig!("exp", [req("x")], false, Elementwise, "e^x"),
    sig!("log", [req("x")], false, Elementwise, "natural logarithm"),
    sig!(
        "log1p",
        [req("x")],
        false,
        Elementwise,
        "log(1 + x), accurate near 0"
    ),
    sig!("sqrt", [req("x")], false, Elementwise, "square root"),
    sig!("abs", [req("x")], false, Elementwise, "absolute value"),
    sig!("sin", [req("x")], false, Elementwise, "sine"),
    sig!("cos", [req("x")], false, Elementwise, "cosine"),
    sig!("tanh", [req("x")], false, Elementwise, "hyperbolic tangent"),
    sig!("sigmoid", [req("x")], false, Elementwise, "1 / (1 + e^-x)"),
    sig!(
        "softplus",
        [req("x")],
        false,
        Elementwise,
        "log(1 + e^x), stable"
    ),
    sig!("relu", [req("x")], false, Elementwise, "max(x, 0)"),
    sig!(
        "leaky_relu",
        [req("x"), opt("alpha")],
        false,
        Elementwise,
        "x if x > 0 else alpha·x (alpha = 0.01)"
    ),
    sig!(
        "elu",
        [req("x"), opt("alpha")],
        false,
        Elementwise,
        "x if x > 0 else alpha·(e^x − 1) (alpha = 1)"
    ),
    sig!(
        "swish",
        [req("x")],
        false,
        Elementwise,
        "x·sigmoid(x) (SiLU)"
    ),
    sig!(
        "gelu",
        [req("x")],
        false,
        Elementwise,
        "0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))"
    ),
    sig!(
        "sum",
        [req("x"), opt("axis")],
        false,
        Tensor,
        "sum over all axes, or over `axis`"
    ),
    sig!(
        "mean",
        [req("x"), opt("axis")],
        false,
        Tensor,
        "mean over all axes, or over `axis`"
    ),
    sig!(
        "max",
        [req("x"), opt("axis")],
        false,
        Tensor,
        "maximum over all axes, or over `axis`"
    ),
    sig!(
        "min",
        [req("x"), opt("axis")],
        false,
        Tensor,
        "minimum over all axes, or over `axis`"
    ),
    sig!(
        "logsumexp",
        [kw("axis")],
        true,
        Tensor,
        "log Σ exp over one tensor (all axes or `axis`), or over several scalars"
    ),
    sig!(
        "maximum",
        [req("a"), req("b")],
        false,
        Tensor,
        "elementwise maximum of two broadcast tensors"
    ),
    sig!(
        "minimum",
        [req("a"), req("b")],
        false,
        Tensor,
        "elementwise minimum of two broadcast tensors"
    ),
    sig!(
        "logaddexp",
        [],
        true,
        Tensor,
        "log Σ exp elementwise over broadcast tensors, stable"
    ),
    sig!(
        "mix",
        [kw("weights"), kw("logz")],
        true,
        Tensor,
        "weighted mixture of energies: −log Σᵢ wᵢ·exp(−Eᵢ − log Zᵢ), weights normalised"
    ),
    sig!(
        "sqnorm",
        [req("x"), opt("axis")],
        false,
        Tensor,
        "Σ x² over the last axis (or `axis`)"
    ),
    sig!(
        "norm",
        [req("x"), opt("axis")],
        false,
        Tensor,
        "√(Σ x²) over the last axis (or `axis`)"
    ),
    sig!(
        "dot",
        [req("a"), req("b")],
        false,
        Tensor,
        "Σ a·b over the last axis (broadcasting)"
    ),
    sig!(
        "concat",
        [kw("axis")],
        true,
        Tensor,
        "join tensors along `axis` (default 0); scalars count as [1]"
    ),
    sig!(
        "reshape",
        [req("x"), req("shape")],
        false,
        Tensor,
        "same elements, row-major, new static shape"
    ),
    sig!(
        "transpose",
        [req("x"), opt("perm")],
        false,
        Tensor,
        "permute axes (default: reverse them)"
    ),
    sig!(
        "where",
        [req("cond"), req("a"), req("b")],
        false,
        Tensor,
        "a where cond holds (or is non-zero), else b"
    ),
    sig!(
        "clamp",
        [req("x"), req("lo"), req("hi")],
        false,
        Tensor,
        "min(max(x, lo), hi)"
    ),
    sig!(
        "stop_gradient",
        [req("x")],
        false,
        Tensor,
        "x, with zero derivative"
    ),
    sig!(
        "ring",
        [req("n"), opt("radius")],
        false,
        Constructor,
        "[n, 2] points on a circle, point k at angle 2πk/n (radius = 1)"
    ),
    sig!(
        "linspace",
        [req("a"), req("b"), req("n")],
        false,
        Constructor,
        "[n] evenly spaced values from a to b inclusive"
    ),
    sig!(
        "zeros",
        [req("shape")],
        false,
        Constructor,
        "a tensor of zeros"
    ),
    sig!(
        "ones",
        [req("shape")],
        false,
        Constructor,
        "a tensor of ones"
    ),
    sig!(
        "eye",
        [req("n")],
        false,
        Constructor,
        "[n, n] identity matrix"
    ),
    sig!(
        "onehot",
        [req("i"), req("n")],
        false,
        Constructor,
        "[n] vector with a 1 at index i"
    ),
    sig!(
        "randn",
        [req("shape"), opt("seed")],
        false,
        Constructor,
        "standard normals from the SM64 generator (seed = 0)"
    ),
    sig!(
        "load",
        [req("path"), opt("key")],
        false,
        Constructor,
        "an array from a JSON, CSV or NPY file"
    ),
    sig!(
        "linear",
        [req("x"), req("out")],
        false,
        Neural,
        "x @ W + b with fresh parameters W: [in, out], b: [out]"
    ),
    sig!(
        "mlp",
        [req("x"), req("sizes"), opt("act")],
        false,
        Neural,
        "a stack of linear layers with `act` between them (swish)"
    ),
    sig!(
        "conv2d",
        [
            req("x"),
            req("out"),
            req("kernel"),
            opt("stride"),
            opt("padding")
        ],
        false,
        Neural,
        "2-D convolution of x: [C, H, W] with fresh W: [C·k·k, out], b: [out] (im2col + GEMM)"
    ),
    sig!(
        "avg_pool2d",
        [req("x"), req("kernel"), opt("stride")],
        false,
        Tensor,
        "mean over k×k windows of x: [C, H, W] (stride = kernel)"
    ),
    sig!(
        "max_pool2d",
        [req("x"), req("kernel"), opt("stride")],
        false,
        Tensor,
        "maximum over k×k windows of x: [C, H, W] (stride = kernel)"
    ),
    sig!(
        "scan",
        [req("init"), req("xs"), req("step")],
        false,
        Tensor,
        "every carry s_t = step(s_{t-1}, xs[t]) from s_{-1} = init, stacked: [T, ..carry]"
    ),
    sig!(
        "fold",
        [req("init"), req("xs"), req("step")],
        false,
        Tensor,
        "the last carry of `scan(init, xs, step)`"
    ),
    sig!(
        "flatten",
        [req("x")],
        false,
        Tensor,
        "all elements, row-major, on one axis"
    ),
    sig!(
        "normal",
        [req("mean"), req("std")],
        false,
        Init,
        "mean + std · N(0, 1)"
    ),
    sig!("uniform", [req("a"), req("b")], false, Init, "U(a, b)"),
    sig!(
        "glorot",
        [],
        false,
        Init,
        "U(−l, l), l = √(6 / (fan_in + fan_out))"
    ),
];

/// Activations accepted by `mlp(.., act = NAME)`.
pub const ACTIVATIONS: &[&str] = &[
    "swish",
    "relu",
    "tanh",
    "sigmoid",
    "softplus",
    "gelu",
    "elu",
    "leaky_relu",
];

/// Script statements (top-level calls). `script` decides which are runnable.
pub const STATEMENTS: &[&str] = &[
    "print",
    "sample",
    "plot",
    "save",
    "summary",
    "train",
    "jem",
    "evaluate",
    "ais",
    "load_params",
    "export",
];

pub fn lookup(name: &str) -> Option<&'static Sig> {
    BUILTINS.iter().find(|s| s.name == name)
}

/// Arguments matched to a signature: `slots[i]` is parameter `i`, `rest` the
/// variadic positional arguments.
pub struct Bound<'a> {
    pub slots: Vec<Option<&'a Expr>>,
    pub rest: Vec<&'a Expr>,
}

impl<'a> Bound<'a> {
    pub fn get(&self, sig: &Sig, name: &str) -> Option<&'a Expr> {
        let i = sig.params.iter().position(|p| p.name == name)?;
        self.slots[i]
    }
}

/// Matches call arguments to `sig`, reporting every problem found.
pub fn bind<'a>(
    sig: &Sig,
    callee: &Ident,
    call_span: crate::diag::Span,
    args: &'a [CallArg],
    diags: &mut Vec<Diagnostic>,
) -> Option<Bound<'a>> {
    let mut slots: Vec<Option<&Expr>> = vec![None; sig.params.len()];
    let mut rest = Vec::new();
    let positional: Vec<usize> = (0..sig.params.len())
        .filter(|&i| !sig.params[i].kw_only)
        .collect();
    let mut next = 0;
    let mut ok = true;
    let mut seen_kw = false;
    for arg in args {
        match arg {
            CallArg::Positional(e) => {
                if seen_kw {
                    diags.push(errors::positional_after_keyword(e.span));
                    ok = false;
                } else if sig.variadic {
                    rest.push(e);
                } else if next < positional.len() {
                    slots[positional[next]] = Some(e);
                    next += 1;
                } else {
                    diags.push(errors::too_many_args(sig, e.span, args.len()));
                    ok = false;
                    break;
                }
            }
            CallArg::Keyword { name, value } => {
                seen_kw = true;
                match sig.params.iter().position(|p| p.name == name.name) {
                    Some(i) if slots[i].is_some() => {
                        diags.push(errors::duplicate_arg(sig.name, name));
                        ok = false;
                    }
                    Some(i) => slots[i] = Some(value),
                    None => {
                        diags.push(errors::unknown_keyword(sig, name));
                        ok = false;
                    }
                }
            }
        }
    }
    if !ok {
        return None;
    }
    if sig.variadic && rest.is_empty() {
        diags.push(errors::missing_arg(sig, callee, call_span, "x", args.len()));
        return None;
    }
    for (i, p) in sig.params.iter().enumerate() {
        if p.required && slots[i].is_none() {
            diags.push(errors::missing_arg(
                sig,
                callee,
                call_span,
                p.name,
                args.len(),
            ));
            return None;
        }
    }
    Some(Bound { slots, rest })
}

/// `name(a, b, key = ..)` as shown in messages and the reference.
pub fn signature_text(sig: &Sig) -> String {
    let mut parts: Vec<String> = Vec::new();
    if sig.variadic {
        parts.push("x, ...".into());
    }
    for p in sig.params {
        parts.push(if p.required {
            p.name.to_string()
        } else {
            format!("{}=..", p.name)
        });
    }
    format!("{}({})", sig.name, parts.join(", "))
}
