//! Growth analysis: how fast each node of a per-sample graph can grow as
//! the sample input `x` goes to infinity, with sign information — the proof
//! half of the "energy unbounded below" warning (`lint`).
//!
//! For every node `v` (a tensor; bounds hold for every element unless said
//! otherwise), with r = |x| and constants c > 0, C:
//!
//! - `up`: a degree d with v ≤ C(1 + r)^d everywhere. [`ZERO`] (−∞) means
//!   v ≤ 0 exactly, 0 means bounded above, [`LOG`] a logarithmic bound,
//!   d > 0 a polynomial one, +∞ nothing known (`exp` of a growing value,
//!   a division by a non-constant).
//! - `lo`: the same for −v (so `lo` = [`ZERO`] means v ≥ 0).
//! - `rise`: k > 0 with Σᵢ vᵢ ≥ c·r^k − C (the sum of the elements is
//!   coercive: it grows at least like r^k in *every* direction).
//! - `fall`: k > 0 with Σᵢ vᵢ ≤ −c·r^k + C. A scalar energy with a `fall`
//!   is unbounded below along every ray, so exp(−E) has no finite integral.
//! - `norm`: k > 0 with ‖v‖ ≥ c·r^k − C.
//! - `range`: for nodes that read no input at all, an interval holding every
//!   element.
//!
//! Every rule is sound: where a bound is not certain the analysis says
//! "unknown" (+∞ for `up`/`lo`, `None` for the others), so a `fall` is a
//! proof, never a guess. Conditioning inputs and parameters are bounded
//! values of unknown sign (the statements hold for each fixed value of
//! them). Values that can be NaN (`log`, `sqrt`, a fractional power of
//! something that may be negative) make everything unknown.
//!
//! `logsumexp` as `Graph::logsumexp` builds it (m + log Σ exp(a − m) with
//! m = max a) is recognised: the log term lies in [0, log n], so
//! −logsumexp(−E₁, −E₂) (`or`, and any weighted mixture built the same way)
//! is bounded below iff each Eᵢ is, and falls when any Eᵢ falls.

use super::{BinaryOp, Graph, InputId, InputKind, NodeId, Op, UnaryOp, numel};

/// `up`/`lo` of a side that is identically ≤ 0 (the value has a sign).
pub const ZERO: f64 = f64::NEG_INFINITY;
/// `up`/`lo` of a logarithmic bound: above every constant, below every
/// positive power (strict comparisons with polynomial degrees stay sound).
pub const LOG: f64 = f64::MIN_POSITIVE;
/// Nothing known.
pub const UNKNOWN: f64 = f64::INFINITY;

/// Largest constant matrix side whose rank or definiteness is computed.
const MAX_FACTOR: usize = 256;

/// What the analysis knows about one node (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Growth {
    pub up: f64,
    pub lo: f64,
    pub rise: Option<f64>,
    pub fall: Option<f64>,
    pub norm: Option<f64>,
    pub range: Option<(f64, f64)>,
}

impl Growth {
    /// Nothing known.
    pub const UNKNOWN: Growth = Growth {
        up: UNKNOWN,
        lo: UNKNOWN,
        rise: None,
        fall: None,
        norm: None,
        range: None,
    };

    /// A bounded value of unknown sign (a parameter, a conditioning input).
    const BOUNDED: Growth = Growth {
        up: 0.0,
        lo: 0.0,
        ..Growth::UNKNOWN
    };

    fn bounds(up: f64, lo: f64) -> Growth {
        Growth {
            up,
            lo,
            ..Growth::UNKNOWN
        }
    }

    fn constant(lo: f64, hi: f64) -> Growth {
        if !(lo.is_finite() && hi.is_finite()) {
            return Growth::UNKNOWN;
        }
        Growth {
            up: if hi > 0.0 { 0.0 } else { ZERO },
            lo: if lo < 0.0 { 0.0 } else { ZERO },
            range: Some((lo, hi)),
            ..Growth::UNKNOWN
        }
    }

