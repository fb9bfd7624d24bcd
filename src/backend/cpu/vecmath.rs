//! Whole-buffer f32 `exp` and `sigmoid` compiled by rustc for AVX-512 and
//! called from the tile program when a materialised node is one of these
//! ops applied to a buffer. Same algorithm and constants as the inline
//! Cranelift code in `math.rs` (so the same error bounds), but 512-bit wide:
//! Cranelift's x64 backend only emits 128-bit vectors. Used only when the
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

#[cfg(test)]
fn sigmoid1(x: f32) -> f32 {
    let e = exp1(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 { r } else { e * r }
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
/// same operations in the same order, except the final scaling by 2ⁿ: one
/// `vscalefps` instead of two multiplications by 2^⌊n/2⌋ and 2^⌈n/2⌉. Both
/// round once (the first multiplication of the pair is exact for n ≥ −150),
/// overflow to ∞ alike and flush alike under FTZ, so the results are the
/// same bits (`tests::vector_lanes_equal_the_scalar_reference`) — with a
/// third fewer instructions on the two ports 512-bit code may use.
#[cfg(target_arch = "x86_64")]
mod lanes {
    use super::{LN2_HI, LN2_LO, LOG2E, MAGIC, TAYLOR};
    use std::arch::x86_64::*;

    #[inline(always)]
    pub(super) unsafe fn exp16(x: __m512) -> __m512 {
        // SAFETY: callers run with AVX-512F and FMA (`available()`).
        unsafe {
            let s = _mm512_set1_ps;
            // max(lo, x) and min(hi, ·) return x when x is NaN, as clamp does.
            let x = _mm512_min_ps(s(89.0), _mm512_max_ps(s(-104.0), x));
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
    pub(super) unsafe fn sigmoid16(x: __m512) -> __m512 {
        // SAFETY: as `exp16`.
        unsafe {
            // −|x| by setting the sign bit (integer OR: AVX-512F has no
            // float OR without DQ).
            let sign = _mm512_set1_epi32(i32::MIN);
            let neg_abs = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x), sign));
            let e = exp16(neg_abs);
            let r = _mm512_div_ps(_mm512_set1_ps(1.0), _mm512_add_ps(_mm512_set1_ps(1.0), e));
            // x ≥ 0 keeps r; otherwise (x < 0 or NaN) e·r, as `sigmoid1`.
            let nonneg = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_setzero_ps());
            _mm512_mask_blend_ps(nonneg, _mm512_mul_ps(e, r), r)
        }
    }

    /// Lanes `i..i+16` (or the `n − i` left, masked) of a slice.
    #[inline(always)]
    pub(super) fn mask(i: usize, n: usize) -> __mmask16 {
        let left = n - i;
        if left >= 16 {
            0xffff
        } else {
            ((1u32 << left) - 1) as __mmask16
        }
    }
}

