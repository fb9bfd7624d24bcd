//! The closed set of IR operations and their shape rules. Every op is
//! per-sample: the batch axis is never visible here. Operands of elementwise
//! ops always have identical shapes — **the IR never holds an implicit
//! broadcast**; `Broadcast` makes every expansion explicit.

use std::fmt;
use std::ops::{Add, Div, Mul, Neg, Sub};

use super::{BodyId, ConstId, InputId};

/// Largest supported tensor rank (axis sets and permutations are fixed-size).
pub const MAX_RANK: usize = 8;

pub type Shape = Vec<usize>;

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// An f64 compared and hashed by its bits, so ops holding constants can be hash-consed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct F64(u64);

impl F64 {
    pub fn new(v: f64) -> F64 {
        // One NaN and one zero per sign keep hash-consing predictable.
        F64(if v.is_nan() {
            f64::NAN.to_bits()
        } else {
            v.to_bits()
        })
    }
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl fmt::Debug for F64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// A set of axes, as a bitmask.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Axes(pub u8);

impl Axes {
    pub fn all(rank: usize) -> Axes {
        Axes(((1u16 << rank) - 1) as u8)
    }
    pub fn of(axes: &[usize]) -> Axes {
        Axes(axes.iter().fold(0u8, |m, &a| m | (1 << a)))
    }
    pub fn contains(self, axis: usize) -> bool {
        self.0 & (1 << axis) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_RANK).filter(move |&a| self.contains(a))
    }
}

/// A permutation of axes: output axis `i` is input axis `perm[i]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Perm {
    len: u8,
    axes: [u8; MAX_RANK],
}

impl Perm {
    pub fn new(perm: &[usize]) -> Perm {
        let mut axes = [0u8; MAX_RANK];
        for (slot, &a) in axes.iter_mut().zip(perm) {
            *slot = a as u8;
        }
        Perm {
            len: perm.len() as u8,
            axes,
        }
    }
    pub fn as_vec(&self) -> Vec<usize> {
        self.axes[..self.len as usize]
            .iter()
            .map(|&a| a as usize)
            .collect()
    }
    pub fn inverse(&self) -> Perm {
        let p = self.as_vec();
        let mut inv = vec![0; p.len()];
        for (i, &a) in p.iter().enumerate() {
            inv[a] = i;
        }
        Perm::new(&inv)
    }
    pub fn is_identity(&self) -> bool {
        self.as_vec().iter().enumerate().all(|(i, &a)| i == a)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Log1p,
    Sqrt,
    Abs,
    /// −1, 0 or 1; derivative is structurally zero.
    Sign,
    /// 1 where x > 0, else 0; derivative is structurally zero.
    Step,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Softplus,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// a^b for tensors; `PowConst` is the common constant-exponent case.
    Pow,
    Max,
    Min,
    /// 1.0 where a > b, else 0.0; derivative is structurally zero.
    Gt,
    /// 1.0 where a >= b, else 0.0; derivative is structurally zero.
    Ge,
}

/// One IR operation. Result shapes live in the node, not the op, so `Broadcast`
/// and `Reshape` take their target from the node's shape.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    /// A scalar literal, shape `[]`.
    Scalar(F64),
    /// A constant tensor from the graph's pool.
    Const(ConstId),
    Input(InputId),
    Unary(UnaryOp),
    /// x^c with a constant exponent.
    PowConst(F64),
    Binary(BinaryOp),
    /// `select(c, a, b)`: a where c != 0, else b. All three have the same shape.
    Select,
    /// NumPy broadcast of the operand (right-aligned) to the node's shape.
    Broadcast,
    /// Sum over the given axes (removed from the shape).
    Sum(Axes),
    /// Maximum over the given axes (removed from the shape).
    Max(Axes),
    /// Row-major reshape to the node's shape.
    Reshape,
    Transpose(Perm),
    /// Elements `start, start + step, ..` along `axis`, as many as the
    /// node's shape says (`step` ≥ 1; 1 is a contiguous range).
    Slice {
        axis: u8,
        start: u32,
        step: u32,
    },
    /// Concatenation of all operands along `axis`.
    Concat {
        axis: u8,
    },
    /// Matrix product of rank-1/2 operands, as NumPy's `@`.
    MatMul,
    /// Identity forward; derivative structurally zero.
    StopGradient,
    /// A loop over the leading axis of `seqs` sequences with a carried
    /// state, its step the graph `body` of the pool (`ir::scan`).
    /// Operands: the initial carry, the sequences, the captured values.
    Scan {
        body: BodyId,
        seqs: u8,
        reverse: bool,
    },
}