    fn negated(self) -> Growth {
        Growth {
            up: self.lo,
            lo: self.up,
            rise: self.fall,
            fall: self.rise,
            norm: self.norm,
            range: self.range.map(|(a, b)| (-b, -a)),
        }
    }

    /// The largest degree either side can reach (|v| ≤ C(1 + r)^mag).
    pub fn mag(&self) -> f64 {
        self.up.max(self.lo)
    }

    /// v ≥ 0 everywhere.
    pub fn nonneg(&self) -> bool {
        self.lo == ZERO
    }

    /// The value is bounded (above and below).
    pub fn bounded(&self) -> bool {
        self.up <= 0.0 && self.lo <= 0.0
    }
}

/// The degree of a product of two bounds: zero absorbs, degrees add.
fn times(a: f64, b: f64) -> f64 {
    if a == ZERO || b == ZERO { ZERO } else { a + b }
}

/// The degree of v^p (p > 0) from the degree of v.
fn scale(d: f64, p: f64) -> f64 {
    if d == ZERO || d == 0.0 || d == UNKNOWN {
        d
    } else {
        (d * p).max(LOG)
    }
}

/// The larger of two optional degrees.
fn most(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The smaller of two degrees both present.
fn both(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a?.min(b?))
}

/// `k` when some other part's opposite side stays below it.
fn dominates(k: Option<f64>, other: f64) -> Option<f64> {
    k.filter(|&k| other < k)
}

/// The growth of every node of `g` as its sample input `x` goes to
/// infinity (indexed by node id), for a graph the verifier accepts.
pub fn analyze(g: &Graph, x: InputId) -> Vec<Growth> {
    let mut out: Vec<Growth> = Vec::with_capacity(g.len());
    for id in g.ids() {
        let gr = if is_shifted_log(g, id) {
            // logsumexp's log Σ exp(a − max a) lies in [0, log n].
            Growth::bounds(0.0, ZERO)
        } else {
            node_growth(g, x, id, &out)
        };
        out.push(finish(gr, g.shape(id).is_empty()));
    }
    out
}

/// The growth of the graph's sample input `x` read by `g`'s first output
/// (`None` when the graph has no `x` or no output).
pub fn of_output(g: &Graph) -> Option<(Vec<Growth>, NodeId)> {
    let x = g.find_input("x")?;
    let root = g.outputs.first()?.node;
    Some((analyze(g, x), root))
}

/// Consequences every node shares: a coercive sum makes the vector's norm
/// coercive (Σv ≤ √n‖v‖), and a scalar with a sign and a coercive norm rises.
fn finish(mut g: Growth, scalar: bool) -> Growth {
    g.norm = most(g.norm, most(g.rise, g.fall));
    if scalar && let Some(k) = g.norm {
        if g.lo <= 0.0 {
            g.rise = most(g.rise, Some(k));
        }
        if g.up <= 0.0 {
            g.fall = most(g.fall, Some(k));
        }
    }
    g
}

