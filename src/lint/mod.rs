//! Warnings about programs that are valid but probably wrong: an energy
//! that is unbounded below, so that exp(−E) has no finite integral (no
//! density) and samplers drift to infinity. `not` and negative weights
//! (`A and not 2 * B`, `-1 * A`, `A - B`) make such energies easily.
//!
//! Two layers, run on each energy definition's lowered per-sample graph:
//!
//! - **Proof** (`W0101`): `ir::growth` bounds every node's growth as
//!   |x| → ∞. When the energy provably falls like −|x|^k, the warning
//!   blames the top-level term (of the `and`/`+`/`-` chain) that falls,
//!   with its source span, and says how fast the rest can grow at most.
//! - **Probe** (`W0102`): for compositions that negate a call of another
//!   definition (a `not`, a negative weight, a subtraction) that the proof
//!   cannot settle — equal degrees, learned networks — the reference
//!   interpreter evaluates E along fixed rays (± the first coordinate axes
//!   and 16 seeded random directions) at |x| = 10⁰ … 10⁶; a ray along which
//!   E keeps falling, ever faster, to far below E(0) is reported. The
//!   probe uses the parameters' values it is given (their initial values
//!   for `ebm check`), skips conditional definitions (a free `c`) and caps
//!   its cost, so plain energies and large networks never pay for it.
//!
//! Warnings never stop a program: `ebm check` prints them and succeeds,
//! `ebm run` and `ebm sample` print them on standard error and go on.

use std::collections::HashMap;

use crate::diag::{Diagnostic, Span};
use crate::ir::growth::{self, Growth, LOG, UNKNOWN};
use crate::ir::{BinaryOp, Graph, InputKind, NodeId, Op, interp, numel};
use crate::sema::{DefKind, Elem, Module, TExpr, TKind};

#[cfg(test)]
mod tests;

/// Proven unbounded below.
pub const PROVEN: &str = "W0101";
/// Found unbounded below by the numerical probe.
pub const PROBED: &str = "W0102";

/// Radii of the probe: 10^0 … 10^RADII-1.
const RADII: usize = 7;
/// Random probe directions (besides the coordinate axes).
const RANDOM_RAYS: usize = 16;
/// At most this many coordinate axes (each both ways) are probed.
const AXES: usize = 8;
/// The most element operations one probe may cost (all points together).
const PROBE_BUDGET: f64 = 2e7;
/// How far below E(0) (relative, at least absolute) the last radius must be.
const MARGIN: f64 = 1e6;

/// Parameter values by full name.
pub type Params<'a> = &'a dyn Fn(&str) -> Option<Vec<f64>>;

/// The warnings for every energy of `module`, its parameters at their
/// initial values; `source` is the text the spans point into.
pub fn module_warnings(module: &Module, source: &str) -> Vec<Diagnostic> {
    let init = |name: &str| module.param(name).map(|p| p.initial_value());
    module
        .defs
        .iter()
        .filter(|d| d.kind == DefKind::Energy)
        .flat_map(|d| energy_warnings(module, &d.name, source, &init))
        .collect()
}

/// The warnings for the energy `name` with parameters from `params`
/// (nothing for a name that is not an energy of `module`).
pub fn energy_warnings(
    module: &Module,
    name: &str,
    source: &str,
    params: Params,
) -> Vec<Diagnostic> {
    let Some(def) = module.def(name).filter(|d| d.kind == DefKind::Energy) else {
        return Vec::new();
    };
    let Some((g, trace)) = crate::lower::lower_traced(module, name) else {
        return Vec::new();
    };
    let Some(x) = g.find_input("x") else {
        return Vec::new();
    };
    let Some(root) = g.outputs.first().map(|o| o.node) else {
        return Vec::new();
    };
    let gr = growth::analyze(&g, x);
    // The outermost expression computing each node (later entries are outer).
    let spans: HashMap<NodeId, Span> = trace.into_iter().collect();
    let body = def.body.span;
    if let Some(k) = gr[root.index()].fall {
        return vec![proven(&g, &gr, root, k, &spans, body, name, source)];
    }
    if negates_call(&def.body, false)
        && g.find_input("c").is_none()
        && let Some(found) = probe(&g, params)
    {
        return vec![probed(found, body, name)];
    }
    Vec::new()
}