impl Op {
    pub fn name(&self) -> String {
        match self {
            Op::Scalar(v) => format!("scalar {:?}", v),
            Op::Const(c) => format!("const {c}"),
            Op::Input(i) => format!("input {i}"),
            Op::Unary(u) => format!("{u:?}").to_lowercase(),
            Op::PowConst(c) => format!("powc {:?}", c),
            Op::Binary(b) => format!("{b:?}").to_lowercase(),
            Op::Select => "select".into(),
            Op::Broadcast => "broadcast".into(),
            Op::Sum(a) => format!("sum{:?}", a.iter().collect::<Vec<_>>()),
            Op::Max(a) => format!("max{:?}", a.iter().collect::<Vec<_>>()),
            Op::Reshape => "reshape".into(),
            Op::Transpose(p) => format!("transpose{:?}", p.as_vec()),
            Op::Slice {
                axis,
                start,
                step: 1,
            } => format!("slice axis={axis} start={start}"),
            Op::Slice { axis, start, step } => {
                format!("slice axis={axis} start={start} step={step}")
            }
            Op::Scan {
                body,
                seqs,
                reverse,
            } => format!(
                "scan{} {body} seqs={seqs}",
                if *reverse { " reverse" } else { "" }
            ),
            Op::Concat { axis } => format!("concat axis={axis}"),
            Op::MatMul => "matmul".into(),
            Op::StopGradient => "stop_gradient".into(),
        }
    }

    /// Whether this op maps elements one-to-one (useful for fusion).
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::PowConst(_) | Op::Binary(_) | Op::Select | Op::StopGradient
        )
    }
}

// ----- Op semantics: the specification every backend implements -----
//
// The functions below are the value semantics of the elementwise ops and of
// the `Max` reduction, written once, generic over f32 and f64. The reference
// interpreter calls them; compiled backends implement the same functions
// (faster, with the documented approximation bounds of `docs/backend-cpu.md`)
// and must agree *exactly* on every row of `SPECIAL_CASES`, which
// `tests/op_semantics.rs` checks on every backend, dtype and code path.
// The prose version, with the reasons, is `docs/op-semantics.md`.

/// A float type the ops are defined over (`f32` and `f64`).
pub trait Float:
    Copy
    + PartialOrd
    + fmt::Debug
    + Neg<Output = Self>
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
{
    /// `v` rounded to this type.
    fn lit(v: f64) -> Self;
    fn is_nan(self) -> bool;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tanh(self) -> Self;
    fn powf(self, y: Self) -> Self;
    /// Bitwise AND of the representations (+0 from ±0 with opposite signs).
    fn and_bits(self, o: Self) -> Self;
    /// Bitwise OR of the representations (−0 from ±0 with opposite signs).
    fn or_bits(self, o: Self) -> Self;
}

macro_rules! impl_float {
    ($t:ty) => {
        impl Float for $t {
            fn lit(v: f64) -> $t {
                v as $t
            }
            fn is_nan(self) -> bool {
                self.is_nan()
            }
            fn exp(self) -> $t {
                self.exp()
            }
            fn ln(self) -> $t {
                self.ln()
            }
            fn ln_1p(self) -> $t {
                self.ln_1p()
            }
            fn sqrt(self) -> $t {
                self.sqrt()
            }
            fn abs(self) -> $t {
                self.abs()
            }
            fn sin(self) -> $t {
                self.sin()
            }
            fn cos(self) -> $t {
                self.cos()
            }
            fn tanh(self) -> $t {
                self.tanh()
            }
            fn powf(self, y: $t) -> $t {
                self.powf(y)
            }
            fn and_bits(self, o: $t) -> $t {
                <$t>::from_bits(self.to_bits() & o.to_bits())
            }
            fn or_bits(self, o: $t) -> $t {
                <$t>::from_bits(self.to_bits() | o.to_bits())
            }
        }
    };
}

impl_float!(f64);
impl_float!(f32);

impl UnaryOp {
    /// The op on one value (the reference semantics).
    pub fn eval<T: Float>(self, x: T) -> T {
        let zero = T::lit(0.0);
        let one = T::lit(1.0);
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Log1p => x.ln_1p(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => {
                if x > zero {
                    one
                } else if x < zero {
                    -one
                } else {
                    // ±0 keeps its sign, NaN stays NaN (not Rust's `signum`).
                    x
                }
            }
            UnaryOp::Step => {
                if x > zero {
                    one
                } else {
                    zero
                }
            }
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => {
                // Split by sign so exp never overflows.
                if x >= zero {
                    one / (one + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (one + e)
                }
            }
            UnaryOp::Softplus => max_number(x, zero) + (-x.abs()).exp().ln_1p(),
        }
    }
}

impl BinaryOp {
    /// The op on one pair of values (the reference semantics).
    pub fn eval<T: Float>(self, a: T, b: T) -> T {
        let flag = |c: bool| T::lit(if c { 1.0 } else { 0.0 });
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Max => max_number(a, b),
            BinaryOp::Min => min_number(a, b),
            BinaryOp::Gt => flag(a > b),
            BinaryOp::Ge => flag(a >= b),
        }
    }
}

/// IEEE 754-2019 `maximumNumber`: a NaN operand loses to a number (as Rust's
/// `f64::max`), and −0 < +0, so the result never depends on operand order
/// (up to NaN payloads) and a `Max` reduction is order-independent.
pub fn max_number<T: Float>(a: T, b: T) -> T {
    if a > b || b.is_nan() {
        a
    } else if a == b {
        a.and_bits(b)
    } else {
        b
    }
}

/// IEEE 754-2019 `minimumNumber`: a NaN operand loses, −0 < +0.
pub fn min_number<T: Float>(a: T, b: T) -> T {
    if a < b || b.is_nan() {
        a
    } else if a == b {
        a.or_bits(b)
    } else {
        b
    }
}