fn node_growth(g: &Graph, x: InputId, id: NodeId, done: &[Growth]) -> Growth {
    let node = g.node(id);
    // Operands always precede their users in a verified graph; a malformed
    // one gets "unknown" rather than a panic.
    let arg = |i: usize| -> Growth {
        node.args
            .get(i)
            .and_then(|a| done.get(a.index()))
            .copied()
            .unwrap_or(Growth::UNKNOWN)
    };
    match node.op {
        Op::Scalar(v) => Growth::constant(v.get(), v.get()),
        Op::Const(c) => match g.consts().get(c.index()) {
            Some(t) if !t.data.is_empty() => {
                let lo = t.data.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = t.data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if t.data.iter().any(|v| v.is_nan()) {
                    Growth::UNKNOWN
                } else {
                    Growth::constant(lo, hi)
                }
            }
            _ => Growth::UNKNOWN,
        },
        Op::Input(i) if i == x => Growth {
            up: 1.0,
            lo: 1.0,
            norm: Some(1.0),
            ..Growth::UNKNOWN
        },
        Op::Input(i) => match g.inputs().get(i.index()).map(|d| d.kind) {
            Some(InputKind::Sample) | Some(InputKind::Shared) => Growth::BOUNDED,
            None => Growth::UNKNOWN,
        },
        Op::Unary(u) => unary(u, arg(0)),
        Op::PowConst(p) => pow(arg(0), p.get(), g.shape(id).is_empty()),
        Op::Binary(b) => {
            let (a, bb) = (arg(0), arg(1));
            let same = node.args.first() == node.args.get(1);
            binary(g, b, a, bb, same, id)
        }
        Op::Select => {
            let (a, b) = (arg(1), arg(2));
            let scalar = g.shape(id).is_empty();
            Growth {
                up: a.up.max(b.up),
                lo: a.lo.max(b.lo),
                rise: if scalar { both(a.rise, b.rise) } else { None },
                fall: if scalar { both(a.fall, b.fall) } else { None },
                ..Growth::UNKNOWN
            }
        }
        // Repeating elements scales the sum and keeps the norm coercive.
        Op::Broadcast | Op::Reshape | Op::Transpose(_) | Op::StopGradient => arg(0),
        Op::Sum(_) => {
            let a = arg(0);
            Growth {
                norm: None,
                range: a.range.map(|(l, h)| {
                    let n = (numel(g.shape(node.args[0])) as f64).max(1.0);
                    (l.min(l * n), h.max(h * n))
                }),
                ..a
            }
        }
        Op::Max(_) => {
            let a = arg(0);
            // max ≥ the mean of what it reduces, and ≥ every part of a concat.
            let full = g.shape(id).is_empty();
            let rise = if full {
                most(a.rise, max_rise(g, node.args[0], done))
            } else {
                a.rise
            };
            Growth {
                up: a.up,
                lo: a.lo,
                rise,
                // The maximum of scalars that all fall falls.
                fall: if full {
                    max_fall(g, node.args[0], done)
                } else {
                    None
                },
                range: a.range,
                ..Growth::UNKNOWN
            }
        }
        Op::Slice { .. } => {
            let a = arg(0);
            Growth {
                up: a.up,
                lo: a.lo,
                range: a.range,
                ..Growth::UNKNOWN
            }
        }
        Op::Concat { .. } => concat(
            &node
                .args
                .iter()
                .map(|a| done[a.index()])
                .collect::<Vec<_>>(),
        ),
        Op::MatMul => matmul(g, id, done),
        // A loop's growth would need a fixed point over its body: give up
        // (sound: "unknown" proves nothing, so no warning comes from it).
        Op::Scan { .. } => Growth::UNKNOWN,
    }
}

/// The largest `rise` of any part a maximum over all elements of `id` sees.
fn max_rise(g: &Graph, id: NodeId, done: &[Growth]) -> Option<f64> {
    let mut stack = vec![id];
    let mut k = None;
    while let Some(id) = stack.pop() {
        let node = g.node(id);
        match node.op {
            Op::Concat { .. } => stack.extend(&node.args),
            Op::Reshape | Op::Broadcast | Op::Transpose(_) | Op::StopGradient => {
                stack.push(node.args[0])
            }
            _ => k = most(k, done.get(id.index()).and_then(|gr| gr.rise)),
        }
    }
    k
}

/// The smallest `fall` of the scalars a maximum over all elements of `id`
/// sees, when every one of them falls (concatenated scalars only).
fn max_fall(g: &Graph, id: NodeId, done: &[Growth]) -> Option<f64> {
    let mut stack = vec![id];
    let mut k = f64::INFINITY;
    while let Some(id) = stack.pop() {
        let node = g.node(id);
        match node.op {
            Op::Concat { .. } => stack.extend(&node.args),
            Op::Reshape | Op::Broadcast | Op::Transpose(_) | Op::StopGradient => {
                stack.push(node.args[0])
            }
            _ if numel(g.shape(id)) == 1 => k = k.min(done.get(id.index())?.fall?),
            _ => return None,
        }
    }
    k.is_finite().then_some(k)
}

