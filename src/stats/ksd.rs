//! Kernel Stein discrepancy (Liu, Lee & Jordan 2016; Gorham & Mackey 2017)
//! between a sample and an unnormalised density p ∝ exp(−E), from the
//! score s = −∇ₓE alone: no log Z, no samples of p.
//!
//! With the inverse multi-quadric kernel k(x, y) = (c² + ‖x − y‖²)^(−1/2)
//! (which, unlike the RBF kernel, detects non-convergence; Gorham & Mackey),
//! the Stein kernel is
//!
//! u(x, y) = s(x)ᵀs(y)·k + s(x)ᵀ∇_y k + s(y)ᵀ∇_x k + tr ∇_x∇_y k,
//!
//! and KSD² = E_{x,y ~ sample}[u(x, y)] is 0 exactly when the sample's law is
//! p. [`ksd2_imq`] is the unbiased U-statistic over distinct pairs (so it can
//! be slightly negative when the sample fits). Like `eval`, everything is a
//! pure, deterministic f64 function; points are batch-major (`rows × dim`).

/// [`ksd2_imq`] uses at most this many rows (the first ones; the cost is
/// quadratic).
pub const KSD_MAX_ROWS: usize = 4000;

/// The Stein kernel u(x, y) of the IMQ kernel (c² + ‖x − y‖²)^(−1/2), given
/// the scores `sx` = s(x), `sy` = s(y).
pub fn stein_imq(x: &[f64], y: &[f64], sx: &[f64], sy: &[f64], c: f64) -> f64 {
    const BETA: f64 = -0.5;
    let d = x.len() as f64;
    let (mut r2, mut ss, mut sr) = (0.0, 0.0, 0.0);
    for i in 0..x.len() {
        let r = x[i] - y[i];
        r2 += r * r;
        ss += sx[i] * sy[i];
        // (s(y) − s(x))ᵀ r: the two cross terms share q^(β−1)·2β.
        sr += (sy[i] - sx[i]) * r;
    }
    let q = c * c + r2;
    let k = q.powf(BETA);
    let k1 = k / q; // q^(β−1)
    let k2 = k1 / q; // q^(β−2)
    ss * k + 2.0 * BETA * k1 * sr - 2.0 * BETA * (d * k1 + 2.0 * (BETA - 1.0) * k2 * r2)
}

