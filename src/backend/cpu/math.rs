//! Inline vector approximations of the transcendental functions, emitted as
//! Cranelift IR over one "lane" type: `f32x4`/`f64x2` inside batch loops, or a
//! plain `f32`/`f64` in the batch-invariant program. Everything here is
//! branch-free (selects and bit tricks), so lanes never diverge.
//!
//! Error bounds, measured against Rust's `std` (libm) by the `approx_error`
//! test in `tests/jit_vs_interp.rs` over ~2M points per function, are listed
//! in `docs/backend-cpu.md` and repeated on each function below.

use cranelift_codegen::ir::{
    self, InstBuilder, MemFlagsData, Type, Value, condcodes::FloatCC, types,
};
use cranelift_frontend::FunctionBuilder;

/// The float "lane" type a loop computes in, with its matching integer type.
#[derive(Clone, Copy)]
pub(crate) struct Lanes {
    /// f32x4, f64x2, f32 or f64.
    pub ft: Type,
    /// i32x4, i64x2, i32 or i64.
    pub it: Type,
    pub f64: bool,
    pub vector: bool,
}

impl Lanes {
    pub fn new(f64: bool, vector: bool) -> Lanes {
        let (ft, it) = match (f64, vector) {
            (false, true) => (types::F32X4, types::I32X4),
            (true, true) => (types::F64X2, types::I64X2),
            (false, false) => (types::F32, types::I32),
            (true, false) => (types::F64, types::I64),
        };
        Lanes {
            ft,
            it,
            f64,
            vector,
        }
    }
    /// Lanes per value.
    pub fn width(&self) -> usize {
        self.ft.lane_count() as usize
    }
    /// The scalar float type.
    pub fn sft(&self) -> Type {
        if self.f64 { types::F64 } else { types::F32 }
    }
    pub fn sit(&self) -> Type {
        if self.f64 { types::I64 } else { types::I32 }
    }
    pub fn bytes(&self) -> i64 {
        self.ft.bytes() as i64
    }
    pub fn elem_bytes(&self) -> i64 {
        if self.f64 { 8 } else { 4 }
    }
    /// Splats a scalar value (already of the scalar float type).
    pub fn splat(&self, b: &mut FunctionBuilder, s: Value) -> Value {
        if self.vector {
            b.ins().splat(self.ft, s)
        } else {
            s
        }
    }
    pub fn f(&self, b: &mut FunctionBuilder, v: f64) -> Value {
        let s = if self.f64 {
            b.ins().f64const(v)
        } else {
            b.ins().f32const(v as f32)
        };
        self.splat(b, s)
    }
    pub fn i(&self, b: &mut FunctionBuilder, v: i64) -> Value {
        let s = b.ins().iconst(self.sit(), v);
        if self.vector {
            b.ins().splat(self.it, s)
        } else {
            s
        }
    }
    fn flags() -> MemFlagsData {
        MemFlagsData::new().with_endianness(ir::Endianness::Little)
    }
    pub fn as_int(&self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.it, Self::flags(), x)
    }
    pub fn as_float(&self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.ft, Self::flags(), x)
    }
    /// A float comparison as a mask (vector) or an `i8` flag (scalar).
    pub fn cmp(&self, b: &mut FunctionBuilder, cc: FloatCC, x: Value, y: Value) -> Value {
        b.ins().fcmp(cc, x, y)
    }
    /// Lane-wise `c ? x : y` for a mask/flag from [`Lanes::cmp`].
    pub fn sel(&self, b: &mut FunctionBuilder, c: Value, x: Value, y: Value) -> Value {
        if self.vector {
            let m = self.as_float(b, c);
            b.ins().bitselect(m, x, y)
        } else {
            b.ins().select(c, x, y)
        }
    }
    /// Lane-wise `c ? x : y` for integer values.
    pub fn isel(&self, b: &mut FunctionBuilder, c: Value, x: Value, y: Value) -> Value {
        if self.vector {
            b.ins().bitselect(c, x, y)
        } else {
            b.ins().select(c, x, y)
        }
    }
    /// max(x, lo) keeping NaN (compare + select: x64's `fmax` lowering is long).
    pub fn at_least(&self, b: &mut FunctionBuilder, x: Value, lo: Value) -> Value {
        let m = self.cmp(b, FloatCC::LessThan, x, lo);
        self.sel(b, m, lo, x)
    }
    /// min(x, hi) keeping NaN.
    pub fn at_most(&self, b: &mut FunctionBuilder, x: Value, hi: Value) -> Value {
        let m = self.cmp(b, FloatCC::GreaterThan, x, hi);
        self.sel(b, m, hi, x)
    }
    /// 1.0 where the mask holds, else 0.0.
    pub fn mask_to_one(&self, b: &mut FunctionBuilder, c: Value) -> Value {
        let one = self.f(b, 1.0);
        let zero = self.f(b, 0.0);
        self.sel(b, c, one, zero)
    }
    fn mbits(&self) -> i64 {
        if self.f64 { 52 } else { 23 }
    }
    fn bias(&self) -> i64 {
        if self.f64 { 1023 } else { 127 }
    }
    /// 1.5 · 2^mbits: adding it rounds to an integer held in the low mantissa bits.
    fn magic(&self) -> f64 {
        1.5 * 2f64.powi(self.mbits() as i32)
    }
    fn magic_bits(&self) -> i64 {
        if self.f64 {
            self.magic().to_bits() as i64
        } else {
            (self.magic() as f32).to_bits() as i64
        }
    }
    /// Small signed integers (|n| < 2^22) to floats, via the magic-number trick.
    fn int_to_float(&self, b: &mut FunctionBuilder, n: Value) -> Value {
        let mb = self.i(b, self.magic_bits());
        let t = b.ins().iadd(n, mb);
        let t = self.as_float(b, t);
        let m = self.f(b, self.magic());
        b.ins().fsub(t, m)
    }
    /// 2^n for integer lanes n in the normal exponent range.
    fn pow2i(&self, b: &mut FunctionBuilder, n: Value) -> Value {
        let bias = self.i(b, self.bias());
        let e = b.ins().iadd(n, bias);
        let e = b.ins().ishl_imm_u(e, self.mbits());
        self.as_float(b, e)
    }
}

