//! MMD², grid quadrature, held-out NLL and KL against closed forms: Gaussian
//! partition functions and entropies, exact models of the toy data sets, and
//! the checkerboard generator's formula sampled directly.

use super::*;
use crate::sample::rng::ChainRng;

/// `rows × dim` standard normals, shifted by `shift` in every coordinate.
fn normals(seed: u64, rows: usize, dim: usize, shift: f64) -> Vec<f64> {
    let mut r = ChainRng::new(seed, 0);
    (0..rows * dim).map(|_| r.normal() + shift).collect()
}

/// E(x) = ½‖x‖²/σ², per point, as a batch energy.
fn gauss(sigma: f64) -> impl FnMut(&[f64], usize, &mut [f64]) -> Result<(), String> {
    move |x: &[f64], batch: usize, e: &mut [f64]| {
        for b in 0..batch {
            e[b] = 0.5 * (x[2 * b].powi(2) + x[2 * b + 1].powi(2)) / (sigma * sigma);
        }
        Ok(())
    }
}

/// The energy −log p of a known density, floored at `cap` where p = 0.
fn exact(
    name: &str,
    noise: f64,
    cap: f64,
) -> impl FnMut(&[f64], usize, &mut [f64]) -> Result<(), String> {
    let lp = known_log_density(name, noise).unwrap();
    move |x: &[f64], batch: usize, e: &mut [f64]| {
        for b in 0..batch {
            e[b] = (-lp([x[2 * b], x[2 * b + 1]])).min(cap);
        }
        Ok(())
    }
}

const TOY: Grid = Grid {
    lo: [-4.0, -4.0],
    hi: [4.0, 4.0],
    n: 200,
};

#[test]
fn same_distribution_mmd_is_small_shifted_is_positive() {
    let a = normals(1, 500, 2, 0.0);
    let b = normals(2, 500, 2, 0.0);
    let c = normals(3, 500, 2, 1.0);
    let same = mmd2(&a, &b, 2, None);
    let shifted = mmd2(&a, &c, 2, None);
    assert!(shifted.mmd2 > 0.05, "{shifted:?}");
    assert!(
        same.mmd2.abs() < 0.1 * shifted.mmd2,
        "{same:?} vs {shifted:?}"
    );
    // Symmetric, bandwidth included.
    let back = mmd2(&c, &a, 2, None);
    assert_eq!(back.bandwidth, shifted.bandwidth);
    assert!((back.mmd2 - shifted.mmd2).abs() < 1e-12);
    // A given bandwidth is used as given.
    assert_eq!(mmd2(&a, &c, 2, Some(0.7)).bandwidth, 0.7);
    // The noise floor is the halves' MMD² at that bandwidth, small too.
    let floor = mmd_noise_floor(&a, 2, shifted.bandwidth);
    assert_eq!(
        floor,
        mmd2(&a[..500], &a[500..], 2, Some(shifted.bandwidth)).mmd2
    );
    assert!(floor.abs() < 0.1 * shifted.mmd2, "{floor}");
}

#[test]
fn median_bandwidth_sanity() {
    // Pooled {0, 1, 3}: distances 1, 3, 2.
    assert_eq!(median_bandwidth(&[0.0, 1.0], &[3.0], 1), 2.0);
    // Pooled {0, 1, 3, 10}: 1, 2, 3, 7, 9, 10 → (3 + 7)/2.
    assert_eq!(median_bandwidth(&[0.0, 1.0], &[3.0, 10.0], 1), 5.0);
    // All equal: no scale, so 1.
    assert_eq!(median_bandwidth(&[2.0, 2.0], &[2.0], 1), 1.0);
    // Two independent N(0, I₂) points are √2·Rayleigh apart: median 2√(ln 2).
    let (a, b) = (normals(4, 800, 2, 0.0), normals(5, 800, 2, 0.0));
    let h = median_bandwidth(&a, &b, 2);
    assert!((h / (2.0 * 2f64.ln().sqrt()) - 1.0).abs() < 0.03, "{h}");
}

#[test]
fn mmd_caps_rows_and_degenerate_inputs_are_nan() {
    // Rows past MMD_MAX_ROWS do not count.
    let a = normals(6, MMD_MAX_ROWS, 1, 0.0);
    let mut long = a.clone();
    long.extend([1e6; 50]);
    let b = normals(7, 20, 1, 0.5);
    assert_eq!(mmd2(&long, &b, 1, None), mmd2(&a, &b, 1, None));
    let ok = normals(8, 10, 2, 0.0);
    assert!(mmd2(&ok, &ok[..2], 2, None).mmd2.is_nan()); // one row
    assert!(mmd2(&ok, &ok, 0, None).mmd2.is_nan()); // no dimension
    assert!(mmd2(&ok, &ok, 2, Some(0.0)).mmd2.is_nan());
    assert!(mmd2(&ok, &ok, 2, Some(f64::NAN)).mmd2.is_nan());
    let mut bad = ok.clone();
    bad[3] = f64::NAN;
    let m = mmd2(&bad, &ok, 2, None);
    assert!(m.mmd2.is_nan() && m.bandwidth.is_finite());
    bad[3] = f64::INFINITY;
    assert!(mmd2(&ok, &bad, 2, None).mmd2.is_nan());
    assert!(mmd_noise_floor(&ok[..2], 2, 1.0).is_nan());
}