/// The U-statistic KSD² of the sample `x` (`rows × dim`) against the
/// density whose score at each row is `score` (`rows × dim`, s = −∇ₓE),
/// with the IMQ kernel of scale `c`: Σ_{i≠j} u(xᵢ, xⱼ)/(n(n−1)) over the
/// first [`KSD_MAX_ROWS`] rows. NaN when `dim` is 0, fewer than 2 rows,
/// mismatched lengths, `c` not a positive finite number, or a non-finite
/// value among the rows used.
pub fn ksd2_imq(x: &[f64], score: &[f64], dim: usize, c: f64) -> f64 {
    let rows = x.len().checked_div(dim).unwrap_or(0);
    if rows < 2 || score.len() != x.len() || x.len() != rows * dim || !(c > 0.0 && c.is_finite()) {
        return f64::NAN;
    }
    let n = rows.min(KSD_MAX_ROWS);
    let (x, s) = (&x[..n * dim], &score[..n * dim]);
    if x.iter().chain(s).any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    fn row(v: &[f64], i: usize, dim: usize) -> &[f64] {
        &v[i * dim..(i + 1) * dim]
    }
    let mut sum = 0.0;
    for i in 0..n {
        let (xi, si) = (row(x, i, dim), row(s, i, dim));
        for j in i + 1..n {
            sum += stein_imq(xi, row(x, j, dim), si, row(s, j, dim), c);
        }
    }
    2.0 * sum / (n as f64 * (n as f64 - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::ChainRng;

    /// u(x, y) by finite differences of k: sxᵀsy k + sxᵀ∇_y k + syᵀ∇_x k
    /// + Σᵢ ∂²k/∂xᵢ∂yᵢ.
    fn brute(x: &[f64], y: &[f64], sx: &[f64], sy: &[f64], c: f64) -> f64 {
        let k = |a: &[f64], b: &[f64]| {
            let r2: f64 = a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum();
            (c * c + r2).powf(-0.5)
        };
        let h = 1e-4;
        let shift = |v: &[f64], i: usize, by: f64| {
            let mut w = v.to_vec();
            w[i] += by;
            w
        };
        let mut u = sx.iter().zip(sy).map(|(a, b)| a * b).sum::<f64>() * k(x, y);
        for i in 0..x.len() {
            let dkx = (k(&shift(x, i, h), y) - k(&shift(x, i, -h), y)) / (2.0 * h);
            let dky = (k(x, &shift(y, i, h)) - k(x, &shift(y, i, -h))) / (2.0 * h);
            u += sx[i] * dky + sy[i] * dkx;
            let (xp, xm) = (shift(x, i, h), shift(x, i, -h));
            let (yp, ym) = (shift(y, i, h), shift(y, i, -h));
            u += (k(&xp, &yp) - k(&xp, &ym) - k(&xm, &yp) + k(&xm, &ym)) / (4.0 * h * h);
        }
        u
    }

    #[test]
    fn stein_kernel_matches_finite_differences_and_is_symmetric() {
        let mut rng = ChainRng::new(7, 0);
        for d in [1, 2, 5] {
            for _ in 0..20 {
                let mut v = |n: usize| (0..n).map(|_| rng.normal()).collect::<Vec<f64>>();
                let (x, y, sx, sy) = (v(d), v(d), v(d), v(d));
                for c in [0.5, 1.0, 2.0] {
                    let u = stein_imq(&x, &y, &sx, &sy, c);
                    let b = brute(&x, &y, &sx, &sy, c);
                    assert!(
                        (u - b).abs() < 1e-6 * (1.0 + b.abs()),
                        "d {d} c {c}: {u} vs {b}"
                    );
                    let swapped = stein_imq(&y, &x, &sy, &sx, c);
                    assert!((u - swapped).abs() < 1e-14 * (1.0 + u.abs()));
                }
            }
        }
    }

    /// KSD² of `n` draws of N(shift, scale²I) in `d` dimensions against
    /// N(0, I) (score −x).
    fn ksd_of(seed: u64, n: usize, d: usize, shift: f64, scale: f64) -> f64 {
        let mut rng = ChainRng::new(seed, 0);
        let x: Vec<f64> = (0..n * d).map(|_| shift + scale * rng.normal()).collect();
        let s: Vec<f64> = x.iter().map(|v| -v).collect();
        ksd2_imq(&x, &s, d, 1.0)
    }

    #[test]
    fn exact_samples_give_zero_and_wrong_ones_a_clear_excess() {
        let reps = 20;
        let stats = |shift: f64, scale: f64| {
            let v: Vec<f64> = (0..reps)
                .map(|r| ksd_of(100 + r, 300, 2, shift, scale))
                .collect();
            let m = v.iter().sum::<f64>() / reps as f64;
            let sd =
                (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (reps as f64 - 1.0)).sqrt();
            (m, sd)
        };
        let (m0, sd0) = stats(0.0, 1.0);
        let se0 = sd0 / (reps as f64).sqrt();
        assert!(m0.abs() < 3.0 * se0, "exact: {m0} ± {se0}");
        for (shift, scale) in [(0.5, 1.0), (0.0, 1.5), (0.0, 0.6)] {
            // Clearly larger: beyond the exact samples' spread tenfold, and
            // far beyond the standard error of the difference.
            let (m, sd) = stats(shift, scale);
            let se = (se0 * se0 + sd * sd / reps as f64).sqrt();
            assert!(
                m > m0 + 10.0 * sd0 && m - m0 > 10.0 * se,
                "shift {shift} scale {scale}: {m} ± {sd} vs {m0} ± {sd0}"
            );
        }
    }

    #[test]
    fn degenerate_inputs_give_nan() {
        assert!(ksd2_imq(&[0.0, 1.0], &[0.0, -1.0], 2, 1.0).is_nan());
        assert!(ksd2_imq(&[0.0, 1.0], &[0.0], 1, 1.0).is_nan());
        assert!(ksd2_imq(&[0.0, 1.0], &[0.0, -1.0], 1, 0.0).is_nan());
        assert!(ksd2_imq(&[0.0, f64::NAN], &[0.0, 1.0], 1, 1.0).is_nan());
        assert!(ksd2_imq(&[], &[], 0, 1.0).is_nan());
    }
}
