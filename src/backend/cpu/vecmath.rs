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

#[inline(always)]
fn exp1(x: f32) -> f32 {
    let x = x.clamp(-104.0, 89.0);
    let t = x.mul_add(LOG2E, MAGIC);
    let nf = t - MAGIC;
    let n = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = nf.mul_add(-LN2_HI, x);
    let r = nf.mul_add(-LN2_LO, r);
    // Taylor coefficients 1/k!, k = 7 … 0.
    let mut p: f32 = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p.mul_add(r, c);
    }
    let n1 = n >> 1;
    let n2 = n - n1;
    let s1 = f32::from_bits(((n1 + 127) << 23) as u32);
    let s2 = f32::from_bits(((n2 + 127) << 23) as u32);
    p * s1 * s2
}

#[inline(always)]
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn exp_avx512(x: &[f32], y: &mut [f32]) {
    for (d, &v) in y.iter_mut().zip(x) {
        *d = exp1(v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn sigmoid_avx512(x: &[f32], y: &mut [f32]) {
    for (d, &v) in y.iter_mut().zip(x) {
        *d = sigmoid1(v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn biased_avx512(sigmoid: bool, x: &[f32], b: f32, h: &mut [f32], y: &mut [f32]) {
    if sigmoid {
        for ((d, p), &v) in y.iter_mut().zip(h.iter_mut()).zip(x) {
            let a = v + b;
            *p = a;
            *d = sigmoid1(a);
        }
    } else {
        for ((d, p), &v) in y.iter_mut().zip(h.iter_mut()).zip(x) {
            let a = v + b;
            *p = a;
            *d = exp1(a);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn swish_avx512(x: &[f32], b: f32, h: &mut [f32], y: &mut [f32], m: &mut [f32]) {
    for (((d, p), q), &v) in y.iter_mut().zip(h.iter_mut()).zip(m.iter_mut()).zip(x) {
        let a = v + b;
        let s = sigmoid1(a);
        *p = a;
        *d = s;
        *q = a * s;
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