fn horner(b: &mut FunctionBuilder, l: &Lanes, x: Value, coeffs: &[f64]) -> Value {
    // coeffs[0] + x*(coeffs[1] + x*(...))
    // invariant: coefficient tables are non-empty constants.
    let mut acc = l.f(b, *coeffs.last().unwrap());
    for &c in coeffs.iter().rev().skip(1) {
        let cv = l.f(b, c);
        acc = b.ins().fma(acc, x, cv);
    }
    acc
}

fn inv_factorials(n: usize) -> Vec<f64> {
    let mut v = vec![1.0];
    let mut f = 1.0;
    for k in 1..=n {
        f *= k as f64;
        v.push(1.0 / f);
    }
    v
}

const LN2_HI_F64: f64 = 6.931_471_803_691_238e-1;
const LN2_LO_F64: f64 = 1.908_214_929_270_587_7e-10;
const LN2_HI_F32: f64 = 0.693_359_375;
const LN2_LO_F32: f64 = -2.121_944_4e-4;

/// Range reduction x = n·ln2 + r, |r| ≤ ln2/2. Returns (n as integer lanes, r).
fn reduce_ln2(b: &mut FunctionBuilder, l: &Lanes, x: Value) -> (Value, Value) {
    let log2e = l.f(b, std::f64::consts::LOG2_E);
    let magic = l.f(b, l.magic());
    let t = b.ins().fma(x, log2e, magic);
    let nf = b.ins().fsub(t, magic);
    let ti = l.as_int(b, t);
    let mb = l.i(b, l.magic_bits());
    let n = b.ins().isub(ti, mb);
    let (hi, lo) = if l.f64 {
        (LN2_HI_F64, LN2_LO_F64)
    } else {
        (LN2_HI_F32, LN2_LO_F32)
    };
    let nhi = l.f(b, -hi);
    let nlo = l.f(b, -lo);
    let r = b.ins().fma(nf, nhi, x);
    let r = b.ins().fma(nf, nlo, r);
    (n, r)
}