/// One quadrature case: log Z of `energy` on `grid` within `tol` of `want`.
fn check(
    name: &str,
    grid: Grid,
    mut energy: impl FnMut(&[f64], usize, &mut [f64]) -> Result<(), String>,
    want: f64,
    tol: f64,
) {
    let d = grid_density(&grid, &mut energy).unwrap();
    assert!(
        (d.log_z - want).abs() < tol,
        "{name}: log Z {} want {want}",
        d.log_z
    );
    // The log density integrates to 1.
    let mass: f64 = d.log_p.iter().map(|v| v.exp()).sum::<f64>() * grid.cell_area();
    assert!((mass - 1.0).abs() < 1e-9, "{name}: mass {mass}");
}

#[test]
fn grid_log_z_matches_closed_forms() {
    let wide = Grid {
        lo: [-8.0, -8.0],
        hi: [8.0, 8.0],
        n: 200,
    };
    let unit = Grid {
        lo: [0.0, 0.0],
        hi: [1.0, 2.0],
        n: 7,
    };
    let tau = 2.0 * PI;
    check("standard normal", wide, gauss(1.0), tau.ln(), 1e-6);
    check("sd 0.5", wide, gauss(0.5), (tau * 0.25).ln(), 1e-6);
    // More cells than one batch (301² > 65536).
    let fine = Grid { n: 301, ..wide };
    check("two batches", fine, gauss(1.0), tau.ln(), 1e-6);
    let flat = |_: &[f64], b: usize, e: &mut [f64]| {
        e[..b].fill(3.0);
        Ok(())
    };
    check("constant", unit, flat, 2f64.ln() - 3.0, 1e-12);
    // Huge energies are no problem for the shifted logsumexp.
    let far = |x: &[f64], b: usize, e: &mut [f64]| {
        for k in 0..b {
            e[k] = 1e4 + 0.5 * (x[2 * k].powi(2) + x[2 * k + 1].powi(2));
        }
        Ok(())
    };
    check("shifted by 1e4", wide, far, tau.ln() - 1e4, 1e-6);
}

#[test]
fn grid_batches_are_bounded_and_errors_name_the_point() {
    let grid = Grid {
        lo: [-1.0, -1.0],
        hi: [1.0, 1.0],
        n: 300,
    };
    let mut calls = Vec::new();
    let mut e = |x: &[f64], b: usize, out: &mut [f64]| {
        assert_eq!(x.len(), 2 * b);
        assert_eq!(out.len(), b);
        calls.push(b);
        out.fill(0.0);
        Ok(())
    };
    grid_density(&grid, &mut e).unwrap();
    assert_eq!(calls, vec![GRID_BATCH, 300 * 300 - GRID_BATCH]);

    let mut hole = |x: &[f64], b: usize, out: &mut [f64]| {
        for k in 0..b {
            out[k] = if x[2 * k] > 0.99 && x[2 * k + 1] < -0.99 {
                f64::INFINITY
            } else {
                0.0
            };
        }
        Ok(())
    };
    let err = grid_density(&grid, &mut hole).unwrap_err();
    assert!(err.contains("inf at (0.99"), "{err}");
    assert!(err.contains("cell 299, 0"), "{err}");
    // An energy that writes nothing is caught too.
    let mut lazy = |_: &[f64], _: usize, _: &mut [f64]| Ok(());
    assert!(grid_density(&grid, &mut lazy).unwrap_err().contains("NaN"));
    let mut failing = |_: &[f64], _: usize, _: &mut [f64]| Err("kernel failed".to_string());
    assert_eq!(
        grid_density(&grid, &mut failing).unwrap_err(),
        "kernel failed"
    );
    for bad in [
        Grid { n: 0, ..grid },
        Grid {
            n: GRID_MAX_N + 1,
            ..grid
        },
        Grid {
            hi: [-1.0, 1.0],
            ..grid
        },
        Grid {
            lo: [f64::NEG_INFINITY, -1.0],
            ..grid
        },
        Grid {
            lo: [-1e308, -1.0],
            hi: [1e308, 1.0],
            ..grid
        },
    ] {
        assert!(grid_density(&bad, &mut gauss(1.0)).is_err(), "{bad:?}");
    }
}

