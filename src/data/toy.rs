//! Seeded 2-D toy data sets for training and testing energy models: `toy`
//! draws `n` rows of two columns (`x0`, `x1`), with integer labels where the
//! set has natural classes. Each set below is a contract (the known densities
//! used for KL estimates are written from these definitions); `σ` is the
//! `noise` argument or the set's default, `N(0, I₂)` a pair of independent
//! standard normals, `U(a, b)` a uniform draw in `[a, b)`.
//!
//! | name | definition | default σ | label |
//! | --- | --- | --- | --- |
//! | `eight_gaussians` | `k ~ U{0..7}`; `x = 2·(cos(2πk/8), sin(2πk/8)) + σ·N(0, I₂)` | 0.1 | `k` |
//! | `two_moons` | `m ~ U{0, 1}`, `t ~ U(0, π)`; `p = (cos t, sin t)` if `m = 0`, `p = (1 − cos t, 0.5 − sin t)` if `m = 1`; `x = 2·(p − (0.5, 0.25)) + σ·N(0, I₂)` | 0.1 | `m` |
//! | `rings` | `r ~ U{0..3}`, `φ ~ U(0, 2π)`; `x = 0.75·(r + 1)·(cos φ, sin φ) + σ·N(0, I₂)` (radii 0.75, 1.5, 2.25, 3) | 0.08 | `r` |
//! | `swiss_roll` | `u ~ U(0, 1)`, `t = 1.5π·(1 + 2u)`; `x = (t·cos t, t·sin t)/5 + σ·N(0, I₂)` | 0.1 | none |
//! | `checkerboard` | `x0 ~ U(−2, 2)`, `B ~ U{0, 1}`; `x1 = U(0, 1) − 2B + (⌊x0⌋ mod 2)` (`rem_euclid`, so 0 or 1); then `x += σ·N(0, I₂)` if `σ > 0` | 0 | the cell, below |
//! | `pinwheel` | `k ~ U{0..4}`, `a = 1 + 0.3·z₀`, `b = σ·z₁` (`z ~ N(0, I₂)`); `θ = 2πk/5 + 0.25·exp(a)`; `x = 2·(a·cos θ − b·sin θ, a·sin θ + b·cos θ)`; σ is the tangential sd, no other noise | 0.1 | `k` |
//! | `spirals` | `s ~ U{0, 1}`, `t = √u · 3π` with `u ~ U(0, 1)`; `d = (−t·cos t, t·sin t)`, negated if `s = 1`; `x = d/3 + σ·N(0, I₂)` | 0.1 | `s` |
//!
//! **Checkerboard parity.** Before noise, `⌊x1⌋ ≡ ⌊x0⌋ (mod 2)`, so the
//! density is exactly 1/8 on each of the 8 unit cells of `[−2, 2)²` where
//! `⌊x0⌋ + ⌊x1⌋` is **even**, and 0 on the 8 odd cells. The label numbers
//! the cell of the noise-free point by `⌊x0⌋`, then `⌊x1⌋`:
//! `label = 2·(⌊x0⌋ + 2) + [⌊x1⌋ ≥ 0]`, i.e. (−2,−2)→0, (−2,0)→1, (−1,−1)→2,
//! (−1,1)→3, (0,−2)→4, (0,0)→5, (1,−1)→6, (1,1)→7 (pairs are `(⌊x0⌋, ⌊x1⌋)`).
//!
//! (The pinwheel rotates the features by `+θ`; FFJORD's `einsum` applies the
//! transpose, so its pinwheel is this one mirrored in `x1`. The spirals have
//! no uniform jitter; their only noise is `σ`, in the final coordinates.)
//!
//! **Randomness.** Everything is f64 and drawn from SM64 (`data::rng`) in
//! counter form with the stream seed `seed ^ fnv1a(name)`: row `i` (0-based)
//! reads the eight raw outputs `z_j = sm64_at(stream, 8i + j + 1)`,
//! `j = 0..8`, as `u_j = (z_j >> 11)·2⁻⁵³`. Slot 0 picks the class
//! (`floor(m·u₀)`, computed exactly in integers); slots 1–3 the shape
//! (`t`, `φ`, `u`; the checkerboard reads `x0` from slot 1, `B` from slot 2
//! and its in-cell offset from slot 3 with 52 bits, so `x1` is exact and
//! never rounds onto a cell edge); slots 4–5 the noise pair; slots 6–7
//! pinwheel's features. Normals are Box–Muller on a slot pair `(u, v)`:
//! `√(−2 ln(1 − u))·(cos 2πv, sin 2πv)`. So a set depends only on
//! `(name, n, noise, seed)`, is the same on every machine, and its first `m`
//! rows are the same for every `n ≥ m`.
//!
//! A name outside `TOY_NAMES`, `n` outside `1..=MAX_TOY_ROWS` and a negative
//! or non-finite `noise` are `DataError::Invalid` sentences.