/// Whether `e`'s composition (its `and`/`+`/`-`/`not`/weight structure,
/// not the inside of builtins) applies a negation to a call of another
/// definition: what makes a composition unbounded, and what the probe
/// looks at.
fn negates_call(e: &TExpr, negated: bool) -> bool {
    let mut stack = vec![(e, negated)];
    while let Some((e, neg)) = stack.pop() {
        match &e.kind {
            TKind::Call { .. } | TKind::Imported(_) if neg => return true,
            TKind::Unary(Elem::Neg, a) => stack.push((a, !neg)),
            TKind::Binary(BinaryOp::Add, a, b) => {
                stack.push((a, neg));
                stack.push((b, neg));
            }
            TKind::Binary(BinaryOp::Sub, a, b) => {
                stack.push((a, neg));
                stack.push((b, !neg));
            }
            TKind::Binary(BinaryOp::Mul | BinaryOp::Div, a, b) => {
                for (k, v) in [(a, b), (b, a)] {
                    if let Some(t) = k.as_const() {
                        if t.data.iter().all(|&w| w < 0.0) {
                            stack.push((v, !neg));
                        } else if t.data.iter().all(|&w| w >= 0.0) {
                            stack.push((v, neg));
                        }
                    }
                }
            }
            TKind::Reshape(a) => stack.push((a, neg)),
            _ => {}
        }
    }
    false
}

/// The top-level terms of a scalar sum: (node, sign) through `+`, `-` and
/// reshapes of scalars.
fn terms(g: &Graph, root: NodeId) -> Vec<(NodeId, f64)> {
    let mut out = Vec::new();
    let mut stack = vec![(root, 1.0)];
    while let Some((id, s)) = stack.pop() {
        let n = g.node(id);
        let scalar = numel(g.shape(id)) == 1;
        match n.op {
            Op::Binary(BinaryOp::Add) if scalar => {
                stack.push((n.args[1], s));
                stack.push((n.args[0], s));
            }
            Op::Binary(BinaryOp::Sub) if scalar => {
                stack.push((n.args[1], -s));
                stack.push((n.args[0], s));
            }
            Op::Reshape if numel(g.shape(n.args[0])) == 1 => stack.push((n.args[0], s)),
            _ => out.push((id, s)),
        }
    }
    out
}

