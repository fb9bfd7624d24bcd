//! Energies composed in Rust: [`Energy`] is one energy graph with the
//! parameter store it reads, and its operators build exactly the IR the
//! language builds for the same composition (`a & b` is `a and b`, `a | b`
//! is `a or b`, `!a` is `not a`, `w * a` is `w * a`, `a / t` is `a / t`),
//! node for node, so a composition compiled from Rust and the same
//! composition written in a script give bitwise-equal energies, gradients
//! and samples.
//!
//! ```
//! use ebm::api::Program;
//! let p = Program::from_source(
//!     "energy a(x: [2]) = 0.5 * sqnorm(x)\nenergy b(x: [2]) = sum(x)",
//! ).unwrap();
//! let (a, b) = (p.energy_handle("a").unwrap(), p.energy_handle("b").unwrap());
//! let both = &a & &b;                       // energy both(x: [2]) = a(x) and b(x)
//! let tilted = (0.5 * &a) & !&b;            // 0.5 * a(x) and not b(x)
//! let e = both.compiled().unwrap();
//! assert_eq!(e.energy(&[1.0, 2.0], None, 1).unwrap(), vec![5.5]);
//! assert_eq!(tilted.compiled().unwrap().energy(&[1.0, 2.0], None, 1).unwrap(), vec![-1.75]);
//! ```
//!
//! **Precedence.** Rust's `|` < `&` < `*` matches the language's `or` <
//! `and` < `*`, but Rust's `!` binds tighter than `*`: the language's
//! `not 0.5 * b` is `!(0.5 * &b)`. Clippy's `precedence` lint asks for
//! parentheses around `w * a` next to `&`/`|`: `(0.5 * &a) & &b`. Operators
//! take handles by value or by reference (`&a & &b` keeps `a` and `b`).
//! Names follow the language (`(0.5 * a and not b) or a` is named
//! `0.5 * a and not b or a`), so a composition's name reads as the
//! definition body a script would write.
//!
//! **Mistakes are deferred, never panics.** Operators cannot return a
//! `Result`, so an operator whose operands do not fit (different `x` shapes,
//! different conditioning shapes, clashing parameters) returns an `Energy`
//! that holds the error; composing it further keeps the first error, and
//! [`Energy::compile`] (or [`Energy::check`], [`Energy::graph`]) returns
//! it. The `try_and`, `try_or`, `try_scale`, `try_temperature` methods
//! report it at once instead.
//!
//! **Conditioning.** Operands must take `x` of one shape; a conditional
//! operand may be composed with an unconditional one (as in
//! `energy e(x: [2] | c: [4]) = a(x | c) and b(x)`), and the result is
//! conditional; two conditional operands must take `c` of one shape.
//!
//! **Parameters.** Operands that read one store (`Arc::ptr_eq`: handles of
//! one program or one model file, and compositions of them) give a handle
//! reading that same store, so parameter updates reach it. Operands reading
//! different stores give a handle with a store of its own, holding copies
//! of the values the operands read when composed (later updates of the
//! operands' stores do not reach it). A parameter name read from both
//! stores is one parameter when shape and values agree bit for bit (one
//! model file loaded twice); otherwise the composition is refused with
//! [`EnergyError::ParamClash`] — nothing is renamed behind the caller's
//! back — and [`Energy::with_param_prefix`] renames one side's parameters
//! explicitly.

use std::fmt;
use std::sync::Arc;

use crate::backend::cpu::Cpu;
use crate::backend::{Backend, DType};
use crate::ir::{self, BatchReduce, BinaryOp, Graph, InputKind, NodeId, Shape};
use crate::runtime::{self, CompiledEnergy, ParamStore};