use std::f64::consts::PI;

use super::rng::{fnv1a, sm64_at};
use super::{DataError, Dataset};

/// The toy data sets `toy` knows, in the order the module doc lists them.
pub const TOY_NAMES: &[&str] = &[
    "eight_gaussians",
    "two_moons",
    "rings",
    "swiss_roll",
    "checkerboard",
    "pinwheel",
    "spirals",
];

/// The most rows `toy` draws.
pub const MAX_TOY_ROWS: usize = 10_000_000;

/// Counter slots per row.
const SLOTS: u64 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    EightGaussians,
    TwoMoons,
    Rings,
    SwissRoll,
    Checkerboard,
    Pinwheel,
    Spirals,
}

impl Kind {
    fn named(name: &str) -> Option<Kind> {
        Some(match name {
            "eight_gaussians" => Kind::EightGaussians,
            "two_moons" => Kind::TwoMoons,
            "rings" => Kind::Rings,
            "swiss_roll" => Kind::SwissRoll,
            "checkerboard" => Kind::Checkerboard,
            "pinwheel" => Kind::Pinwheel,
            "spirals" => Kind::Spirals,
            _ => return None,
        })
    }

    fn default_noise(self) -> f64 {
        match self {
            Kind::Rings => 0.08,
            Kind::Checkerboard => 0.0,
            _ => 0.1,
        }
    }

    fn labelled(self) -> bool {
        self != Kind::SwissRoll
    }
}

/// The eight draws of one row.
struct Row {
    stream: u64,
    base: u64,
}

impl Row {
    fn raw(&self, j: u64) -> u64 {
        sm64_at(self.stream, self.base + j + 1)
    }