fn concat(parts: &[Growth]) -> Growth {
    let up = parts.iter().fold(ZERO, |m, p| m.max(p.up));
    let lo = parts.iter().fold(ZERO, |m, p| m.max(p.lo));
    let mut rise = None;
    let mut fall = None;
    for (i, p) in parts.iter().enumerate() {
        let others = parts.iter().enumerate().filter(|(j, _)| *j != i);
        let lo_rest = others.clone().fold(ZERO, |m, (_, q)| m.max(q.lo));
        let up_rest = others.fold(ZERO, |m, (_, q)| m.max(q.up));
        rise = most(rise, dominates(p.rise, lo_rest));
        fall = most(fall, dominates(p.fall, up_rest));
    }
    let norm = parts.iter().fold(None, |m, p| most(m, p.norm));
    let range = parts
        .iter()
        .try_fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
            p.range.map(|(a, b)| (l.min(a), h.max(b)))
        });
    Growth {
        up,
        lo,
        rise,
        fall,
        norm,
        range,
    }
}

fn unary(u: UnaryOp, a: Growth) -> Growth {
    let range = |f: fn(f64) -> f64| {
        a.range.and_then(|(l, h)| {
            let (fl, fh) = (f(l), f(h));
            let (lo, hi) = (fl.min(fh), fl.max(fh));
            (lo.is_finite() && hi.is_finite()).then_some((lo, hi))
        })
    };
    // Monotone functions map a constant interval to one.
    let mono = |f: fn(f64) -> f64, g: Growth| -> Growth {
        match range(f) {
            Some((l, h)) => Growth::constant(l, h),
            None => g,
        }
    };
    match u {
        UnaryOp::Neg => a.negated(),
        UnaryOp::Exp => mono(
            f64::exp,
            Growth {
                up: if a.up <= 0.0 { 0.0 } else { UNKNOWN },
                lo: ZERO,
                // eᵛ ≥ 1 + v.
                rise: a.rise,
                ..Growth::UNKNOWN
            },
        ),
        UnaryOp::Log | UnaryOp::Log1p => {
            if !a.nonneg() {
                return Growth::UNKNOWN;
            }
            let up = if a.up <= 0.0 {
                0.0
            } else if a.up < UNKNOWN {
                LOG
            } else {
                UNKNOWN
            };
            let lo = if u == UnaryOp::Log1p { ZERO } else { UNKNOWN };
            let f = if u == UnaryOp::Log {
                f64::ln
            } else {
                f64::ln_1p
            };
            mono(f, Growth::bounds(up, lo))
        }
        UnaryOp::Sqrt => {
            if !a.nonneg() {
                return Growth::UNKNOWN;
            }
            mono(
                f64::sqrt,
                Growth {
                    up: scale(a.up, 0.5),
                    lo: ZERO,
                    // Σ√vᵢ ≥ √Σvᵢ for vᵢ ≥ 0.
                    rise: a.rise.map(|k| k / 2.0),
                    norm: a.norm.map(|k| k / 2.0),
                    ..Growth::UNKNOWN
                },
            )
        }
        UnaryOp::Abs => Growth {
            up: a.mag(),
            lo: ZERO,
            // Σ|vᵢ| ≥ ‖v‖.
            rise: a.norm,
            norm: a.norm,
            range: a.range.map(|(l, h)| {
                if l >= 0.0 {
                    (l, h)
                } else if h <= 0.0 {
                    (-h, -l)
                } else {
                    (0.0, h.max(-l))
                }
            }),
            ..Growth::UNKNOWN
        },
        UnaryOp::Sign | UnaryOp::Tanh => Growth {
            up: if a.up == ZERO { ZERO } else { 0.0 },
            lo: if a.lo == ZERO { ZERO } else { 0.0 },
            range: if u == UnaryOp::Tanh {
                range(f64::tanh)
            } else {
                a.range.map(|(l, h)| (l.signum(), h.signum()))
            },
            ..Growth::UNKNOWN
        },
        UnaryOp::Step => Growth {
            up: if a.up == ZERO { ZERO } else { 0.0 },
            lo: ZERO,
            ..Growth::UNKNOWN
        },
        UnaryOp::Sin | UnaryOp::Cos => Growth::bounds(0.0, 0.0),
        UnaryOp::Sigmoid => mono(|v| 1.0 / (1.0 + (-v).exp()), Growth::bounds(0.0, ZERO)),
        UnaryOp::Softplus => mono(
            |v| v.max(0.0) + (-v.abs()).exp().ln_1p(),
            Growth {
                up: a.up.max(0.0),
                lo: ZERO,
                // softplus(v) ≥ v.
                rise: a.rise,
                ..Growth::UNKNOWN
            },
        ),
    }
}