/// `PowConst(c)`: IEEE `pow(x, c)` with `c` first rounded to the dtype. The
/// exponents 2, 1 and −1 are `x·x`, `x` and `1/x`: each is exactly what a
/// correctly rounded `pow` returns, special values included, so backends
/// may (and the CPU backend does) emit them without a libm call.
pub fn pow_const<T: Float>(x: T, c: T) -> T {
    if c == T::lit(2.0) {
        x * x
    } else if c == T::lit(1.0) {
        x
    } else if c == T::lit(-1.0) {
        T::lit(1.0) / x
    } else {
        x.powf(c)
    }
}

/// `Select(c, a, b)`: `a` where `c != 0` (so a NaN condition picks `a`,
/// a −0 condition picks `b`), else `b`; `a`/`b` pass through bit-exactly.
pub fn select<T: Float>(c: T, a: T, b: T) -> T {
    if c != T::lit(0.0) { a } else { b }
}

/// The identity `Max(axes)` folds `max_number` from: NaN elements are skipped
/// and an all-NaN reduction gives −inf.
pub const MAX_IDENTITY: f64 = f64::NEG_INFINITY;

/// What a row of `SPECIAL_CASES` exercises.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum SemOp {
    /// `Op::Unary`, inputs `[x]`.
    Unary(UnaryOp),
    /// `Op::Binary`, inputs `[a, b]`.
    Binary(BinaryOp),
    /// `Op::PowConst(c)`, inputs `[x]`.
    PowConst(f64),
    /// `Op::Select`, inputs `[c, a, b]`.
    Select,
    /// `Op::Max` reducing a vector holding all the inputs to a scalar.
    ReduceMax,
    /// The language's run-time index `t[i]` as `sema` lowers it (there is
    /// no gather op): Σₖ t[k]·Ge(k, i)·Ge(i, k). Inputs `[i, t₀, t₁, …]`.
    DynIndex,
}

/// The promised result of a row.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Expect {
    /// Exactly this value, compared by bits (the sign of zero matters); in
    /// f32 the value rounded to f32.
    Exact(f64),
    /// Some NaN (payloads are not specified).
    Nan,
    /// Within the documented accuracy of the backend's approximations
    /// (a few ulp): results that are not special values.
    Approx(f64),
}

/// One special-value case of the op semantics. f32 runs round the inputs and
/// the expectation to f32; every row means the same in both dtypes.
#[derive(Clone, Copy, Debug)]
pub struct SpecialCase {
    pub op: SemOp,
    pub inputs: &'static [f64],
    pub expect: Expect,
    pub why: &'static str,
}

impl SemOp {
    /// The reference result for `inputs` (what the interpreter computes).
    pub fn eval<T: Float>(self, inputs: &[T]) -> T {
        match self {
            SemOp::Unary(u) => u.eval(inputs[0]),
            SemOp::Binary(b) => b.eval(inputs[0], inputs[1]),
            SemOp::PowConst(c) => pow_const(inputs[0], T::lit(c)),
            SemOp::Select => select(inputs[0], inputs[1], inputs[2]),
            SemOp::ReduceMax => inputs
                .iter()
                .fold(T::lit(MAX_IDENTITY), |m, &x| max_number(m, x)),
            SemOp::DynIndex => {
                let i = inputs[0];
                inputs[1..]
                    .iter()
                    .enumerate()
                    .fold(T::lit(0.0), |acc, (k, &t)| {
                        let k = T::lit(k as f64);
                        let m = BinaryOp::Ge.eval(k, i) * BinaryOp::Ge.eval(i, k);
                        acc + t * m
                    })
            }
        }
    }
}

const INF: f64 = f64::INFINITY;
const NAN: f64 = f64::NAN;

macro_rules! case {
    ($op:expr, [$($x:expr),*], $e:expr, $why:literal) => {
        SpecialCase { op: $op, inputs: &[$($x),*], expect: $e, why: $why }
    };
}