    /// `u_j` in `[0, 1)`, 53 bits.
    fn u(&self, j: u64) -> f64 {
        (self.raw(j) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `u_j` rounded down to 52 bits, so that adding it to an integer in
    /// `[−2, 2)` is exact.
    fn u52(&self, j: u64) -> f64 {
        (self.raw(j) >> 12) as f64 * (1.0 / (1u64 << 52) as f64)
    }

    /// `floor(m·u_j)`, exactly, for `m ≤ 8`.
    fn pick(&self, j: u64, m: u64) -> u64 {
        ((self.raw(j) >> 11) * m) >> 53
    }

    /// Two standard normals from slots `j`, `j + 1` (Box–Muller).
    fn normals(&self, j: u64) -> (f64, f64) {
        let r = (-2.0 * (1.0 - self.u(j)).ln()).sqrt();
        let (s, c) = (2.0 * PI * self.u(j + 1)).sin_cos();
        (r * c, r * s)
    }
}

/// Row `i`'s point and label.
fn point(kind: Kind, row: &Row, sigma: f64) -> ([f64; 2], i64) {
    let (n0, n1) = row.normals(4);
    let noisy = |x0: f64, x1: f64| [x0 + sigma * n0, x1 + sigma * n1];
    match kind {
        Kind::EightGaussians => {
            let k = row.pick(0, 8);
            let (s, c) = (2.0 * PI * k as f64 / 8.0).sin_cos();
            (noisy(2.0 * c, 2.0 * s), k as i64)
        }
        Kind::TwoMoons => {
            let m = row.pick(0, 2);
            let (s, c) = (PI * row.u(1)).sin_cos();
            let (p0, p1) = if m == 0 { (c, s) } else { (1.0 - c, 0.5 - s) };
            (noisy(2.0 * (p0 - 0.5), 2.0 * (p1 - 0.25)), m as i64)
        }
        Kind::Rings => {
            let r = row.pick(0, 4);
            let radius = 0.75 * (r + 1) as f64;
            let (s, c) = (2.0 * PI * row.u(1)).sin_cos();
            (noisy(radius * c, radius * s), r as i64)
        }
        Kind::SwissRoll => {
            let t = 1.5 * PI * (1.0 + 2.0 * row.u(1));
            let (s, c) = t.sin_cos();
            (noisy(t * c / 5.0, t * s / 5.0), 0)
        }
        Kind::Checkerboard => {
            let x0 = -2.0 + 4.0 * row.u(1);
            let c0 = x0.floor() as i64;
            let b = row.pick(2, 2) as i64;
            let c1 = c0.rem_euclid(2) - 2 * b;
            let x1 = c1 as f64 + row.u52(3);
            let label = 2 * (c0 + 2) + (1 - b);
            let x = if sigma > 0.0 { noisy(x0, x1) } else { [x0, x1] };
            (x, label)
        }
        Kind::Pinwheel => {
            let k = row.pick(0, 5);
            let (z0, z1) = row.normals(6);
            let (a, b) = (1.0 + 0.3 * z0, sigma * z1);
            let theta = 2.0 * PI * k as f64 / 5.0 + 0.25 * a.exp();
            let (s, c) = theta.sin_cos();
            ([2.0 * (a * c - b * s), 2.0 * (a * s + b * c)], k as i64)
        }
        Kind::Spirals => {
            let arm = row.pick(0, 2);
            let t = row.u(1).sqrt() * 3.0 * PI;
            let (s, c) = t.sin_cos();
            let (d0, d1) = (-c * t, s * t);
            let (d0, d1) = if arm == 0 { (d0, d1) } else { (-d0, -d1) };
            (noisy(d0 / 3.0, d1 / 3.0), arm as i64)
        }
    }
}

/// The noise `toy(name, n, None, seed)` draws with, for a known toy set.
pub fn default_noise(name: &str) -> Option<f64> {
    Kind::named(name).map(Kind::default_noise)
}

/// `n` rows of the toy data set `name` (one of `TOY_NAMES`, defined in the
/// module doc), with noise `noise` (`None`: the set's default) and the seed
/// `seed`. The `source` is `name(n=…, noise=…, seed=…)` with the noise used.
pub fn toy(name: &str, n: usize, noise: Option<f64>, seed: u64) -> Result<Dataset, DataError> {
    let kind = Kind::named(name).ok_or_else(|| {
        DataError::Invalid(format!(
            "unknown toy data set `{name}`: expected one of {}",
            TOY_NAMES.join(", ")
        ))
    })?;
    if n == 0 || n > MAX_TOY_ROWS {
        return Err(DataError::Invalid(format!(
            "expected between 1 and {MAX_TOY_ROWS} rows for the toy data set `{name}`, found {n}"
        )));
    }
    let sigma = match noise {
        Some(s) if !s.is_finite() || s < 0.0 => {
            return Err(DataError::Invalid(format!(
                "expected a finite noise ≥ 0 for the toy data set `{name}`, found {s}"
            )));
        }
        Some(s) => s,
        None => kind.default_noise(),
    };
    let stream = seed ^ fnv1a(name);
    let mut x = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(if kind.labelled() { n } else { 0 });
    for i in 0..n as u64 {
        let row = Row {
            stream,
            base: i * SLOTS,
        };
        let (p, label) = point(kind, &row, sigma);
        x.extend_from_slice(&p);
        if kind.labelled() {
            labels.push(label);
        }
    }
    Ok(Dataset {
        x,
        rows: n,
        dim: 2,
        columns: vec!["x0".into(), "x1".into()],
        labels: kind.labelled().then_some(labels),
        source: format!("{name}(n={n}, noise={sigma}, seed={seed})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(name: &str, n: usize, noise: Option<f64>) -> Dataset {
        toy(name, n, noise, 7).unwrap()
    }

    fn points(d: &Dataset) -> impl Iterator<Item = (f64, f64, Option<i64>)> + '_ {
        (0..d.rows).map(|i| {
            let r = d.row(i);
            (r[0], r[1], d.labels.as_ref().map(|l| l[i]))
        })
    }

    fn bits(d: &Dataset) -> Vec<u64> {
        d.x.iter().map(|v| v.to_bits()).collect()
    }

    /// `toy(name, n, noise, seed)` fails with a message containing `expect`.
    fn check(name: &str, n: usize, noise: Option<f64>, expect: &str) {
        let e = toy(name, n, noise, 0).unwrap_err().to_string();
        assert!(e.contains(expect), "{e:?} lacks {expect:?}");
    }

    /// How many of `counts` (per label) are zero.
    fn missing(d: &Dataset, classes: usize) -> usize {
        let mut counts = vec![0usize; classes];
        for &l in d.labels.as_ref().unwrap() {
            counts[l as usize] += 1;
        }
        counts.iter().filter(|&&c| c == 0).count()
    }

    #[test]
    fn deterministic_per_seed_and_prefix_stable() {
        for &name in TOY_NAMES {
            let a = toy(name, 300, None, 11).unwrap();
            let b = toy(name, 300, None, 11).unwrap();
            let c = toy(name, 300, None, 12).unwrap();
            let long = toy(name, 500, None, 11).unwrap();
            assert_eq!(bits(&a), bits(&b), "{name}");
            assert_eq!(a.labels, b.labels, "{name}");
            assert_ne!(bits(&a), bits(&c), "{name}");
            assert_eq!(bits(&a), bits(&long)[..600].to_vec(), "{name}");
            assert_eq!((a.rows, a.dim, a.x.len()), (300, 2, 600), "{name}");
            assert_eq!(a.columns, vec!["x0", "x1"]);
            assert!(a.x.iter().all(|v| v.is_finite()), "{name}");
            assert_eq!(a.labels.is_some(), name != "swiss_roll", "{name}");
        }
        let a = toy("rings", 10, Some(0.0), 3).unwrap();
        assert_eq!(a.source, "rings(n=10, noise=0, seed=3)");
    }

    #[test]
    fn refuses_bad_requests() {
        check(
            "moons",
            10,
            None,
            "unknown toy data set `moons`: expected one of eight_gaussians, two_moons, rings, swiss_roll, checkerboard, pinwheel, spirals",
        );
        check("rings", 0, None, "expected between 1 and 10000000 rows");
        check("rings", MAX_TOY_ROWS + 1, None, "found 10000001");
        check("rings", 5, Some(-0.1), "expected a finite noise ≥ 0");
        check("rings", 5, Some(f64::NAN), "found NaN");
        check("rings", 5, Some(f64::INFINITY), "found inf");
        assert!(toy("rings", 5, Some(0.0), 0).is_ok());
    }

    #[test]
    fn eight_gaussians_components_and_radius() {
        let n = 8000;
        let d = draw("eight_gaussians", n, None);
        assert_eq!(missing(&d, 8), 0);
        let mut sum = 0.0;
        for (x0, x1, k) in points(&d) {
            let t = 2.0 * PI * k.unwrap() as f64 / 8.0;
            let (dx, dy) = (x0 - 2.0 * t.cos(), x1 - 2.0 * t.sin());
            assert!((dx * dx + dy * dy).sqrt() < 0.1 * 6.0);
            sum += x0.hypot(x1);
        }
        // E|c + σz| = 2 + σ²/4 + O(σ⁴); its sd is about σ.
        let tol = 5.0 * 0.1 / (n as f64).sqrt() + 0.01;
        assert!((sum / n as f64 - 2.0).abs() < tol, "{}", sum / n as f64);
    }

    #[test]
    fn checkerboard_even_cells_numbered() {
        let d = draw("checkerboard", 4000, None);
        assert_eq!(missing(&d, 8), 0);
        let want = [
            (-2, -2),
            (-2, 0),
            (-1, -1),
            (-1, 1),
            (0, -2),
            (0, 0),
            (1, -1),
            (1, 1),
        ];
        for (x0, x1, l) in points(&d) {
            assert!((-2.0..2.0).contains(&x0) && (-2.0..2.0).contains(&x1));
            let cell = (x0.floor() as i64, x1.floor() as i64);
            assert_eq!((cell.0 + cell.1).rem_euclid(2), 0, "{x0} {x1}");
            assert_eq!(want[l.unwrap() as usize], cell);
        }
        // With noise the labels stay those of the noise-free cells.
        let noisy = draw("checkerboard", 4000, Some(0.01));
        assert_eq!(noisy.labels, d.labels);
        assert_ne!(bits(&noisy), bits(&d));
    }

    #[test]
    fn rings_radii() {
        let n = 4000;
        let d = draw("rings", n, None);
        assert_eq!(missing(&d, 4), 0);
        let (mut sum, mut count) = ([0.0; 4], [0usize; 4]);
        for (x0, x1, r) in points(&d) {
            let r = r.unwrap() as usize;
            sum[r] += x0.hypot(x1);
            count[r] += 1;
        }
        for r in 0..4 {
            let mean = sum[r] / count[r] as f64;
            let tol = 5.0 * 0.08 / (count[r] as f64).sqrt() + 0.01;
            assert!((mean - 0.75 * (r + 1) as f64).abs() < tol, "{r}: {mean}");
        }
        let exact = draw("rings", 500, Some(0.0));
        for (x0, x1, r) in points(&exact) {
            assert!((x0.hypot(x1) - 0.75 * (r.unwrap() + 1) as f64).abs() < 1e-12);
        }
    }

    #[test]
    fn two_moons_on_their_arcs() {
        let d = draw("two_moons", 2000, Some(0.0));
        assert_eq!(missing(&d, 2), 0);
        for (x0, x1, m) in points(&d) {
            let (p0, p1) = (x0 / 2.0 + 0.5, x1 / 2.0 + 0.25);
            if m == Some(0) {
                assert!((-3.0..=1.0).contains(&x0) && (-0.5..=1.5).contains(&x1));
                assert!((p0.hypot(p1) - 1.0).abs() < 1e-12);
            } else {
                assert!((-1.0..=3.0).contains(&x0) && (-1.5..=0.5).contains(&x1));
                assert!(((1.0 - p0).hypot(0.5 - p1) - 1.0).abs() < 1e-12);
            }
        }
        let noisy = draw("two_moons", 2000, None);
        assert!(noisy.x.iter().all(|v| v.abs() < 3.0 + 6.0 * 0.1));
    }

    #[test]
    fn swiss_roll_spirals_pinwheel_shapes() {
        let roll = draw("swiss_roll", 1000, Some(0.0));
        assert!(roll.labels.is_none());
        for (x0, x1, _) in points(&roll) {
            let t = 5.0 * x0.hypot(x1);
            assert!((1.5 * PI - 1e-9..=4.5 * PI + 1e-9).contains(&t));
            assert!((x0 - t * t.cos() / 5.0).abs() < 1e-9);
        }
        let sp = draw("spirals", 1000, Some(0.0));
        assert_eq!(missing(&sp, 2), 0);
        for (x0, x1, s) in points(&sp) {
            let t = 3.0 * x0.hypot(x1);
            let sign = if s == Some(0) { 1.0 } else { -1.0 };
            assert!(t <= 3.0 * PI + 1e-9);
            assert!((x0 - sign * -t.cos() * t / 3.0).abs() < 1e-9);
            assert!((x1 - sign * t.sin() * t / 3.0).abs() < 1e-9);
        }
        let n = 5000;
        let pw = draw("pinwheel", n, None);
        assert_eq!(missing(&pw, 5), 0);
        // |x|/2 = √(a² + b²) with a ~ N(1, 0.3²), b ~ N(0, 0.1²): mean ≈ 1.005.
        let mean = points(&pw).map(|(a, b, _)| a.hypot(b) / 2.0).sum::<f64>() / n as f64;
        assert!((mean - 1.005).abs() < 5.0 * 0.3 / (n as f64).sqrt() + 0.005);
        // With no tangential noise every point sits on its arm's curve.
        // (`a` is negative, so `|x|/2 = −a`, once in a few thousand draws.)
        for (x0, x1, k) in points(&draw("pinwheel", 500, Some(0.0))) {
            let on_arm = |a: f64| {
                let theta = 2.0 * PI * k.unwrap() as f64 / 5.0 + 0.25 * a.exp();
                (x0 - 2.0 * a * theta.cos()).abs() < 1e-9
                    && (x1 - 2.0 * a * theta.sin()).abs() < 1e-9
            };
            let r = x0.hypot(x1) / 2.0;
            assert!(on_arm(r) || on_arm(-r), "{x0} {x1}");
        }
    }
}