fn pow(a: Growth, p: f64, scalar: bool) -> Growth {
    if !p.is_finite() {
        return Growth::UNKNOWN;
    }
    let integer = p.fract() == 0.0 && p.abs() < 1e15;
    let even = integer && (p as i64) % 2 == 0;
    if let Some((l, h)) = a.range {
        if (!integer && l < 0.0) || (p < 0.0 && l <= 0.0 && h >= 0.0) {
            return Growth::UNKNOWN;
        }
        let (fl, fh) = (l.powf(p), h.powf(p));
        let zero_inside = p > 0.0 && l < 0.0 && h > 0.0;
        let lo = fl
            .min(fh)
            .min(if zero_inside { 0.0 } else { f64::INFINITY });
        return Growth::constant(lo, fl.max(fh));
    }
    if p == 0.0 {
        return Growth::constant(1.0, 1.0);
    }
    if p < 0.0 {
        // Near a zero of v the power blows up.
        let lo = if even || a.nonneg() { ZERO } else { UNKNOWN };
        return Growth::bounds(UNKNOWN, lo);
    }
    if even || a.nonneg() {
        // |vᵢ|^p: Σ|vᵢ|^p ≥ c·(Σ|vᵢ|)^p ≥ c·‖v‖^p, and Σ|vᵢ| ≥ Σvᵢ.
        let up = if a.nonneg() {
            scale(a.up, p)
        } else {
            scale(a.mag(), p)
        };
        return Growth {
            up,
            lo: ZERO,
            rise: most(a.norm, a.rise).map(|k| k * p),
            norm: a.norm.map(|k| k * p),
            ..Growth::UNKNOWN
        };
    }
    if integer {
        // Odd powers keep the sign.
        return Growth {
            up: scale(a.up, p),
            lo: scale(a.lo, p),
            rise: if scalar { a.rise.map(|k| k * p) } else { None },
            fall: if scalar { a.fall.map(|k| k * p) } else { None },
            norm: a.norm.map(|k| k * p),
            ..Growth::UNKNOWN
        };
    }
    // A fractional power of something that may be negative is NaN there.
    Growth::UNKNOWN
}