/// |x|^d as people read it.
fn power(d: f64) -> String {
    if d == LOG {
        "log|x|".into()
    } else if d == 1.0 {
        "|x|".into()
    } else if d.fract() == 0.0 {
        format!("|x|^{d}")
    } else {
        let t = format!("{d:.3}");
        format!("|x|^{}", t.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// Source text short enough to quote in a headline.
fn quote(source: &str, span: Span) -> Option<&str> {
    let t = source.get(span.start as usize..span.end as usize)?.trim();
    (!t.is_empty() && t.len() <= 48 && !t.contains('\n')).then_some(t)
}

/// A confining term that outgrows |x|^k.
fn confining(k: f64) -> String {
    let n = (k / 2.0).floor() as i64 + 1;
    if n == 1 {
        "and 0.01 * sqnorm(x)".to_string()
    } else {
        format!("and 0.01 * sqnorm(x)^{n}")
    }
}

fn confine_help(k: f64) -> String {
    format!(
        "what is negated must grow more slowly than the rest; or add a confining term that grows faster, e.g. `{}`",
        confining(k)
    )
}

const NO_DENSITY: &str = "exp(−E) has no finite integral: this energy defines no density, and samplers drift to infinity";

/// The W0101 warning: the term that falls, or the whole body.
#[allow(clippy::too_many_arguments)]
fn proven(
    g: &Graph,
    gr: &[Growth],
    root: NodeId,
    k: f64,
    spans: &HashMap<NodeId, Span>,
    body: Span,
    name: &str,
    source: &str,
) -> Diagnostic {
    let terms = terms(g, root);
    let signed = |&(id, s): &(NodeId, f64)| {
        let t = gr[id.index()];
        if s > 0.0 {
            (t.fall, t.up)
        } else {
            (t.rise, t.lo)
        }
    };
    let mut best: Option<(usize, f64, f64)> = None;
    for (i, t) in terms.iter().enumerate() {
        let (Some(kt), _) = signed(t) else { continue };
        let rest = terms
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .fold(growth::ZERO, |m, (_, o)| m.max(signed(o).1));
        if rest < kt && best.is_none_or(|(_, kb, _)| kt > kb) {
            best = Some((i, kt, rest));
        }
    }
    let headline = format!("energy `{name}` is unbounded below");
    let label = format!("falls like −{}", power(k));
    let blamed = best.and_then(|(i, kt, rest)| {
        let (id, s) = terms[i];
        let span = *spans.get(&id)?;
        Some((span, s, kt, rest))
    });
    let d = match blamed {
        Some((span, s, kt, rest)) if terms.len() > 1 => {
            let what = match (quote(source, span), s > 0.0) {
                (Some(t), true) => format!("`{t}`"),
                (Some(t), false) => format!("the subtracted `{t}`"),
                (None, true) => "this term".into(),
                (None, false) => "this subtracted term".into(),
            };
            let rest = if rest <= 0.0 {
                "the rest is bounded above".to_string()
            } else if rest >= UNKNOWN {
                "the rest grows more slowly".to_string()
            } else {
                format!("the rest grows at most like {}", power(rest))
            };
            Diagnostic::warning(
                PROVEN,
                span,
                format!("{headline}: {what} falls like −{}, {rest}", power(kt)),
            )
            .with_label(format!("falls like −{}", power(kt)))
        }
        _ => {
            return Diagnostic::warning(
                PROVEN,
                body,
                format!("{headline}: it falls like −{} as |x| → ∞", power(k)),
            )
            .with_label(label)
            .with_note(NO_DENSITY)
            .with_help(format!(
                "`not` or a negative weight turns a confining energy into one that falls; combine it with a term that grows faster, e.g. `{}`",
                confining(k)
            ));
        }
    };
    d.with_note(NO_DENSITY).with_help(confine_help(k))
}

/// What the probe found: the direction and the energies at the last two radii.
struct Found {
    rays: usize,
    dir: Vec<f64>,
    e_prev: f64,
    e_last: f64,
}

fn probed(f: Found, body: Span, name: &str) -> Diagnostic {
    let shown: Vec<String> = f
        .dir
        .iter()
        .take(4)
        .map(|v| {
            let t = format!("{v:.2}");
            if t == "-0.00" { "0.00".into() } else { t }
        })
        .collect();
    let more = if f.dir.len() > 4 { ", …" } else { "" };
    let e = |v: f64| format!("{v:e}");
    let r = |k: usize| format!("1e{k}");
    Diagnostic::warning(
        PROBED,
        body,
        format!(
            "energy `{name}` appears to be unbounded below: along the direction ({}{more}) it falls from E = {} at |x| = {} to E = {} at |x| = {}",
            shown.join(", "),
            e(round_sig(f.e_prev)),
            r(RADII - 2),
            e(round_sig(f.e_last)),
            r(RADII - 1),
        ),
    )
    .with_label("falls without bound along a ray")
    .with_note(NO_DENSITY)
    .with_note(format!(
        "found by evaluating E along {} fixed rays from the origin out to |x| = 1e{}, with the parameters' current values: a probe, not a proof",
        f.rays,
        RADII - 1
    ))
    .with_help(confine_help(2.0))
}

/// Four significant digits (probe values are approximate anyway).
fn round_sig(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    format!("{v:.3e}").parse().unwrap_or(v)
}

/// The probe directions for an input of `d` coordinates: ± the first
/// [`AXES`] axes, then [`RANDOM_RAYS`] seeded unit vectors.
fn directions(d: usize) -> Vec<Vec<f64>> {
    let mut dirs = Vec::new();
    for i in 0..d.min(AXES) {
        for s in [1.0, -1.0] {
            let mut u = vec![0.0; d];
            u[i] = s;
            dirs.push(u);
        }
    }
    let z = crate::data::rng::normal(0x5eed_0b0d, RANDOM_RAYS * d);
    for row in z.chunks(d.max(1)).take(RANDOM_RAYS) {
        let n = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n > 0.0 && n.is_finite() {
            dirs.push(row.iter().map(|v| v / n).collect());
        }
    }
    dirs
}

/// Element operations one evaluation of `g` costs, roughly.
fn cost(g: &Graph) -> f64 {
    g.nodes()
        .iter()
        .map(|n| {
            let out = numel(&n.shape) as f64;
            match n.op {
                Op::MatMul => {
                    let k = n
                        .args
                        .first()
                        .and_then(|a| g.shape(*a).last().copied())
                        .unwrap_or(1);
                    out * k as f64
                }
                Op::Sum(_) | Op::Max(_) => {
                    n.args.first().map_or(out, |a| numel(g.shape(*a)) as f64)
                }
                _ => out,
            }
        })
        .sum()
}

/// Evaluates E along the probe rays; the ray with the lowest E at the
/// largest radius among those where E keeps falling ever faster to far
/// below E(0).
fn probe(g: &Graph, params: Params) -> Option<Found> {
    let x = g.find_input("x")?;
    let d = numel(&g.input(x).shape);
    if d == 0 {
        return None;
    }
    let dirs = directions(d);
    let points = 1 + dirs.len() * RADII;
    if cost(g) * points as f64 > PROBE_BUDGET {
        return None;
    }
    let mut xs = vec![0.0; points * d];
    for (i, u) in dirs.iter().enumerate() {
        for k in 0..RADII {
            let r = 10f64.powi(k as i32);
            let p = 1 + i * RADII + k;
            for (j, v) in u.iter().enumerate() {
                xs[p * d + j] = r * v;
            }
        }
    }
    let mut values: Vec<Vec<f64>> = Vec::new();
    for input in g.inputs() {
        match input.kind {
            InputKind::Sample if input.name == "x" => values.push(Vec::new()),
            InputKind::Sample => return None,
            InputKind::Shared => {
                let v = params(&input.name)?;
                if v.len() != numel(&input.shape) {
                    return None;
                }
                values.push(v);
            }
        }
    }
    values[x.index()] = xs;
    let refs: Vec<&[f64]> = values.iter().map(|v| v.as_slice()).collect();
    let out = interp::eval::<f64>(g, &refs, points).ok()?;
    let e = out.first()?;
    let e0 = *e.first()?;
    if !e0.is_finite() {
        return None;
    }
    let mut best: Option<Found> = None;
    for (i, u) in dirs.iter().enumerate() {
        let ray = &e[1 + i * RADII..1 + (i + 1) * RADII];
        let (a, b, c) = (ray[RADII - 3], ray[RADII - 2], ray[RADII - 1]);
        let falling = !a.is_nan() && !b.is_nan() && !c.is_nan() && c < b && b < a;
        // Ever faster: the last drop exceeds the one before (a fall that
        // flattens, like −log|x|, does not count).
        let faster = b - c > a - b;
        let deep = c < e0 - MARGIN * e0.abs().max(1.0);
        if falling && faster && deep && best.as_ref().is_none_or(|f| c < f.e_last) {
            best = Some(Found {
                rays: dirs.len(),
                dir: u.clone(),
                e_prev: b,
                e_last: c,
            });
        }
    }
    best
}