/// Why an energy handle cannot be made, composed or compiled.
#[derive(Clone, Debug, PartialEq)]
pub enum EnergyError {
    /// The graph is not an energy definition (one scalar per-sample output
    /// `energy`, sample inputs `x` and optionally `c`, every parameter in
    /// the store with its shape).
    NotAnEnergy { name: String, reason: String },
    /// The operands of `op` take `x` of different shapes.
    XShape {
        op: &'static str,
        left: String,
        left_shape: Shape,
        right: String,
        right_shape: Shape,
    },
    /// The operands of `op` take conditioning inputs of different shapes.
    CondShape {
        op: &'static str,
        left: String,
        left_shape: Shape,
        right: String,
        right_shape: Shape,
    },
    /// The operands read different stores that both hold `param`, with
    /// different shapes or values.
    ParamClash {
        op: &'static str,
        left: String,
        right: String,
        param: String,
    },
    /// A weight or temperature that is not a finite number (temperatures
    /// must also be positive).
    BadNumber { what: &'static str, value: f64 },
    /// The backend refused the graph (an unsupported dtype, ...).
    Compile { name: String, message: String },
}

impl fmt::Display for EnergyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnergyError::NotAnEnergy { name, reason } => {
                write!(f, "`{name}` is not an energy: {reason}")
            }
            EnergyError::XShape {
                op,
                left,
                left_shape,
                right,
                right_shape,
            } => write!(
                f,
                "cannot compose `{left}` {op} `{right}`: `{left}` takes x of shape {left_shape:?}, `{right}` takes x of shape {right_shape:?}"
            ),
            EnergyError::CondShape {
                op,
                left,
                left_shape,
                right,
                right_shape,
            } => write!(
                f,
                "cannot compose `{left}` {op} `{right}`: `{left}` takes a conditioning input of shape {left_shape:?}, `{right}` one of shape {right_shape:?}"
            ),
            EnergyError::ParamClash {
                op,
                left,
                right,
                param,
            } => write!(
                f,
                "cannot compose `{left}` {op} `{right}`: they read different parameter stores that both hold `{param}`, with different shapes or values; rename one side's parameters first (`.with_param_prefix(\"b.\")`)"
            ),
            EnergyError::BadNumber { what, value } => {
                write!(f, "{what} must be a finite number, found {value}")
            }
            EnergyError::Compile { name, message } => {
                write!(f, "cannot compile `{name}`: {message}")
            }
        }
    }
}

impl std::error::Error for EnergyError {}

/// One energy: a graph (sample inputs `x` and optionally `c`, parameters
/// by full name, one scalar output `energy`) and the parameter store it
/// reads. Cheap to clone (shared, immutable). See the module docs for the
/// operators, deferred errors and parameter stores.
#[derive(Clone)]
pub struct Energy {
    inner: Result<Arc<Parts>, EnergyError>,
}

struct Parts {
    graph: Graph,
    store: Arc<ParamStore>,
    x: Shape,
    cond: Option<Shape>,
    /// The precedence level of the name as an expression of the language
    /// (`or` 1, `and` 2, `not` 3, `*` `/` 6, a name 9), for parentheses.
    prec: u8,
}

const ATOM: u8 = 9;

impl fmt::Debug for Energy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Ok(p) => f
                .debug_struct("Energy")
                .field("name", &p.graph.name)
                .field("x", &p.x)
                .field("cond", &p.cond)
                .field("params", &param_names(&p.graph))
                .finish(),
            Err(e) => f.debug_tuple("Energy").field(e).finish(),
        }
    }
}

fn param_names(g: &Graph) -> Vec<String> {
    g.inputs()
        .iter()
        .filter(|d| d.kind == InputKind::Shared)
        .map(|d| d.name.clone())
        .collect()
}

impl Energy {
    /// A handle on a lowered energy graph (`lower::lower`, a model file's
    /// definition, `CompiledEnergy::energy_graph`) and the store its
    /// parameters are read from.
    pub fn from_graph(graph: Graph, store: Arc<ParamStore>) -> Result<Energy, EnergyError> {
        let parts = validate(graph, store, ATOM)?;
        Ok(Energy {
            inner: Ok(Arc::new(parts)),
        })
    }

    /// The graph and store of a compiled energy, as a handle.
    pub fn from_compiled(energy: &CompiledEnergy) -> Result<Energy, EnergyError> {
        Energy::from_graph(energy.energy_graph().clone(), energy.store().clone())
    }

    fn parts(&self) -> Result<&Parts, EnergyError> {
        self.inner.as_deref().map_err(Clone::clone)
    }

    /// The handle's name: the definition's, or the composition written in
    /// the language (`a and not b`).
    pub fn name(&self) -> &str {
        match &self.inner {
            Ok(p) => &p.graph.name,
            Err(_) => "<invalid energy>",
        }
    }