fn binary(g: &Graph, b: BinaryOp, a: Growth, c: Growth, same: bool, id: NodeId) -> Growth {
    let scalar = g.shape(id).is_empty();
    match b {
        BinaryOp::Add => add(a, c),
        BinaryOp::Sub => add(a, c.negated()),
        BinaryOp::Mul if same => pow(a, 2.0, scalar),
        BinaryOp::Mul => mul(a, c, scalar),
        BinaryOp::Div => match c.range {
            Some((l, h)) if l > 0.0 || h < 0.0 => {
                let inv = Growth::constant(1.0 / h, 1.0 / l);
                mul(a, inv, scalar)
            }
            _ => Growth::UNKNOWN,
        },
        BinaryOp::Pow => match (a.range, c.range) {
            (Some(_), Some(_)) => Growth::BOUNDED,
            _ => Growth::UNKNOWN,
        },
        BinaryOp::Max => Growth {
            up: a.up.max(c.up),
            lo: a.lo.min(c.lo),
            rise: most(a.rise, c.rise),
            fall: if scalar { both(a.fall, c.fall) } else { None },
            range: match (a.range, c.range) {
                (Some((l1, h1)), Some((l2, h2))) => Some((l1.max(l2), h1.max(h2))),
                _ => None,
            },
            ..Growth::UNKNOWN
        },
        BinaryOp::Min => Growth {
            up: a.up.min(c.up),
            lo: a.lo.max(c.lo),
            fall: most(a.fall, c.fall),
            rise: if scalar { both(a.rise, c.rise) } else { None },
            range: match (a.range, c.range) {
                (Some((l1, h1)), Some((l2, h2))) => Some((l1.min(l2), h1.min(h2))),
                _ => None,
            },
            ..Growth::UNKNOWN
        },
        BinaryOp::Gt | BinaryOp::Ge => Growth::bounds(0.0, ZERO),
    }
}

fn add(a: Growth, b: Growth) -> Growth {
    Growth {
        up: a.up.max(b.up),
        lo: a.lo.max(b.lo),
        rise: most(dominates(a.rise, b.lo), dominates(b.rise, a.lo)),
        fall: most(dominates(a.fall, b.up), dominates(b.fall, a.up)),
        // ‖a + b‖ ≥ ‖a‖ − ‖b‖.
        norm: most(dominates(a.norm, b.mag()), dominates(b.norm, a.mag())),
        range: match (a.range, b.range) {
            (Some((l1, h1)), Some((l2, h2))) => {
                let r = (l1 + l2, h1 + h2);
                (r.0.is_finite() && r.1.is_finite()).then_some(r)
            }
            _ => None,
        },
    }
}