/// e^x. f32: ≤ 1 ulp typical, 2 ulp max; f64: ≤ 2 ulp. Overflow gives +inf,
/// gradual underflow is kept (the scale is applied in two halves), NaN stays NaN.
pub(crate) fn exp(b: &mut FunctionBuilder, l: &Lanes, x: Value) -> Value {
    let (lo, hi) = if l.f64 {
        (-746.0, 710.0)
    } else {
        (-104.0, 89.0)
    };
    let lo = l.f(b, lo);
    let hi = l.f(b, hi);
    // Below `lo` the result is 0. Those lanes compute e^0 instead and are
    // zeroed at the end: letting them underflow through the scaling would
    // make every such lane a subnormal operation (microcode-slow on x86; the
    // W1 mixture weights are mostly e^(−100…−800)).
    let under = l.cmp(b, FloatCC::LessThan, x, lo);
    let zero = l.f(b, 0.0);
    let x = l.sel(b, under, zero, x);
    let x = l.at_most(b, x, hi);
    let (n, r) = reduce_ln2(b, l, x);
    let deg = if l.f64 { 13 } else { 7 };
    let p = horner(b, l, r, &inv_factorials(deg));
    let n1 = b.ins().sshr_imm_u(n, 1);
    let n2 = b.ins().isub(n, n1);
    let s1 = l.pow2i(b, n1);
    let s2 = l.pow2i(b, n2);
    let p = b.ins().fmul(p, s1);
    let y = b.ins().fmul(p, s2);
    l.sel(b, under, zero, y)
}

/// (e^x − 1, e^x) for x ≤ 0 (used by tanh), from one range reduction: the
/// first is accurate near zero (no cancellation), the second for large |x|.
fn expm1_neg(b: &mut FunctionBuilder, l: &Lanes, x: Value) -> (Value, Value) {
    // Below this, e^x is far under half an ulp of 1, so the result is −1.
    let lo = l.f(b, if l.f64 { -80.0 } else { -40.0 });
    let x = l.at_least(b, x, lo);
    let zero = l.f(b, 0.0);
    let x = l.at_most(b, x, zero);
    let (n, r) = reduce_ln2(b, l, x);
    // q = e^r − 1 = r·(1 + r/2 + r²/6 + …)
    let deg = if l.f64 { 13 } else { 7 };
    let c: Vec<f64> = inv_factorials(deg + 1)[1..].to_vec();
    let p = horner(b, l, r, &c);
    let q = b.ins().fmul(p, r);
    let s = l.pow2i(b, n);
    let one = l.f(b, 1.0);
    let sm1 = b.ins().fsub(s, one);
    let em1 = b.ins().fma(s, q, sm1);
    let e = b.ins().fma(s, q, s);
    (em1, e)
}