    /// The same energy under another name (the graph's name).
    pub fn named(&self, name: &str) -> Energy {
        self.map(|p| {
            let mut graph = p.graph.clone();
            graph.name = name.to_string();
            Ok(Parts {
                graph,
                store: p.store.clone(),
                x: p.x.clone(),
                cond: p.cond.clone(),
                prec: ATOM,
            })
        })
    }

    /// `Ok` when the handle is usable; otherwise the first mistake made
    /// while composing it.
    pub fn check(&self) -> Result<(), EnergyError> {
        self.parts().map(|_| ())
    }

    /// The deferred error, if an operator recorded one.
    pub fn error(&self) -> Option<&EnergyError> {
        self.inner.as_ref().err()
    }

    /// The energy graph.
    pub fn graph(&self) -> Result<&Graph, EnergyError> {
        self.parts().map(|p| &p.graph)
    }

    /// The parameter store the graph reads.
    pub fn params(&self) -> Result<&Arc<ParamStore>, EnergyError> {
        self.parts().map(|p| &p.store)
    }

    /// The full names of the parameters the graph reads, in input order.
    pub fn param_names(&self) -> Result<Vec<String>, EnergyError> {
        self.parts().map(|p| param_names(&p.graph))
    }

    /// The shape of one point `x`.
    pub fn x_shape(&self) -> Result<&[usize], EnergyError> {
        self.parts().map(|p| &p.x[..])
    }

    /// The shape of the conditioning input, for a conditional energy.
    pub fn cond_shape(&self) -> Result<Option<&[usize]>, EnergyError> {
        self.parts().map(|p| p.cond.as_deref())
    }

    /// Compiles for a backend (`backend::cpu::Cpu`, `backend::Interp`) and dtype.
    pub fn compile(
        &self,
        backend: Arc<dyn Backend>,
        dtype: DType,
    ) -> Result<CompiledEnergy, EnergyError> {
        let p = self.parts()?;
        CompiledEnergy::in_store(p.graph.clone(), p.store.clone(), backend, dtype).map_err(|e| {
            EnergyError::Compile {
                name: p.graph.name.clone(),
                message: e.to_string(),
            }
        })
    }

    /// Compiles with the Cranelift JIT in f64.
    pub fn compiled(&self) -> Result<CompiledEnergy, EnergyError> {
        self.compile(Arc::new(Cpu::new()), DType::F64)
    }

    /// The same energy with every parameter renamed `prefix` + name, in a
    /// store of its own holding copies of the current values: what makes
    /// two models with the same parameter names (two model files of one
    /// architecture) composable.
    pub fn with_param_prefix(&self, prefix: &str) -> Energy {
        self.map(|p| {
            let store = Arc::new(ParamStore::new());
            let mut g = Graph::new(p.graph.name.clone());
            let x = g.input_node("x", p.x.clone(), InputKind::Sample);
            let c = p
                .cond
                .as_ref()
                .map(|s| g.input_node("c", s.clone(), InputKind::Sample));
            let mut missing = None;
            let outs = ir::inline(&mut g, &p.graph, |g, d| match (d.kind, d.name.as_str()) {
                (InputKind::Sample, "x") => x,
                // invariant: `validate` accepted only `x` and `c` as sample inputs, `c` iff `cond`.
                (InputKind::Sample, _) => c.expect("validated: c is declared"),
                (InputKind::Shared, name) => {
                    let renamed = format!("{prefix}{name}");
                    let value = p.store.get(name).unwrap_or_default();
                    if let Err(e) = store.insert(&renamed, &d.shape, value) {
                        missing.get_or_insert(e.to_string());
                    }
                    g.input_node(renamed, d.shape.clone(), InputKind::Shared)
                }
            });
            if let Some(reason) = missing {
                return Err(EnergyError::NotAnEnergy {
                    name: p.graph.name.clone(),
                    reason,
                });
            }
            g.add_output("energy", outs[0], BatchReduce::PerSample);
            validate(g, store, p.prec)
        })
    }

    /// Applies `f` to a valid handle; an invalid one stays as it is.
    fn map(&self, f: impl FnOnce(&Parts) -> Result<Parts, EnergyError>) -> Energy {
        Energy {
            inner: self
                .inner
                .as_deref()
                .map_err(Clone::clone)
                .and_then(f)
                .map(Arc::new),
        }
    }

