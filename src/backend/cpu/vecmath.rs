//! Whole-buffer f32 `exp` and `sigmoid` compiled by rustc for AVX-512 and
//! called from the tile program when a materialised node is one of these
//! ops applied to a buffer, and from the panel GEMM's epilogues. `exp` is
//! the algorithm and constants of the inline Cranelift code in `math.rs` (so
//! the same error bounds), but 512-bit wide: Cranelift's x64 backend only
//! emits 128-bit vectors. `sigmoid` has a select-free form of its own
//! ([`sigmoid1`]), fewer operations and a smaller error. Used only when the
//! CPU has AVX-512F and FMA (`available()`); otherwise the inline loops run.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const MAGIC: f32 = 12_582_912.0; // 1.5·2^23
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Taylor coefficients of eʳ, 1/k! for k = 7 … 0 (Horner order).
const TAYLOR: [f32; 8] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// Minimax coefficients of eʳ on [−ln 2/2, ln 2/2], degree 6 (Horner
/// order), for [`sigmoid1`]: relative error 1.9e-9 before rounding, below
/// that of [`exp1`]'s degree-7 Taylor series (5.5e-9) with a term fewer.
const SIGMOID_EXP: [f32; 7] = [
    0.001_383_683_5,
    0.008_374_824,
    0.041_668_225,
    0.166_664_2,
    0.499_999_9,
    1.0,
    1.0,
];

/// The scalar reference of the lane code (and of the Cranelift inline code).
#[cfg(test)]
fn exp1(x: f32) -> f32 {
    let x = x.clamp(-104.0, 89.0);
    let t = x.mul_add(LOG2E, MAGIC);
    let nf = t - MAGIC;
    let n = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = nf.mul_add(-LN2_HI, x);
    let r = nf.mul_add(-LN2_LO, r);
    let mut p: f32 = TAYLOR[0];
    for c in &TAYLOR[1..] {
        p = p.mul_add(r, *c);
    }
    let n1 = n >> 1;
    let n2 = n - n1;
    let s1 = f32::from_bits(((n1 + 127) << 23) as u32);
    let s2 = f32::from_bits(((n2 + 127) << 23) as u32);
    p * s1 * s2
}

/// The scalar reference of [`lanes::sigmoid16`]: with m = round(x·log₂e),
/// e⁻ˣ = p·2⁻ᵐ where p = e^(m·ln 2 − x) ∈ [0.7, 1.42], and
/// 1/(1 + e⁻ˣ) = 2ᵐ/(2ᵐ + p). One form for both signs (no select), exact
/// scalings, two roundings after p's; x is clamped to [−104, 88], where 2ᵐ
/// stays finite and the result is 1 or underflows to 0 beyond.
#[cfg(test)]
fn sigmoid1(x: f32) -> f32 {
    let x = if x.is_nan() { x } else { x.clamp(-104.0, 88.0) };
    let t = x.mul_add(LOG2E, MAGIC);
    let m = t - MAGIC;
    let r = m.mul_add(LN2_HI, -x);
    let r = m.mul_add(LN2_LO, r);
    let mut p: f32 = SIGMOID_EXP[0];
    for c in &SIGMOID_EXP[1..] {
        p = p.mul_add(r, *c);
    }
    let m = m as i32;
    let y = 1.0 / (scale2(1.0, m) + p);
    scale2(y, m)
}

/// `y·2ⁿ` rounded once, as `vscalefps` (two exact halves, then one rounding
/// step: 2^⌊n/2⌋ and 2^⌈n/2⌉ are normal for |n| ≤ 252).
#[cfg(test)]
fn scale2(y: f32, n: i32) -> f32 {
    let n1 = n >> 1;
    let n2 = n - n1;
    let s1 = f32::from_bits(((n1 + 127) << 23) as u32);
    let s2 = f32::from_bits(((n2 + 127) << 23) as u32);
    y * s1 * s2
}

pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Sixteen lanes of [`exp1`] and [`sigmoid1`] in AVX-512 intrinsics. The
/// same operations in the same order, except each scaling by 2ⁿ: one
/// `vscalefps` instead of two multiplications by 2^⌊n/2⌋ and 2^⌈n/2⌉. Both
/// round once (the first multiplication of the pair is exact for n ≥ −150),
/// overflow to ∞ alike and flush alike under FTZ, so the results are the
/// same bits (`tests::vector_lanes_equal_the_scalar_reference`) — with a
/// third fewer instructions on the two ports 512-bit code may use.
#[cfg(target_arch = "x86_64")]
pub(super) mod lanes {
    use super::{LN2_HI, LN2_LO, LOG2E, MAGIC, SIGMOID_EXP, TAYLOR};
    use std::arch::x86_64::*;

    #[inline(always)]
    pub(in crate::backend::cpu) unsafe fn exp16(x: __m512) -> __m512 {
        // SAFETY: callers run with AVX-512F and FMA (`available()`).
        unsafe {
            let s = _mm512_set1_ps;
            // min(hi, ·) and max(lo, ·) return their argument when it is
            // NaN, as clamp does.
            let x = _mm512_max_ps(s(-104.0), _mm512_min_ps(s(89.0), x));
            let t = _mm512_fmadd_ps(x, s(LOG2E), s(MAGIC));
            let nf = _mm512_sub_ps(t, s(MAGIC));
            let r = _mm512_fmadd_ps(nf, s(-LN2_HI), x);
            let r = _mm512_fmadd_ps(nf, s(-LN2_LO), r);
            let mut p = s(TAYLOR[0]);
            for c in &TAYLOR[1..] {
                p = _mm512_fmadd_ps(p, r, s(*c));
            }
            _mm512_scalef_ps(p, nf)
        }
    }

    #[inline(always)]
    pub(in crate::backend::cpu) unsafe fn sigmoid16(x: __m512) -> __m512 {
        // SAFETY: as `exp16`.
        unsafe {
            let s = _mm512_set1_ps;
            // max(lo, ·) and min(hi, ·) return their argument when it is
            // NaN, which then runs through to the result.
            let x = _mm512_min_ps(s(88.0), _mm512_max_ps(s(-104.0), x));
            let t = _mm512_fmadd_ps(x, s(LOG2E), s(MAGIC));
            let m = _mm512_sub_ps(t, s(MAGIC));
            let r = _mm512_fmsub_ps(m, s(LN2_HI), x);
            let r = _mm512_fmadd_ps(m, s(LN2_LO), r);
            let mut p = s(SIGMOID_EXP[0]);
            for c in &SIGMOID_EXP[1..] {
                p = _mm512_fmadd_ps(p, r, s(*c));
            }
            let one = s(1.0);
            let y = _mm512_div_ps(one, _mm512_add_ps(_mm512_scalef_ps(one, m), p));
            _mm512_scalef_ps(y, m)
        }
    }
}

/// Feature rows of a tile: `feats` rows `stride` elements apart, each
/// computed over its first ⌈n/16⌉·16 lanes. The lanes past `n` are the
/// row's padding (a tile's stride is a multiple of 16 lanes), computed and
/// never read, so every vector is a full, unmasked one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rows {
    pub feats: usize,
    pub stride: usize,
    pub n: usize,
}

