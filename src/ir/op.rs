//! The closed set of IR operations and their shape rules. Every op is
//! per-sample: the batch axis is never visible here. Operands of elementwise
//! ops always have identical shapes — **the IR never holds an implicit
//! broadcast**; `Broadcast` makes every expansion explicit.

use std::fmt;

use super::{ConstId, InputId};

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
    /// Elements `start .. start + len` along `axis`, `len` from the node's shape.
    Slice {
        axis: u8,
        start: u32,
    },
    /// Concatenation of all operands along `axis`.
    Concat {
        axis: u8,
    },
    /// Matrix product of rank-1/2 operands, as NumPy's `@`.
    MatMul,
    /// Identity forward; derivative structurally zero.
    StopGradient,
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
            Op::Slice { axis, start } => format!("slice axis={axis} start={start}"),
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
        Op::Slice { axis, start } => {
            arity(1)?;
            let (axis, start) = (*axis as usize, *start as usize);
            if axis >= args[0].len() || out.len() != args[0].len() {
                return Err("slice axis out of range".into());
            }
            let mut want = args[0].to_vec();
            want[axis] = out[axis];
            let end = start.checked_add(out[axis]);
            if end.is_none_or(|end| end > args[0][axis]) || out[axis] == 0 {
                return Err(format!(
                    "slice from {start}, {} long, out of bounds for {:?}",
                    out[axis], args[0]
                ));
            }
            expect(&want)
        }
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