    /// `self & other`, reporting a mistake at once.
    pub fn try_and(&self, other: &Energy) -> Result<Energy, EnergyError> {
        (self & other).into_result()
    }

    /// `self | other`, reporting a mistake at once.
    pub fn try_or(&self, other: &Energy) -> Result<Energy, EnergyError> {
        (self | other).into_result()
    }

    /// `w * self`, refusing a weight that is not finite.
    pub fn try_scale(&self, w: f64) -> Result<Energy, EnergyError> {
        if !w.is_finite() {
            return Err(EnergyError::BadNumber {
                what: "a weight",
                value: w,
            });
        }
        (w * self).into_result()
    }

    /// E / T, as the language writes it (`a(x) / T`): the density at
    /// temperature T. T must be positive and finite.
    pub fn temperature(&self, t: f64) -> Energy {
        if !(t.is_finite() && t > 0.0) {
            return Energy {
                inner: Err(self.error().cloned().unwrap_or(EnergyError::BadNumber {
                    what: "a temperature (positive)",
                    value: t,
                })),
            };
        }
        self / t
    }

    /// [`Energy::temperature`], reporting a mistake at once.
    pub fn try_temperature(&self, t: f64) -> Result<Energy, EnergyError> {
        self.temperature(t).into_result()
    }

    fn into_result(self) -> Result<Energy, EnergyError> {
        match self.inner {
            Ok(_) => Ok(self),
            Err(e) => Err(e),
        }
    }

    /// The language's `a and b`: E_a + E_b.
    fn and_energy(&self, other: &Energy) -> Energy {
        binary(self, other, ("and", 2), |b, l, r| {
            let l = b.inline(l);
            let r = b.inline(r);
            b.g.binary_bcast(BinaryOp::Add, l, r)
        })
    }

    /// The language's `a or b`: sema's `Neg(LogSumExpN([Neg a, Neg b]))`,
    /// lowered as each part reshaped to [1], concatenated, log-sum-exp.
    fn or_energy(&self, other: &Energy) -> Energy {
        binary(self, other, ("or", 1), |b, l, r| {
            let l = b.inline(l);
            let l = b.g.neg(l);
            let l = b.g.reshape(l, &[1]);
            let r = b.inline(r);
            let r = b.g.neg(r);
            let r = b.g.reshape(r, &[1]);
            let v = b.g.concat(vec![l, r], 0);
            let lse = b.g.logsumexp(v, ir::Axes::all(1));
            b.g.neg(lse)
        })
    }

    /// The language's `not a`: −E_a.
    fn negated(&self) -> Energy {
        unary(
            self,
            |p| (format!("not {}", operand(p, 3)), 3),
            |b, e| {
                let e = b.inline(e);
                b.g.neg(e)
            },
        )
    }

    /// The language's `w * a` (the constant on the left).
    fn scaled(&self, w: f64) -> Energy {
        let w_name = crate::diag::shortest(w);
        unary(
            self,
            |p| (format!("{w_name} * {}", operand(p, 7)), 6),
            |b, e| {
                let s = b.g.scalar(w);
                let e = b.inline(e);
                b.g.binary_bcast(BinaryOp::Mul, s, e)
            },
        )
    }

    /// The language's `a * w` (the constant on the right).
    fn scaled_right(&self, w: f64) -> Energy {
        let w_name = crate::diag::shortest(w);
        unary(
            self,
            |p| (format!("{} * {w_name}", operand(p, 6)), 6),
            |b, e| {
                let e = b.inline(e);
                let s = b.g.scalar(w);
                b.g.binary_bcast(BinaryOp::Mul, e, s)
            },
        )
    }

    /// The language's `a / t`.
    fn divided(&self, t: f64) -> Energy {
        let t_name = crate::diag::shortest(t);
        unary(
            self,
            |p| (format!("{} / {t_name}", operand(p, 6)), 6),
            |b, e| {
                let e = b.inline(e);
                let s = b.g.scalar(t);
                b.g.binary_bcast(BinaryOp::Div, e, s)
            },
        )
    }
}

/// A handle's name as an operand that needs precedence level `min` at
/// least: parenthesised when it is a looser composition.
fn operand(p: &Parts, min: u8) -> String {
    if p.prec < min {
        format!("({})", p.graph.name)
    } else {
        p.graph.name.clone()
    }
}