/// The special values every backend must reproduce, in every dtype and on
/// every code path. `docs/op-semantics.md` is the same table in prose.
#[rustfmt::skip]
pub const SPECIAL_CASES: &[SpecialCase] = {
    use BinaryOp as B;
    use Expect::{Approx, Exact, Nan};
    use SemOp::{Binary as Bin, DynIndex, PowConst as PowC, ReduceMax, Select as Sel, Unary as Un};
    use UnaryOp as U;
    &[
    // Max / Min: IEEE 754-2019 maximumNumber / minimumNumber.
    case!(Bin(B::Max), [NAN, 1.0], Exact(1.0), "a NaN operand loses to a number (Rust's f64::max)"),
    case!(Bin(B::Max), [1.0, NAN], Exact(1.0), "either operand order"),
    case!(Bin(B::Max), [NAN, NAN], Nan, "NaN only when both are NaN"),
    case!(Bin(B::Max), [-INF, NAN], Exact(-INF), "even −inf beats NaN"),
    case!(Bin(B::Max), [-0.0, 0.0], Exact(0.0), "−0 < +0, so max(−0, +0) = +0 in either order"),
    case!(Bin(B::Max), [0.0, -0.0], Exact(0.0), "−0 < +0, either order"),
    case!(Bin(B::Max), [-0.0, -0.0], Exact(-0.0), "equal operands come back unchanged"),
    case!(Bin(B::Min), [NAN, 1.0], Exact(1.0), "a NaN operand loses to a number (Rust's f64::min)"),
    case!(Bin(B::Min), [1.0, NAN], Exact(1.0), "either operand order"),
    case!(Bin(B::Min), [NAN, NAN], Nan, "NaN only when both are NaN"),
    case!(Bin(B::Min), [-0.0, 0.0], Exact(-0.0), "−0 < +0, so min(−0, +0) = −0 in either order"),
    case!(Bin(B::Min), [0.0, -0.0], Exact(-0.0), "−0 < +0, either order"),
    case!(Bin(B::Min), [INF, NAN], Exact(INF), "even +inf beats NaN"),
    // Max reduction: max_number folded from −inf.
    case!(ReduceMax, [1.0, NAN, 3.0], Exact(3.0), "NaN elements are skipped"),
    case!(ReduceMax, [NAN, 2.0, NAN], Exact(2.0), "NaN first or last is skipped too"),
    case!(ReduceMax, [NAN, NAN], Exact(-INF), "all-NaN reduces to the identity −inf"),
    case!(ReduceMax, [-0.0, 0.0], Exact(0.0), "+0 wins over −0, in any order"),
    case!(ReduceMax, [0.0, -0.0], Exact(0.0), "+0 wins over −0, in any order"),
    case!(ReduceMax, [-0.0], Exact(-0.0), "−0 beats the −inf identity and keeps its sign"),
    case!(ReduceMax, [-INF, -INF], Exact(-INF), "−inf is a value like any other"),
    case!(ReduceMax, [-1.0, INF, NAN], Exact(INF), "+inf wins"),
    // Sign-bit ops.
    case!(Un(U::Neg), [0.0], Exact(-0.0), "negation flips the sign bit: −(+0) = −0"),
    case!(Un(U::Neg), [-0.0], Exact(0.0), "−(−0) = +0"),
    case!(Un(U::Neg), [INF], Exact(-INF), "−(+inf) = −inf"),
    case!(Un(U::Neg), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Abs), [-0.0], Exact(0.0), "abs clears the sign bit"),
    case!(Un(U::Abs), [-INF], Exact(INF), "abs(−inf) = +inf"),
    case!(Un(U::Abs), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Sign), [0.0], Exact(0.0), "sign(±0) = ±0: zero has no direction (Rust's signum gives ±1)"),
    case!(Un(U::Sign), [-0.0], Exact(-0.0), "sign(−0) = −0"),
    case!(Un(U::Sign), [NAN], Nan, "sign(NaN) = NaN"),
    case!(Un(U::Sign), [INF], Exact(1.0), "sign(+inf) = 1"),
    case!(Un(U::Sign), [-INF], Exact(-1.0), "sign(−inf) = −1"),
    case!(Un(U::Sign), [-1e-40], Exact(-1.0), "subnormal (in f32) inputs are nonzero"),
    case!(Un(U::Step), [0.0], Exact(0.0), "step is x > 0: step(0) = 0"),
    case!(Un(U::Step), [-0.0], Exact(0.0), "step(−0) = +0"),
    case!(Un(U::Step), [NAN], Exact(0.0), "NaN > 0 is false: step(NaN) = 0"),
    case!(Un(U::Step), [1e-40], Exact(1.0), "subnormal (in f32) inputs are positive"),
    case!(Un(U::Step), [INF], Exact(1.0), "step(+inf) = 1"),
    case!(Un(U::Step), [-INF], Exact(0.0), "step(−inf) = 0"),
    // Comparisons: ordered, false on NaN.
    case!(Bin(B::Gt), [NAN, 0.0], Exact(0.0), "comparisons with NaN are false"),
    case!(Bin(B::Gt), [0.0, NAN], Exact(0.0), "either operand order"),
    case!(Bin(B::Ge), [NAN, NAN], Exact(0.0), "NaN >= NaN is false"),
    case!(Bin(B::Ge), [1.0, NAN], Exact(0.0), "either operand order"),
    case!(Bin(B::Ge), [0.0, -0.0], Exact(1.0), "zeros compare equal"),
    case!(Bin(B::Gt), [0.0, -0.0], Exact(0.0), "+0 > −0 is false"),
    case!(Bin(B::Ge), [INF, INF], Exact(1.0), "inf >= inf"),
    case!(Bin(B::Gt), [INF, 1e30], Exact(1.0), "inf > every finite value"),
    // Arithmetic: IEEE 754.
    case!(Bin(B::Add), [-0.0, 0.0], Exact(0.0), "−0 + +0 = +0 (round to nearest)"),
    case!(Bin(B::Add), [-0.0, -0.0], Exact(-0.0), "−0 + −0 = −0"),
    case!(Bin(B::Add), [INF, -INF], Nan, "inf − inf is NaN"),
    case!(Bin(B::Sub), [0.0, 0.0], Exact(0.0), "0 − 0 = +0"),
    case!(Bin(B::Sub), [-0.0, 0.0], Exact(-0.0), "−0 − 0 = −0"),
    case!(Bin(B::Mul), [0.0, INF], Nan, "0 · inf is NaN"),
    case!(Bin(B::Mul), [-1.0, 0.0], Exact(-0.0), "the product's sign is the XOR of the signs"),
    case!(Bin(B::Div), [1.0, 0.0], Exact(INF), "x / +0 = +inf for x > 0"),
    case!(Bin(B::Div), [1.0, -0.0], Exact(-INF), "x / −0 = −inf for x > 0"),
    case!(Bin(B::Div), [-1.0, 0.0], Exact(-INF), "the sign is the XOR of the signs"),
    case!(Bin(B::Div), [0.0, 0.0], Nan, "0 / 0 is NaN"),
    case!(Bin(B::Div), [INF, INF], Nan, "inf / inf is NaN"),
    // Rows whose operands are equal also run with one node as both
    // operands: x − x, x + x and x / x are no identities on specials.
    case!(Bin(B::Sub), [INF, INF], Nan, "x − x is NaN at x = inf, never folded to 0"),
    case!(Bin(B::Sub), [NAN, NAN], Nan, "x − x is NaN at x = NaN"),
    case!(Bin(B::Sub), [-0.0, -0.0], Exact(0.0), "−0 − −0 = +0"),
    case!(Bin(B::Add), [NAN, NAN], Nan, "x + x is NaN at x = NaN"),
    case!(Bin(B::Div), [NAN, NAN], Nan, "x / x is NaN at x = NaN, never folded to 1"),
    case!(Bin(B::Div), [-1.0, INF], Exact(-0.0), "finite / inf = ±0"),
    case!(Bin(B::Div), [NAN, 0.0], Nan, "NaN / 0 is NaN"),
    // Square root: IEEE 754 (correctly rounded).
    case!(Un(U::Sqrt), [-0.0], Exact(-0.0), "sqrt(−0) = −0"),
    case!(Un(U::Sqrt), [-1.0], Nan, "sqrt of a negative is NaN"),
    case!(Un(U::Sqrt), [-INF], Nan, "sqrt(−inf) is NaN"),
    case!(Un(U::Sqrt), [INF], Exact(INF), "sqrt(+inf) = +inf"),
    case!(Un(U::Sqrt), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Sqrt), [4.0], Exact(2.0), "sqrt is correctly rounded"),
    // Logarithms.
    case!(Un(U::Log), [0.0], Exact(-INF), "log(+0) = −inf"),
    case!(Un(U::Log), [-0.0], Exact(-INF), "log(−0) = −inf"),
    case!(Un(U::Log), [-1.0], Nan, "log of a negative is NaN"),
    case!(Un(U::Log), [-INF], Nan, "log(−inf) is NaN"),
    case!(Un(U::Log), [INF], Exact(INF), "log(+inf) = +inf"),
    case!(Un(U::Log), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Log), [1.0], Exact(0.0), "log(1) = +0 exactly"),
    case!(Un(U::Log), [1e-40], Approx(-92.1034037197618), "subnormal inputs (in f32) are not flushed"),
    case!(Un(U::Log1p), [-1.0], Exact(-INF), "log1p(−1) = −inf"),
    case!(Un(U::Log1p), [-2.0], Nan, "log1p(x < −1) is NaN"),
    case!(Un(U::Log1p), [-0.0], Exact(-0.0), "log1p(−0) = −0"),
    case!(Un(U::Log1p), [0.0], Exact(0.0), "log1p(+0) = +0"),
    case!(Un(U::Log1p), [INF], Exact(INF), "log1p(+inf) = +inf"),
    case!(Un(U::Log1p), [-INF], Nan, "log1p(−inf) is NaN"),
    case!(Un(U::Log1p), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Log1p), [1e-30], Exact(1e-30), "log1p(x) = x for tiny x (no cancellation)"),
    // Exponential.
    case!(Un(U::Exp), [INF], Exact(INF), "exp(+inf) = +inf"),
    case!(Un(U::Exp), [-INF], Exact(0.0), "exp(−inf) = +0"),
    case!(Un(U::Exp), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Exp), [0.0], Exact(1.0), "exp(0) = 1 exactly"),
    case!(Un(U::Exp), [-0.0], Exact(1.0), "exp(−0) = 1 exactly"),
    case!(Un(U::Exp), [1000.0], Exact(INF), "overflow gives +inf"),
    case!(Un(U::Exp), [-1000.0], Exact(0.0), "underflow gives +0"),
    case!(Un(U::Exp), [-745.5], Exact(0.0), "below half the least subnormal (f64) rounds to +0"),
    case!(Un(U::Exp), [1.0], Approx(std::f64::consts::E), "ordinary values are approximations"),
    // Saturating activations.
    case!(Un(U::Tanh), [INF], Exact(1.0), "tanh(+inf) = 1"),
    case!(Un(U::Tanh), [-INF], Exact(-1.0), "tanh(−inf) = −1"),
    case!(Un(U::Tanh), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Tanh), [0.0], Exact(0.0), "tanh(+0) = +0"),
    case!(Un(U::Tanh), [-0.0], Exact(-0.0), "tanh(−0) = −0 (odd function)"),
    case!(Un(U::Tanh), [20.0], Exact(1.0), "saturates to exactly 1 (1 − 2e^−40 rounds to 1)"),
    case!(Un(U::Tanh), [-20.0], Exact(-1.0), "saturates to exactly −1"),
    case!(Un(U::Tanh), [1e-30], Approx(1e-30), "tanh(x) ≈ x for tiny x, sign kept"),
    case!(Un(U::Sigmoid), [INF], Exact(1.0), "sigmoid(+inf) = 1"),
    case!(Un(U::Sigmoid), [-INF], Exact(0.0), "sigmoid(−inf) = +0"),
    case!(Un(U::Sigmoid), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Sigmoid), [0.0], Exact(0.5), "sigmoid(0) = 1/2 exactly"),
    case!(Un(U::Sigmoid), [-0.0], Exact(0.5), "sigmoid(−0) = 1/2 exactly"),
    case!(Un(U::Sigmoid), [40.0], Exact(1.0), "saturates to exactly 1"),
    case!(Un(U::Sigmoid), [-1000.0], Exact(0.0), "underflows to +0 (computed as e^x/(1+e^x), never 1 − 1)"),
    case!(Un(U::Sigmoid), [-40.0], Approx(4.248354255291589e-18), "tiny but not 0: the left tail keeps its digits"),
    case!(Un(U::Softplus), [INF], Exact(INF), "softplus(+inf) = +inf"),
    case!(Un(U::Softplus), [-INF], Exact(0.0), "softplus(−inf) = +0"),
    case!(Un(U::Softplus), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Softplus), [1000.0], Exact(1000.0), "softplus(x) = x for large x (no overflow)"),
    case!(Un(U::Softplus), [40.0], Exact(40.0), "log1p(e^−40) is under half an ulp of 40"),
    case!(Un(U::Softplus), [-1000.0], Exact(0.0), "softplus(x) underflows to +0 for very negative x"),
    case!(Un(U::Softplus), [0.0], Approx(std::f64::consts::LN_2), "softplus(0) = ln 2"),
    // Periodic functions (libm).
    case!(Un(U::Sin), [INF], Nan, "sin(±inf) is NaN"),
    case!(Un(U::Sin), [-0.0], Exact(-0.0), "sin(−0) = −0"),
    case!(Un(U::Sin), [NAN], Nan, "NaN stays NaN"),
    case!(Un(U::Cos), [-INF], Nan, "cos(±inf) is NaN"),
    case!(Un(U::Cos), [0.0], Exact(1.0), "cos(0) = 1"),
    case!(Un(U::Cos), [NAN], Nan, "NaN stays NaN"),
    // Pow: IEEE 754 pow (C99 Annex F), as Rust's powf.
    case!(Bin(B::Pow), [NAN, 0.0], Exact(1.0), "x^0 = 1 for every x, even NaN"),
    case!(Bin(B::Pow), [NAN, -0.0], Exact(1.0), "x^−0 = 1 too"),
    case!(Bin(B::Pow), [1.0, NAN], Exact(1.0), "1^y = 1 for every y, even NaN"),
    case!(Bin(B::Pow), [NAN, 1.0], Nan, "otherwise NaN propagates"),
    case!(Bin(B::Pow), [2.0, NAN], Nan, "otherwise NaN propagates"),
    case!(Bin(B::Pow), [-1.0, INF], Exact(1.0), "(−1)^±inf = 1"),
    case!(Bin(B::Pow), [-1.0, -INF], Exact(1.0), "(−1)^±inf = 1"),
    case!(Bin(B::Pow), [0.0, -1.0], Exact(INF), "+0^(negative odd integer) = +inf"),
    case!(Bin(B::Pow), [-0.0, -1.0], Exact(-INF), "−0^(negative odd integer) = −inf"),
    case!(Bin(B::Pow), [-0.0, -2.0], Exact(INF), "±0^(negative, not an odd integer) = +inf"),
    case!(Bin(B::Pow), [0.0, -0.5], Exact(INF), "±0^(negative, not an odd integer) = +inf"),
    case!(Bin(B::Pow), [-0.0, -INF], Exact(INF), "±0^−inf = +inf"),
    case!(Bin(B::Pow), [-0.0, 3.0], Exact(-0.0), "−0^(positive odd integer) = −0"),
    case!(Bin(B::Pow), [-0.0, 2.0], Exact(0.0), "±0^(positive, not an odd integer) = +0"),
    case!(Bin(B::Pow), [-8.0, 1.0 / 3.0], Nan, "negative base, non-integer exponent: NaN (no real cube root)"),
    case!(Bin(B::Pow), [-2.0, 0.5], Nan, "negative base, non-integer exponent: NaN"),
    case!(Bin(B::Pow), [-2.0, 3.0], Exact(-8.0), "negative base, odd integer exponent: negative"),
    case!(Bin(B::Pow), [-2.0, 2.0], Exact(4.0), "negative base, even integer exponent: positive"),
    case!(Bin(B::Pow), [2.0, INF], Exact(INF), "|x| > 1: x^+inf = +inf"),
    case!(Bin(B::Pow), [0.5, INF], Exact(0.0), "|x| < 1: x^+inf = +0"),
    case!(Bin(B::Pow), [-2.0, -INF], Exact(0.0), "|x| > 1: x^−inf = +0"),
    case!(Bin(B::Pow), [-0.5, -INF], Exact(INF), "|x| < 1: x^−inf = +inf"),
    case!(Bin(B::Pow), [INF, -1.0], Exact(0.0), "+inf^(negative) = +0"),
    case!(Bin(B::Pow), [-INF, 3.0], Exact(-INF), "−inf^(positive odd integer) = −inf"),
    case!(Bin(B::Pow), [-INF, -3.0], Exact(-0.0), "−inf^(negative odd integer) = −0"),
    case!(Bin(B::Pow), [-INF, 0.5], Exact(INF), "−inf^(positive, not an odd integer) = +inf"),
    case!(Bin(B::Pow), [2.0, 0.5], Approx(std::f64::consts::SQRT_2), "ordinary values: libm pow"),
    // PowConst: the same function, with exponents 2, 1, −1 as x·x, x, 1/x.
    case!(PowC(2.0), [-3.0], Exact(9.0), "x^2 = x·x, positive for negative x"),
    case!(PowC(2.0), [-0.0], Exact(0.0), "(−0)^2 = +0"),
    case!(PowC(2.0), [-INF], Exact(INF), "(−inf)^2 = +inf"),
    case!(PowC(2.0), [NAN], Nan, "NaN^2 is NaN"),
    case!(PowC(0.0), [NAN], Exact(1.0), "x^0 = 1 for every x, even NaN"),
    case!(PowC(0.0), [-INF], Exact(1.0), "x^0 = 1 for every x"),
    case!(PowC(1.0), [-0.0], Exact(-0.0), "x^1 = x, sign of zero kept"),
    case!(PowC(1.0), [NAN], Nan, "x^1 = x"),
    case!(PowC(-1.0), [0.0], Exact(INF), "x^−1 = 1/x: +0 → +inf"),
    case!(PowC(-1.0), [-0.0], Exact(-INF), "x^−1 = 1/x: −0 → −inf"),
    case!(PowC(-1.0), [-INF], Exact(-0.0), "x^−1 = 1/x: −inf → −0"),
    case!(PowC(3.0), [-2.0], Exact(-8.0), "odd integer exponent keeps the sign"),
    case!(PowC(-2.0), [-0.0], Exact(INF), "±0^(negative even integer) = +inf"),
    case!(PowC(1.0 / 3.0), [-8.0], Nan, "(−8)^(1/3) is NaN: 1/3 is not an integer"),
    case!(PowC(0.5), [-0.0], Exact(0.0), "x^0.5 is pow, not sqrt: (−0)^0.5 = +0"),
    case!(PowC(0.5), [-INF], Exact(INF), "x^0.5 is pow, not sqrt: (−inf)^0.5 = +inf"),
    case!(PowC(0.5), [-4.0], Nan, "negative base, non-integer exponent: NaN"),
    case!(PowC(0.5), [4.0], Exact(2.0), "exact results are exact"),
    // Select.
    case!(Sel, [NAN, 1.0, 2.0], Exact(1.0), "NaN != 0, so a NaN condition picks a"),
    case!(Sel, [-0.0, 1.0, 2.0], Exact(2.0), "−0 == 0, so a −0 condition picks b"),
    case!(Sel, [0.0, 1.0, 2.0], Exact(2.0), "0 picks b"),
    case!(Sel, [-INF, 1.0, 2.0], Exact(1.0), "any nonzero picks a"),
    case!(Sel, [1e-40, 1.0, 2.0], Exact(1.0), "subnormal (in f32) conditions are nonzero"),
    case!(Sel, [1.0, NAN, 2.0], Nan, "the picked value passes through"),
    case!(Sel, [0.0, NAN, -0.0], Exact(-0.0), "the picked value passes through bit-exactly"),
    // Run-time index t[i] = Σ_k t[k]·(k ≥ i)·(i ≥ k).
    case!(DynIndex, [1.0, 5.0, 7.0, 9.0], Exact(7.0), "an integer index in range selects"),
    case!(DynIndex, [-0.0, 5.0, 7.0, 9.0], Exact(5.0), "−0 is index 0"),
    case!(DynIndex, [1.5, 5.0, 7.0, 9.0], Exact(0.0), "a non-integer index selects nothing"),
    case!(DynIndex, [-1.0, 5.0, 7.0, 9.0], Exact(0.0), "a negative index selects nothing (no wrap-around)"),
    case!(DynIndex, [3.0, 5.0, 7.0, 9.0], Exact(0.0), "an index past the end selects nothing"),
    case!(DynIndex, [NAN, 5.0, 7.0, 9.0], Exact(0.0), "a NaN index selects nothing"),
    case!(DynIndex, [2.0, 5.0, 7.0, INF], Exact(INF), "a selected inf comes through"),
    case!(DynIndex, [0.0, 5.0, INF, 9.0], Nan, "an unselected inf or NaN poisons the sum (inf·0)"),
    case!(DynIndex, [1.0, 5.0, -0.0, 9.0], Exact(0.0), "a selected −0 comes back +0 (the sum starts at +0)"),
    ]
};