#[test]
fn heldout_nll_of_a_gaussian_is_its_entropy() {
    let grid = Grid {
        lo: [-8.0, -8.0],
        hi: [8.0, 8.0],
        n: 200,
    };
    let d = grid_density(&grid, &mut gauss(1.0)).unwrap();
    let x = normals(9, 20000, 2, 0.0);
    let mut e = vec![0.0; 20000];
    gauss(1.0)(&x, 20000, &mut e).unwrap();
    let entropy = 1.0 + (2.0 * PI).ln();
    let nll = heldout_nll(d.log_z, &e);
    assert!((nll - entropy).abs() < 0.03, "{nll} vs {entropy}");
    assert!(heldout_nll(d.log_z, &[]).is_nan());
}

#[test]
fn kl_of_exact_models_is_zero_and_of_wrong_ones_positive() {
    let normal = grid_density(&TOY, &mut gauss(1.0)).unwrap();
    let cases = [("eight_gaussians", 0.1), ("checkerboard", 0.0)];
    for (name, noise) in cases {
        let lp = known_log_density(name, noise).unwrap();
        let model = grid_density(&TOY, &mut exact(name, noise, 40.0)).unwrap();
        let kl = kl_data_model(&model, &*lp);
        assert!(kl.abs() < 1e-3, "{name}: exact model KL {kl}");
        let wrong = kl_data_model(&normal, &*lp);
        assert!(wrong > 0.5, "{name}: standard normal KL {wrong}");
    }
    // Densities without mass on the grid, or undefined ones, give NaN.
    let away = Grid {
        lo: [10.0, 10.0],
        hi: [11.0, 11.0],
        n: 10,
    };
    let d = grid_density(&away, &mut gauss(1.0)).unwrap();
    let board = known_log_density("checkerboard", 0.0).unwrap();
    assert!(kl_data_model(&d, &*board).is_nan());
    assert!(kl_data_model(&normal, &|_| f64::NAN).is_nan());
}

#[test]
fn known_densities_normalise_and_reject_bad_names() {
    for (name, noise) in [("eight_gaussians", 0.1), ("eight_gaussians", 0.5)] {
        let lp = known_log_density(name, noise).unwrap();
        let mass: f64 = (0..TOY.cells())
            .map(|k| lp(TOY.centre(k)).exp())
            .sum::<f64>()
            * TOY.cell_area();
        assert!((mass - 1.0).abs() < 1e-4, "{name} {noise}: {mass}");
    }
    let lp = known_log_density("eight_gaussians", 0.1).unwrap();
    let peak = -(8.0f64).ln() - (2.0 * PI * 0.01).ln();
    assert!((lp([2.0, 0.0]) - peak).abs() < 1e-9);
    assert!((lp([0.0, -2.0]) - peak).abs() < 1e-9);
    assert!(lp([40.0, 0.0]).is_finite());
    assert_eq!(lp([f64::INFINITY, 0.0]), f64::NEG_INFINITY);
    assert!(known_log_density("eight_gaussians", 0.0).is_none());
    assert!(known_log_density("checkerboard", 0.1).is_none());
    assert!(known_log_density("two_moons", 0.1).is_none());
}

/// The generator written for `checkerboard`: x₀ = U(−2, 2);
/// x₁ = U(0, 1) − 2B, B ∈ {0, 1}; x₁ += rem_euclid(⌊x₀⌋, 2). Every sample
/// must land where the density is positive, and every positive square must
/// be hit about equally often.
#[test]
fn checkerboard_density_matches_the_generator_formula() {
    let lp = known_log_density("checkerboard", 0.0).unwrap();
    let mut r = ChainRng::new(10, 0);
    let mut hits = std::collections::BTreeMap::new();
    let n = 40000;
    for _ in 0..n {
        let x0 = r.uniform() * 4.0 - 2.0;
        let b = if r.uniform() < 0.5 { 0.0 } else { 1.0 };
        let x1 = r.uniform() - 2.0 * b + x0.floor().rem_euclid(2.0);
        assert_eq!(lp([x0, x1]), -(8.0f64).ln(), "({x0}, {x1})");
        *hits
            .entry((x0.floor() as i64, x1.floor() as i64))
            .or_insert(0usize) += 1;
    }
    let cells: Vec<(i64, i64)> = hits.keys().copied().collect();
    assert_eq!(
        cells,
        vec![
            (-2, -2),
            (-2, 0),
            (-1, -1),
            (-1, 1),
            (0, -2),
            (0, 0),
            (1, -1),
            (1, 1)
        ]
    );
    for (c, h) in &hits {
        let f = *h as f64 / n as f64;
        assert!((f - 0.125).abs() < 0.01, "{c:?}: {f}");
    }
    // The density is positive on exactly those eight unit squares.
    let positive = (0..TOY.cells())
        .filter(|&k| lp(TOY.centre(k)).is_finite())
        .count();
    assert_eq!(positive, 8 * 25 * 25);
}