/// Checks that `graph` is an energy reading `store`, and records its shapes.
fn validate(graph: Graph, store: Arc<ParamStore>, prec: u8) -> Result<Parts, EnergyError> {
    let fail = |reason: String| EnergyError::NotAnEnergy {
        name: graph.name.clone(),
        reason,
    };
    ir::verify::verify(&graph).map_err(|e| fail(format!("malformed graph: {e}")))?;
    match &graph.outputs[..] {
        [o] if o.name == "energy"
            && o.reduce == BatchReduce::PerSample
            && graph.shape(o.node).is_empty() => {}
        _ => {
            return Err(fail(
                "expected one scalar per-sample output `energy` (a model is not an energy)".into(),
            ));
        }
    }
    let mut x = None;
    let mut cond = None;
    for d in graph.inputs() {
        match (d.kind, d.name.as_str()) {
            (InputKind::Sample, "x") => x = Some(d.shape.clone()),
            (InputKind::Sample, "c") => cond = Some(d.shape.clone()),
            (InputKind::Sample, other) => {
                return Err(fail(format!("unexpected sample input `{other}`")));
            }
            (InputKind::Shared, _) => {}
        }
    }
    let x = x.ok_or_else(|| fail("it has no input `x`".into()))?;
    runtime::bind_roles(&graph, &store).map_err(|e| fail(e.to_string()))?;
    Ok(Parts {
        graph,
        store,
        x,
        cond,
        prec,
    })
}

/// A graph under construction: `x` (and `c`) declared first, as `lower`
/// declares them, then the operands inlined in the order the language
/// lowers them.
struct Builder {
    g: Graph,
    x: NodeId,
    c: Option<NodeId>,
}

impl Builder {
    fn new(name: String, x: &Shape, cond: Option<&Shape>) -> Builder {
        let mut g = Graph::new(name);
        let x = g.input_node("x", x.clone(), InputKind::Sample);
        let c = cond.map(|s| g.input_node("c", s.clone(), InputKind::Sample));
        Builder { g, x, c }
    }

    /// Inlines an operand, as `lower` inlines a call `a(x | c)`: its `x`
    /// and `c` bound to ours, its parameters to ours of the same name.
    fn inline(&mut self, p: &Parts) -> NodeId {
        let (x, c) = (self.x, self.c);
        let outs = ir::inline(&mut self.g, &p.graph, |g, d| {
            match (d.kind, d.name.as_str()) {
                (InputKind::Sample, "x") => x,
                // invariant: `validate` accepted only `x` and `c` as sample inputs, and a
                // composition of a conditional operand declares `c`.
                (InputKind::Sample, _) => c.expect("validated: c is declared"),
                (InputKind::Shared, _) => g.input_node(d.name.clone(), d.shape.clone(), d.kind),
            }
        });
        outs[0]
    }

    fn finish(
        mut self,
        out: NodeId,
        store: Arc<ParamStore>,
        prec: u8,
    ) -> Result<Parts, EnergyError> {
        self.g.add_output("energy", out, BatchReduce::PerSample);
        validate(self.g, store, prec)
    }
}

/// A composition of one operand; `name` gives its name and precedence.
fn unary(
    e: &Energy,
    name: impl FnOnce(&Parts) -> (String, u8),
    f: impl FnOnce(&mut Builder, &Parts) -> NodeId,
) -> Energy {
    e.map(|p| {
        let (name, prec) = name(p);
        let mut b = Builder::new(name, &p.x, p.cond.as_ref());
        let out = f(&mut b, p);
        b.finish(out, p.store.clone(), prec)
    })
}