fn mul(a: Growth, b: Growth, scalar: bool) -> Growth {
    let up = times(a.up, b.up).max(times(a.lo, b.lo));
    let lo = times(a.up, b.lo).max(times(a.lo, b.up));
    let mut out = Growth {
        up,
        lo,
        ..Growth::UNKNOWN
    };
    if let (Some((l1, h1)), Some((l2, h2))) = (a.range, b.range) {
        let p = [l1 * l2, l1 * h2, h1 * l2, h1 * h2];
        let r = (
            p.iter().copied().fold(f64::INFINITY, f64::min),
            p.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        return Growth::constant(r.0, r.1);
    }
    // A constant factor keeps (or flips) the growth of the other side.
    for (k, v) in [(a, b), (b, a)] {
        let Some((l, h)) = k.range else { continue };
        let uniform = l == h;
        if l > 0.0 {
            out.rise = v.rise.filter(|_| uniform || v.lo <= 0.0);
            out.fall = v.fall.filter(|_| uniform || v.up <= 0.0);
        } else if h < 0.0 {
            out.rise = v.fall.filter(|_| uniform || v.up <= 0.0);
            out.fall = v.rise.filter(|_| uniform || v.lo <= 0.0);
        }
        if l > 0.0 || h < 0.0 {
            out.norm = v.norm;
        }
        return out;
    }
    if scalar && a.mag() < UNKNOWN && b.mag() < UNKNOWN {
        // Two coercive scalars, both bounded on bounded sets: their
        // product is eventually of one sign.
        let s = |x: Option<f64>, y: Option<f64>| Some(x? + y?);
        out.rise = most(s(a.rise, b.rise), s(a.fall, b.fall));
        out.fall = most(s(a.rise, b.fall), s(a.fall, b.rise));
    }
    out
}

/// Matrix products: the generic bound (sums of products), plus the
/// coercive forms: v·v, vᵀAv with A constant and positive definite, and a
/// constant full-rank linear map of a coercive vector.
fn matmul(g: &Graph, id: NodeId, done: &[Growth]) -> Growth {
    let node = g.node(id);
    let (Some(&ia), Some(&ib)) = (node.args.first(), node.args.get(1)) else {
        return Growth::UNKNOWN;
    };
    let (a, b) = (done[ia.index()], done[ib.index()]);
    if a.range.is_some() && b.range.is_some() {
        // A constant product: bounded, its sign not worked out.
        return Growth::BOUNDED;
    }
    let generic = Growth {
        up: times(a.up, b.up).max(times(a.lo, b.lo)),
        lo: times(a.up, b.lo).max(times(a.lo, b.up)),
        ..Growth::UNKNOWN
    };
    let (sa, sb) = (g.shape(ia).to_vec(), g.shape(ib).to_vec());
    // v · v = ‖v‖².
    if sa.len() == 1 && sb.len() == 1 {
        let (va, ka) = scaled(g, ia);
        let (vb, kb) = scaled(g, ib);
        if va == vb && ka * kb != 0.0 {
            return signed(square(done[va.index()]), ka * kb);
        }
        // (u A) · w or u · (A w): a quadratic form.
        if let Some(q) = quadratic(g, ia, ib, done) {
            return q;
        }
    }
    // A constant matrix of full column (row) rank keeps a vector coercive.
    let mut out = generic;
    if sa.len() == 2
        && sb.len() == 1
        && b.norm.is_some()
        && let Some(m) = const_matrix(g, ia)
        && full_column_rank(&m, sa[0], sa[1])
    {
        out.norm = b.norm;
    } else if sa.len() == 1
        && sb.len() == 2
        && a.norm.is_some()
        && let Some(m) = const_matrix(g, ib)
        && full_column_rank(&transpose(&m, sb[0], sb[1]), sb[1], sb[0])
    {
        out.norm = a.norm;
    }
    out
}

/// vᵀAv for `MatMul(MatMul(u, A), w)` or `MatMul(u, MatMul(A, w))` where u
/// and w are nonzero multiples of one vector v and A's symmetric part is
/// positive definite: ≥ λ_min‖v‖² (or ≤ −λ_min‖v‖², by the sign).
fn quadratic(g: &Graph, ia: NodeId, ib: NodeId, done: &[Growth]) -> Option<Growth> {
    let (u, m, w) = match (&g.node(ia).op, &g.node(ib).op) {
        (Op::MatMul, _) if g.shape(g.node(ia).args[0]).len() == 1 => {
            let n = g.node(ia);
            (n.args[0], n.args[1], ib)
        }
        (_, Op::MatMul) if g.shape(g.node(ib).args[1]).len() == 1 => {
            let n = g.node(ib);
            (ia, n.args[0], n.args[1])
        }
        _ => return None,
    };
    let shape = g.shape(m);
    if shape.len() != 2 || shape[0] != shape[1] {
        return None;
    }
    let (vu, ku) = scaled(g, u);
    let (vw, kw) = scaled(g, w);
    if vu != vw || ku * kw == 0.0 {
        return None;
    }
    let a = const_matrix(g, m)?;
    let n = shape[0];
    let sym: Vec<f64> = (0..n * n)
        .map(|i| 0.5 * (a[i] + a[(i % n) * n + i / n]))
        .collect();
    if !positive_definite(&sym, n) {
        return None;
    }
    Some(signed(square(done[vu.index()]), ku * kw))
}

/// ‖v‖² (or a positive definite form of v): nonnegative, coercive when v is.
fn square(v: Growth) -> Growth {
    Growth {
        up: scale(v.mag(), 2.0),
        lo: ZERO,
        rise: v.norm.map(|k| 2.0 * k),
        norm: v.norm.map(|k| 2.0 * k),
        ..Growth::UNKNOWN
    }
}

/// `g` times a nonzero constant of sign `k`.
fn signed(g: Growth, k: f64) -> Growth {
    if k > 0.0 { g } else { g.negated() }
}

/// `id` as k·v with k a constant scalar (k = 1 when it is not a product).
fn scaled(g: &Graph, mut id: NodeId) -> (NodeId, f64) {
    let mut k = 1.0;
    'peel: loop {
        let node = g.node(id);
        if node.op == Op::Unary(UnaryOp::Neg) {
            k = -k;
            id = node.args[0];
            continue;
        }
        if node.op == Op::Binary(BinaryOp::Mul) {
            for (c, v) in [(0, 1), (1, 0)] {
                if let Some(w) = scalar_value(g, node.args[c]) {
                    k *= w;
                    id = node.args[v];
                    continue 'peel;
                }
            }
        }
        return (id, k);
    }
}