/// Applies `f` to every 16-lane vector of the rows of `x` (with the row's
/// broadcast bias `b[row]`, or 0 when `b` is null), storing into each of
/// `outs` the lanes `f` returns for it. One call covers a whole step: the
/// constants of `f` are set up once, not once per row.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn map_rows<const K: usize>(
    x: *const f32,
    b: *const f32,
    outs: [*mut f32; K],
    rows: Rows,
    f: impl Fn(std::arch::x86_64::__m512, std::arch::x86_64::__m512) -> [std::arch::x86_64::__m512; K],
) {
    use std::arch::x86_64::*;
    let nv = rows.n.div_ceil(16);
    for r in 0..rows.feats {
        let row = r * rows.stride;
        // SAFETY: the callers' contract: every row valid for nv·16 lanes,
        // `b` (unless null) for `feats` values.
        unsafe {
            let bv = if b.is_null() {
                _mm512_setzero_ps()
            } else {
                _mm512_set1_ps(*b.add(r))
            };
            for v in 0..nv {
                let i = row + 16 * v;
                let y = f(_mm512_loadu_ps(x.add(i)), bv);
                for (o, rv) in outs.iter().zip(y) {
                    _mm512_storeu_ps(o.add(i), rv);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn plain_avx512(sigmoid: bool, x: *const f32, y: *mut f32, rows: Rows) {
    let b = std::ptr::null();
    // SAFETY: the features are enabled on this function; callers' contract.
    unsafe {
        if sigmoid {
            map_rows(x, b, [y], rows, |v, _| [lanes::sigmoid16(v)])
        } else {
            map_rows(x, b, [y], rows, |v, _| [lanes::exp16(v)])
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn biased_avx512(
    sigmoid: bool,
    x: *const f32,
    b: *const f32,
    h: *mut f32,
    y: *mut f32,
    rows: Rows,
) {
    use std::arch::x86_64::*;
    // SAFETY: as above.
    unsafe {
        if sigmoid {
            map_rows(x, b, [h, y], rows, |v, bv| {
                let a = _mm512_add_ps(v, bv);
                [a, lanes::sigmoid16(a)]
            })
        } else {
            map_rows(x, b, [h, y], rows, |v, bv| {
                let a = _mm512_add_ps(v, bv);
                [a, lanes::exp16(a)]
            })
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn swish_avx512(
    x: *const f32,
    b: *const f32,
    h: *mut f32,
    y: *mut f32,
    m: *mut f32,
    rows: Rows,
) {
    use std::arch::x86_64::*;
    // SAFETY: as above.
    unsafe {
        map_rows(x, b, [h, y, m], rows, |v, bv| {
            let a = _mm512_add_ps(v, bv);
            let s = lanes::sigmoid16(a);
            [a, s, _mm512_mul_ps(a, s)]
        })
    }
}

/// `h = x + b`, `y = f(h)` elementwise in one pass (a layer's bias, one
/// value per row, and its activation), and `m = h · y` when `m` is not null
/// (swish); bit-identical to an add loop, [`apply`] and a product loop.
///
/// # Safety
/// `available()` must be true; `x`, `h`, `y` (and `m` unless null) must be
/// valid for `rows` (every row for ⌈n/16⌉·16 lanes), `b` for `rows.feats`
/// values; the outputs disjoint from each other and from `x`; `m` only with
/// `sigmoid`.
pub(crate) unsafe fn apply_biased(
    sigmoid: bool,
    x: *const f32,
    b: *const f32,
    h: *mut f32,
    y: *mut f32,
    m: *mut f32,
    rows: Rows,
) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        if m.is_null() {
            biased_avx512(sigmoid, x, b, h, y, rows)
        } else {
            // invariant: the planner fuses products with sigmoid only.
            assert!(sigmoid, "exp products are not fused");
            swish_avx512(x, b, h, y, m, rows)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (sigmoid, x, b, h, y, m, rows);
        // invariant: callers dispatch only when `available()`.
        unreachable!()
    }
}

/// `y = f(x)` elementwise; `sigmoid` selects the function. `x` and `y` may
/// be the same memory only if identical (in place).
///
/// # Safety
/// `available()` must be true; `x` and `y` must be valid for `rows` (every
/// row for ⌈n/16⌉·16 lanes).
pub(crate) unsafe fn apply(sigmoid: bool, x: *const f32, y: *mut f32, rows: Rows) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        plain_avx512(sigmoid, x, y, rows)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (sigmoid, x, y, rows);
        // invariant: callers dispatch only the ops listed above.
        unreachable!()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments over the whole range of each branch: a fine sweep across
    /// [−120, 100] (past both clamps, through the subnormal outputs below
    /// −87) plus the special values.
    fn arguments() -> Vec<f32> {
        let mut v: Vec<f32> = (0..220_000).map(|i| -120.0 + i as f32 * 0.001).collect();
        v.extend([
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
            -103.97,
            -104.0,
            88.72,
            89.0,
            f32::MAX,
            f32::MIN,
        ]);
        v
    }

    fn same_bits(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    fn check_all() {
        let x = arguments();
        let n = x.len();
        // Three rows of n values, 16-lane padded, each with its own bias.
        let stride = n.div_ceil(16) * 16 + 16;
        let feats = 3;
        let mut xs = vec![f32::NAN; feats * stride];
        for r in 0..feats {
            xs[r * stride..r * stride + n].copy_from_slice(&x);
        }
        let rows = Rows { feats, stride, n };
        let len = feats * stride;
        let (mut y, mut h, mut m) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        let biases = [0.375f32, -2.5, 0.0];
        for sigmoid in [false, true] {
            unsafe { apply(sigmoid, xs.as_ptr(), y.as_mut_ptr(), rows) };
            for r in 0..feats {
                for (&a, &got) in x.iter().zip(&y[r * stride..]) {
                    let want = if sigmoid { sigmoid1(a) } else { exp1(a) };
                    assert!(same_bits(got, want), "f({a:e}) = {got:e}, want {want:e}");
                }
            }
            let prod = if sigmoid {
                m.as_mut_ptr()
            } else {
                std::ptr::null_mut()
            };
            let (hp, yp) = (h.as_mut_ptr(), y.as_mut_ptr());
            unsafe { apply_biased(sigmoid, xs.as_ptr(), biases.as_ptr(), hp, yp, prod, rows) };
            for (r, &b) in biases.iter().enumerate() {
                for (i, &xi) in x.iter().enumerate() {
                    let (a, j) = (xi + b, r * stride + i);
                    let want = if sigmoid { sigmoid1(a) } else { exp1(a) };
                    assert!(same_bits(h[j], a));
                    assert!(same_bits(y[j], want), "biased f({a:e})");
                    if sigmoid {
                        assert!(same_bits(m[j], a * want), "swish({a:e})");
                    }
                }
            }
        }
    }

    /// The sigmoid's error against an f64 reference, in ulps of the f32
    /// result (subnormal results in units of the smallest normal's ulp).
    #[test]
    fn sigmoid_is_within_two_ulps() {
        let mut worst = (0.0f64, 0.0f32);
        for &x in &arguments() {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            let got = sigmoid1(x);
            if x.is_nan() {
                assert!(got.is_nan());
                continue;
            }
            let ulp = (want as f32).abs().max(f32::MIN_POSITIVE) as f64 * f32::EPSILON as f64;
            let e = (got as f64 - want).abs() / ulp;
            if e > worst.0 {
                worst = (e, x);
            }
        }
        eprintln!("sigmoid: max {:.3} ulp at {:e}", worst.0, worst.1);
        assert!(worst.0 <= 2.0, "{worst:?}");
    }

    /// The AVX-512 lanes give the scalar reference's bits, with gradual
    /// underflow and under flush-to-zero (as f32 sampling runs).
    #[test]
    fn vector_lanes_equal_the_scalar_reference() {
        if !available() {
            return;
        }
        check_all();
        #[cfg(target_arch = "x86_64")]
        #[allow(deprecated)]
        // SAFETY: sets and restores MXCSR's FTZ and DAZ bits on this thread.
        unsafe {
            use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
            let old = _mm_getcsr();
            _mm_setcsr(old | 0x8040);
            check_all();
            _mm_setcsr(old);
        }
    }
}