fn binary(
    l: &Energy,
    r: &Energy,
    (op, prec): (&'static str, u8),
    f: impl FnOnce(&mut Builder, &Parts, &Parts) -> NodeId,
) -> Energy {
    let go = || -> Result<Parts, EnergyError> {
        let (lp, rp) = (l.parts()?, r.parts()?);
        let (ln, rn) = (lp.graph.name.clone(), rp.graph.name.clone());
        if lp.x != rp.x {
            return Err(EnergyError::XShape {
                op,
                left: ln,
                left_shape: lp.x.clone(),
                right: rn,
                right_shape: rp.x.clone(),
            });
        }
        let cond = match (&lp.cond, &rp.cond) {
            (Some(a), Some(b)) if a != b => {
                return Err(EnergyError::CondShape {
                    op,
                    left: ln,
                    left_shape: a.clone(),
                    right: rn,
                    right_shape: b.clone(),
                });
            }
            (a, b) => a.as_ref().or(b.as_ref()),
        };
        let store = merged_store(lp, rp, op)?;
        // Left-associative: the right operand binds tighter.
        let name = format!("{} {op} {}", operand(lp, prec), operand(rp, prec + 1));
        let mut b = Builder::new(name, &lp.x, cond);
        let out = f(&mut b, lp, rp);
        b.finish(out, store, prec)
    };
    Energy {
        inner: go().map(Arc::new),
    }
}

/// The operands' store when they share one; otherwise a new store with
/// copies of the parameters each reads (see the module docs).
fn merged_store(l: &Parts, r: &Parts, op: &'static str) -> Result<Arc<ParamStore>, EnergyError> {
    if Arc::ptr_eq(&l.store, &r.store) {
        return Ok(l.store.clone());
    }
    let store = ParamStore::new();
    let clash = |param: &str| EnergyError::ParamClash {
        op,
        left: l.graph.name.clone(),
        right: r.graph.name.clone(),
        param: param.to_string(),
    };
    for p in [l, r] {
        for d in p
            .graph
            .inputs()
            .iter()
            .filter(|d| d.kind == InputKind::Shared)
        {
            // invariant: `validate` bound every parameter of the graph to its store.
            let value = p.store.get(&d.name).unwrap_or_default();
            match store.id(&d.name).and_then(|id| store.entry(id)) {
                None => {
                    store
                        .insert(&d.name, &d.shape, value)
                        .map_err(|_| clash(&d.name))?;
                }
                Some(have) => {
                    let same = have.shape == d.shape
                        && have.value.len() == value.len()
                        && have
                            .value
                            .iter()
                            .zip(&value)
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                    if !same {
                        return Err(clash(&d.name));
                    }
                }
            }
        }
    }
    Ok(Arc::new(store))
}

// ----- operators: `&` and, `|` or, `!`/`-` not, `w *`, `* w`, `/ t` -----

macro_rules! binary_ops {
    ($($l:ty, $r:ty);* $(;)?) => {$(
        /// `a & b` is the language's `a and b` (E_a + E_b, a product of experts).
        impl std::ops::BitAnd<$r> for $l {
            type Output = Energy;
            fn bitand(self, other: $r) -> Energy {
                Energy::and_energy(&self, &other)
            }
        }
        /// `a | b` is the language's `a or b` (−logsumexp(−E_a, −E_b), a mixture).
        impl std::ops::BitOr<$r> for $l {
            type Output = Energy;
            fn bitor(self, other: $r) -> Energy {
                Energy::or_energy(&self, &other)
            }
        }
    )*};
}

binary_ops! {
    Energy, Energy;
    Energy, &Energy;
    &Energy, Energy;
    &Energy, &Energy;
}

macro_rules! unary_ops {
    ($($t:ty),*) => {$(
        /// `!a` is the language's `not a` (−E_a).
        impl std::ops::Not for $t {
            type Output = Energy;
            fn not(self) -> Energy {
                Energy::negated(&self)
            }
        }
        /// `-a` is the language's `-a(x)`: the same graph as `!a`.
        impl std::ops::Neg for $t {
            type Output = Energy;
            fn neg(self) -> Energy {
                Energy::negated(&self)
            }
        }
        /// `w * a` is the language's `w * a` (the constant on the left).
        impl std::ops::Mul<$t> for f64 {
            type Output = Energy;
            fn mul(self, e: $t) -> Energy {
                Energy::scaled(&e, self)
            }
        }
        /// `a * w` is the language's `a(x) * w` (the constant on the right).
        impl std::ops::Mul<f64> for $t {
            type Output = Energy;
            fn mul(self, w: f64) -> Energy {
                Energy::scaled_right(&self, w)
            }
        }
        /// `a / t` is the language's `a(x) / t`.
        impl std::ops::Div<f64> for $t {
            type Output = Energy;
            fn div(self, t: f64) -> Energy {
                Energy::divided(&self, t)
            }
        }
    )*};
}

unary_ops!(Energy, &Energy);