/// Applies `f` to 16 lanes at a time of `x`, storing into each of `outs`
/// the lanes `f` returns for it (a masked tail at the end).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn map16<const K: usize>(
    x: &[f32],
    mut outs: [&mut [f32]; K],
    f: impl Fn(std::arch::x86_64::__m512) -> [std::arch::x86_64::__m512; K],
) {
    use std::arch::x86_64::*;
    let n = x.len();
    let mut i = 0;
    while i < n {
        let m = lanes::mask(i, n);
        // SAFETY: lanes past the mask are neither read nor written; every
        // output has x's length (callers' slices come from the same n).
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(i));
            let r = f(v);
            for (o, rv) in outs.iter_mut().zip(r) {
                _mm512_mask_storeu_ps(o.as_mut_ptr().add(i), m, rv);
            }
        }
        i += 16;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn exp_avx512(x: &[f32], y: &mut [f32]) {
    // SAFETY: the features are enabled on this function.
    unsafe { map16(x, [y], |v| [lanes::exp16(v)]) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn sigmoid_avx512(x: &[f32], y: &mut [f32]) {
    // SAFETY: as above.
    unsafe { map16(x, [y], |v| [lanes::sigmoid16(v)]) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn biased_avx512(sigmoid: bool, x: &[f32], b: f32, h: &mut [f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    // SAFETY: as above.
    unsafe {
        let bv = _mm512_set1_ps(b);
        if sigmoid {
            map16(x, [h, y], |v| {
                let a = _mm512_add_ps(v, bv);
                [a, lanes::sigmoid16(a)]
            })
        } else {
            map16(x, [h, y], |v| {
                let a = _mm512_add_ps(v, bv);
                [a, lanes::exp16(a)]
            })
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn swish_avx512(x: &[f32], b: f32, h: &mut [f32], y: &mut [f32], m: &mut [f32]) {
    use std::arch::x86_64::*;
    // SAFETY: as above.
    unsafe {
        let bv = _mm512_set1_ps(b);
        map16(x, [h, y, m], |v| {
            let a = _mm512_add_ps(v, bv);
            let s = lanes::sigmoid16(a);
            [a, s, _mm512_mul_ps(a, s)]
        })
    }
}

/// `h = x + b`, `y = f(h)` elementwise in one pass (a layer's bias and its
/// activation), and `m = h · y` when `m` is not null (swish); bit-identical
/// to an add loop, [`apply`] and a product loop.
///
/// # Safety
/// `available()` must be true; `x`, `h`, `y` (and `m` unless null) must be
/// valid for `n` elements, the outputs disjoint from each other and from `x`;
/// `m` only with `sigmoid`.
pub(crate) unsafe fn apply_biased(
    sigmoid: bool,
    x: *const f32,
    b: f32,
    h: *mut f32,
    y: *mut f32,
    m: *mut f32,
    n: usize,
) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        let xs = std::slice::from_raw_parts(x, n);
        let hs = std::slice::from_raw_parts_mut(h, n);
        let ys = std::slice::from_raw_parts_mut(y, n);
        if m.is_null() {
            biased_avx512(sigmoid, xs, b, hs, ys)
        } else {
            // invariant: the planner fuses products with sigmoid only.
            assert!(sigmoid, "exp products are not fused");
            let ms = std::slice::from_raw_parts_mut(m, n);
            swish_avx512(xs, b, hs, ys, ms)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (sigmoid, x, b, h, y, m, n);
        // invariant: callers dispatch only when `available()`.
        unreachable!()
    }
}

/// `y = f(x)` elementwise; `sigmoid` selects the function. The slices may be
/// the same memory only if identical (in place).
///
/// # Safety
/// `available()` must be true; `x` and `y` must be valid for `n` elements.
pub(crate) unsafe fn apply(sigmoid: bool, x: *const f32, y: *mut f32, n: usize) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        let xs = std::slice::from_raw_parts(x, n);
        let ys = std::slice::from_raw_parts_mut(y, n);
        if sigmoid {
            sigmoid_avx512(xs, ys)
        } else {
            exp_avx512(xs, ys)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (sigmoid, x, y, n);
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
        let (mut y, mut h, mut m) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for sigmoid in [false, true] {
            unsafe { apply(sigmoid, x.as_ptr(), y.as_mut_ptr(), n) };
            for (&a, &got) in x.iter().zip(&y) {
                let want = if sigmoid { sigmoid1(a) } else { exp1(a) };
                assert!(same_bits(got, want), "f({a:e}) = {got:e}, want {want:e}");
            }
            let b = 0.375;
            let prod = if sigmoid {
                m.as_mut_ptr()
            } else {
                std::ptr::null_mut()
            };
            let (hp, yp) = (h.as_mut_ptr(), y.as_mut_ptr());
            unsafe { apply_biased(sigmoid, x.as_ptr(), b, hp, yp, prod, n) };
            for i in 0..n {
                let a = x[i] + b;
                let want = if sigmoid { sigmoid1(a) } else { exp1(a) };
                assert!(same_bits(h[i], a));
                assert!(same_bits(y[i], want), "biased f({a:e})");
                if sigmoid {
                    assert!(same_bits(m[i], a * want), "swish({a:e})");
                }
            }
        }
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