/// tanh |x| = −u/(2+u) with u = expm1(−2|x|) below 0.625, else
/// 1 − 2e/(1+e) with e = exp(−2|x|) (correctly rounded near saturation, so
/// 1 − tanh² in derivatives keeps its digits); the sign is copied from x.
pub(crate) fn tanh(b: &mut FunctionBuilder, l: &Lanes, x: Value) -> Value {
    let ax = b.ins().fabs(x);
    let m2 = l.f(b, -2.0);
    let a = b.ins().fmul(ax, m2);
    let (u, e) = expm1_neg(b, l, a);
    let two = l.f(b, 2.0);
    let d = b.ins().fadd(two, u);
    let nu = b.ins().fneg(u);
    let small = b.ins().fdiv(nu, d);
    let one = l.f(b, 1.0);
    let de = b.ins().fadd(one, e);
    let e2 = b.ins().fadd(e, e);
    let q = b.ins().fdiv(e2, de);
    let big = b.ins().fsub(one, q);
    let cut = l.f(b, 0.625);
    let is_small = l.cmp(b, FloatCC::LessThan, ax, cut);
    let t = l.sel(b, is_small, small, big);
    // `small` is −0 for x = ±0 (−u/(2+u) with u = +0): clear the sign first.
    let t = b.ins().fabs(t);
    // copysign(t, x) with t ≥ 0, in the integer domain (no vector fcopysign on x64).
    let sign = l.i(b, if l.f64 { i64::MIN } else { i32::MIN as i64 });
    let xi = l.as_int(b, x);
    let s = b.ins().band(xi, sign);
    let ti = l.as_int(b, t);
    let r = b.ins().bor(ti, s);
    l.as_float(b, r)
}

/// Natural log. ≤ 2 ulp (f32 and f64), subnormals handled; log(0) = −inf,
/// log(x<0) = NaN, log(inf) = inf.
pub(crate) fn log(b: &mut FunctionBuilder, l: &Lanes, x: Value) -> Value {
    let mbits = l.mbits();
    let min_normal = if l.f64 {
        f64::MIN_POSITIVE
    } else {
        f32::MIN_POSITIVE as f64
    };
    let mn = l.f(b, min_normal);
    let is_sub = l.cmp(b, FloatCC::LessThan, x, mn);
    let scale = l.f(b, 2f64.powi(mbits as i32));
    let xs = b.ins().fmul(x, scale);
    let xn = l.sel(b, is_sub, xs, x);
    let adj = l.i(b, -mbits);
    let zero_i = l.i(b, 0);
    let mut e_adj = l.isel_from_fmask(b, is_sub, adj, zero_i);
    let bits = l.as_int(b, xn);
    let e = b.ins().ushr_imm_u(bits, mbits);
    let emask = l.i(b, if l.f64 { 0x7ff } else { 0xff });
    let e = b.ins().band(e, emask);
    let bias = l.i(b, l.bias());
    let e = b.ins().isub(e, bias);
    e_adj = b.ins().iadd(e, e_adj);
    let mmask = l.i(b, (1i64 << mbits) - 1);
    let mant = b.ins().band(bits, mmask);
    let onebits = l.i(b, l.bias() << mbits);
    let mant = b.ins().bor(mant, onebits);
    let m = l.as_float(b, mant); // [1, 2)
    let sqrt2 = l.f(b, std::f64::consts::SQRT_2);
    let big = l.cmp(b, FloatCC::GreaterThan, m, sqrt2);
    let half = l.f(b, 0.5);
    let mh = b.ins().fmul(m, half);
    let m = l.sel(b, big, mh, m);
    let one_i = l.i(b, 1);
    let inc = l.isel_from_fmask(b, big, one_i, zero_i);
    let e = b.ins().iadd(e_adj, inc);
    let ef = l.int_to_float(b, e);
    // log m = 2s + s·z·Q(z), s = (m−1)/(m+1), z = s².
    let one = l.f(b, 1.0);
    let f = b.ins().fsub(m, one);
    let two = l.f(b, 2.0);
    let den = b.ins().fadd(f, two);
    let s = b.ins().fdiv(f, den);
    let z = b.ins().fmul(s, s);
    let nq = if l.f64 { 11 } else { 6 };
    let q: Vec<f64> = (1..=nq).map(|k| 2.0 / (2 * k + 1) as f64).collect();
    let qz = horner(b, l, z, &q);
    let sz = b.ins().fmul(s, z);
    let two_s = b.ins().fadd(s, s);
    let lm = b.ins().fma(sz, qz, two_s);
    let (hi, lo) = if l.f64 {
        (LN2_HI_F64, LN2_LO_F64)
    } else {
        (LN2_HI_F32, LN2_LO_F32)
    };
    let lo = l.f(b, lo);
    let hi = l.f(b, hi);
    let r = b.ins().fma(ef, lo, lm);
    let r = b.ins().fma(ef, hi, r);
    // Special values.
    let zero = l.f(b, 0.0);
    let inf = l.f(b, f64::INFINITY);
    let ninf = l.f(b, f64::NEG_INFINITY);
    let nan = l.f(b, f64::NAN);
    let is_inf = l.cmp(b, FloatCC::Equal, x, inf);
    let r = l.sel(b, is_inf, inf, r);
    let is_zero = l.cmp(b, FloatCC::Equal, x, zero);
    let r = l.sel(b, is_zero, ninf, r);
    let bad = l.cmp(b, FloatCC::UnorderedOrLessThan, x, zero);
    l.sel(b, bad, nan, r)
}