/// The value of a scalar literal, possibly broadcast.
fn scalar_value(g: &Graph, mut id: NodeId) -> Option<f64> {
    loop {
        let node = g.node(id);
        match node.op {
            Op::Scalar(v) if v.get().is_finite() => return Some(v.get()),
            Op::Broadcast | Op::Reshape => id = node.args[0],
            _ => return None,
        }
    }
}

/// The row-major values of a constant matrix node (at most
/// [`MAX_FACTOR`]² entries).
fn const_matrix(g: &Graph, id: NodeId) -> Option<Vec<f64>> {
    let node = g.node(id);
    let shape = g.shape(id);
    if shape.len() != 2 || shape[0] > MAX_FACTOR || shape[1] > MAX_FACTOR {
        return None;
    }
    match node.op {
        Op::Const(c) => {
            let t = g.consts().get(c.index())?;
            t.data
                .iter()
                .all(|v| v.is_finite())
                .then(|| t.data.to_vec())
        }
        _ => None,
    }
}

fn transpose(m: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows * cols)
        .map(|i| m[(i % rows) * cols + i / rows])
        .collect()
}

/// Whether the `rows × cols` matrix has rank `cols` (its Gram matrix is
/// positive definite).
fn full_column_rank(m: &[f64], rows: usize, cols: usize) -> bool {
    if rows < cols {
        return false;
    }
    let mut gram = vec![0.0; cols * cols];
    for i in 0..cols {
        for j in 0..cols {
            gram[i * cols + j] = (0..rows).map(|r| m[r * cols + i] * m[r * cols + j]).sum();
        }
    }
    positive_definite(&gram, cols)
}

/// Cholesky with a relative pivot tolerance: false for indefinite or
/// numerically singular matrices.
fn positive_definite(a: &[f64], n: usize) -> bool {
    let scale = (0..n).map(|i| a[i * n + i].abs()).fold(0.0, f64::max);
    if !(scale > 0.0 && scale.is_finite()) {
        return false;
    }
    let tol = scale * 1e-10;
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let d = a[j * n + j] - (0..j).map(|k| l[j * n + k] * l[j * n + k]).sum::<f64>();
        // NaN fails too.
        if d.partial_cmp(&tol) != Some(std::cmp::Ordering::Greater) {
            return false;
        }
        let d = d.sqrt();
        l[j * n + j] = d;
        for i in j + 1..n {
            let s = a[i * n + j] - (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum::<f64>();
            l[i * n + j] = s / d;
        }
    }
    true
}

/// Recognises `Graph::logsumexp`'s shifted log term, log Σ exp(a − max a),
/// which lies in [0, log n]: its node gets `up` 0 and `lo` [`ZERO`].
fn is_shifted_log(g: &Graph, id: NodeId) -> bool {
    let n = g.node(id);
    if n.op != Op::Unary(UnaryOp::Log) {
        return false;
    }
    let s = g.node(n.args[0]);
    let Op::Sum(axes) = s.op else { return false };
    let e = g.node(s.args[0]);
    if e.op != Op::Unary(UnaryOp::Exp) {
        return false;
    }
    let d = g.node(e.args[0]);
    if d.op != Op::Binary(BinaryOp::Sub) {
        return false;
    }
    let (a, mut m) = (d.args[0], d.args[1]);
    while matches!(g.node(m).op, Op::Broadcast | Op::Reshape | Op::StopGradient) {
        m = g.node(m).args[0];
    }
    let mx = g.node(m);
    mx.op == Op::Max(axes) && mx.args[0] == a
}