/// NumPy broadcasting of two shapes; `None` if incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Shape> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i < rank - s.len() {
            1
        } else {
            s[i - (rank - s.len())]
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Whether `from` broadcasts to exactly `to`.
pub fn broadcasts_to(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len() && broadcast_shapes(from, to).as_deref() == Some(to)
}

/// Result shape of a matrix product, NumPy rules for ranks 1 and 2.
pub fn matmul_shape(a: &[usize], b: &[usize]) -> Option<Shape> {
    match (a, b) {
        ([k1], [k2]) if k1 == k2 => Some(vec![]),
        ([k1], [k2, n]) if k1 == k2 => Some(vec![*n]),
        ([m, k1], [k2]) if k1 == k2 => Some(vec![*m]),
        ([m, k1], [k2, n]) if k1 == k2 => Some(vec![*m, *n]),
        _ => None,
    }
}

/// Checks an op against its operand shapes and the claimed result shape.
/// Used by the graph builder (where failure is a compiler bug) and the verifier.
pub fn check_shape(op: &Op, args: &[&[usize]], out: &[usize]) -> Result<(), String> {
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{} takes {n} operands, got {}",
                op.name(),
                args.len()
            ))
        }
    };
    let expect = |want: &[usize]| {
        if want == out {
            Ok(())
        } else {
            Err(format!(
                "{} should give {want:?}, node says {out:?}",
                op.name()
            ))
        }
    };
    match op {
        Op::Scalar(_) => {
            arity(0)?;
            expect(&[])
        }
        Op::Const(_) | Op::Input(_) => arity(0),
        Op::Unary(_) | Op::PowConst(_) | Op::StopGradient => {
            arity(1)?;
            expect(args[0])
        }
        Op::Binary(_) => {
            arity(2)?;
            if args[0] != args[1] {
                return Err(format!(
                    "{} operands differ in shape: {:?} vs {:?} (implicit broadcast)",
                    op.name(),
                    args[0],
                    args[1]
                ));
            }
            expect(args[0])
        }
        Op::Select => {
            arity(3)?;
            if args[0] != args[1] || args[1] != args[2] {
                return Err("select operands differ in shape".into());
            }
            expect(args[0])
        }
        Op::Broadcast => {
            arity(1)?;
            if broadcasts_to(args[0], out) {
                Ok(())
            } else {
                Err(format!("cannot broadcast {:?} to {out:?}", args[0]))
            }
        }
        Op::Sum(axes) | Op::Max(axes) => {
            arity(1)?;
            if axes.iter().any(|a| a >= args[0].len()) {
                return Err(format!("reduction axes out of range for {:?}", args[0]));
            }
            let kept: Shape = (0..args[0].len())
                .filter(|&a| !axes.contains(a))
                .map(|a| args[0][a])
                .collect();
            expect(&kept)
        }
        Op::Reshape => {
            arity(1)?;
            if numel(args[0]) == numel(out) {
                Ok(())
            } else {
                Err(format!("reshape {:?} to {out:?} changes size", args[0]))
            }
        }
        Op::Transpose(perm) => {
            arity(1)?;
            let p = perm.as_vec();
            let mut sorted = p.clone();
            sorted.sort();
            if sorted != (0..args[0].len()).collect::<Vec<_>>() {
                return Err(format!("bad permutation {p:?} for {:?}", args[0]));
            }
            let want: Shape = p.iter().map(|&a| args[0][a]).collect();
            expect(&want)
        }
        Op::Slice { axis, start, step } => {
            arity(1)?;
            let (axis, start, step) = (*axis as usize, *start as usize, *step as usize);
            if axis >= args[0].len() || out.len() != args[0].len() {
                return Err("slice axis out of range".into());
            }
            let mut want = args[0].to_vec();
            want[axis] = out[axis];
            // The last element read: start + (len − 1)·step.
            let last = out[axis]
                .checked_sub(1)
                .and_then(|n| n.checked_mul(step))
                .and_then(|n| n.checked_add(start));
            if step == 0 || last.is_none_or(|last| last >= args[0][axis]) {
                return Err(format!(
                    "slice from {start}, {} long, step {step}, out of bounds for {:?}",
                    out[axis], args[0]
                ));
            }
            expect(&want)
        }
        Op::Scan { seqs, .. } => super::scan::check_operands(*seqs as usize, args, out),
        Op::Concat { axis } => {
            let axis = *axis as usize;
            if args.is_empty() || axis >= args[0].len() {
                return Err("concat needs operands of rank > axis".into());
            }
            let mut want = args[0].to_vec();
            want[axis] = 0;
            for a in args {
                let same_rest =
                    a.len() == want.len() && (0..a.len()).all(|i| i == axis || a[i] == args[0][i]);
                if !same_rest {
                    return Err(format!("concat operand {a:?} does not match {:?}", args[0]));
                }
                want[axis] = want[axis]
                    .checked_add(a[axis])
                    .ok_or("concat result too large")?;
            }
            expect(&want)
        }
        Op::MatMul => {
            arity(2)?;
            match matmul_shape(args[0], args[1]) {
                Some(s) => expect(&s),
                None => Err(format!("matmul of {:?} and {:?}", args[0], args[1])),
            }
        }
    }
}