/// log(1+x) = x·log(u)/(u−1) with u = 1+x (exact correction of the rounding of u).
pub(crate) fn log1p(b: &mut FunctionBuilder, l: &Lanes, x: Value) -> Value {
    let one = l.f(b, 1.0);
    let u = b.ins().fadd(one, x);
    let lu = log(b, l, u);
    let um1 = b.ins().fsub(u, one);
    let t = b.ins().fmul(x, lu);
    let r = b.ins().fdiv(t, um1);
    let is_one = l.cmp(b, FloatCC::Equal, u, one);
    let r = l.sel(b, is_one, x, r);
    let inf = l.f(b, f64::INFINITY);
    let is_inf = l.cmp(b, FloatCC::Equal, u, inf);
    l.sel(b, is_inf, lu, r)
}

/// Stable sigmoid: e = exp(−|x|), 1/(1+e) for x ≥ 0, e/(1+e) otherwise.
pub(crate) fn sigmoid(b: &mut FunctionBuilder, l: &Lanes, x: Value) -> Value {
    let ax = b.ins().fabs(x);
    let nax = b.ins().fneg(ax);
    let e = exp(b, l, nax);
    let one = l.f(b, 1.0);
    let d = b.ins().fadd(one, e);
    let r = b.ins().fdiv(one, d);
    // e·(1/(1+e)) instead of a second division (≤ 1 extra rounding).
    let er = b.ins().fmul(e, r);
    let zero = l.f(b, 0.0);
    let pos = l.cmp(b, FloatCC::GreaterThanOrEqual, x, zero);
    l.sel(b, pos, r, er)
}

/// Stable softplus: max(x, 0) + log1p(exp(−|x|)).
pub(crate) fn softplus(b: &mut FunctionBuilder, l: &Lanes, x: Value) -> Value {
    let ax = b.ins().fabs(x);
    let nax = b.ins().fneg(ax);
    let e = exp(b, l, nax);
    let lp = log1p(b, l, e);
    let zero = l.f(b, 0.0);
    let m = l.at_least(b, x, zero);
    b.ins().fadd(m, lp)
}

impl Lanes {
    /// Integer select driven by a float comparison result.
    fn isel_from_fmask(&self, b: &mut FunctionBuilder, c: Value, x: Value, y: Value) -> Value {
        if self.vector {
            // Float compares on vectors already give integer masks of the same width.
            self.isel(b, c, x, y)
        } else {
            b.ins().select(c, x, y)
        }
    }
}

/// Scalar libm shims the JIT calls lane by lane (sin, cos, pow).
pub(crate) mod shims {
    pub extern "C" fn sin_f32(x: f32) -> f32 {
        x.sin()
    }
    pub extern "C" fn cos_f32(x: f32) -> f32 {
        x.cos()
    }
    pub extern "C" fn pow_f32(x: f32, y: f32) -> f32 {
        x.powf(y)
    }
    pub extern "C" fn sin_f64(x: f64) -> f64 {
        x.sin()
    }
    pub extern "C" fn cos_f64(x: f64) -> f64 {
        x.cos()
    }
    pub extern "C" fn pow_f64(x: f64, y: f64) -> f64 {
        x.powf(y)
    }
}
