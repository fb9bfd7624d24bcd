//! `Real`: the scalar types kernels run in (f64 and f32), shared by the
//! reference interpreter, the CPU backend and the runtime.

use super::{BinaryOp, UnaryOp, op};

/// The scalar types kernels run in. The per-value semantics of every op are
/// not defined here but in `ir::op` (`UnaryOp::eval`, `BinaryOp::eval`,
/// `op::pow_const`, `op::select`, `op::MAX_IDENTITY`), the specification every
/// backend implements (`op::SPECIAL_CASES`); `Real` only converts to and from
/// f64 and dispatches to them.
pub trait Real: op::Float + Copy + PartialOrd + std::fmt::Debug + Send + Sync + 'static {
    const NAME: &'static str;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn zero() -> Self {
        Self::from_f64(0.0)
    }
    fn unary(op: UnaryOp, x: Self) -> Self;
    fn binary(op: BinaryOp, a: Self, b: Self) -> Self;
}

macro_rules! impl_real {
    ($t:ty, $name:literal) => {
        impl Real for $t {
            const NAME: &'static str = $name;
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn unary(op: UnaryOp, x: $t) -> $t {
                op.eval(x)
            }
            fn binary(op: BinaryOp, a: $t, b: $t) -> $t {
                op.eval(a, b)
            }
        }
    };
}

impl_real!(f64, "f64");
impl_real!(f32, "f32");
