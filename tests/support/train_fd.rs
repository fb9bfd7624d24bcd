//! Shared pieces of the training gradient tests (`tests/train.rs`,
//! `tests/concepts.rs`): an energy's parameters as one flat vector, the
//! nearest reference row of each point, and the finite-difference check of
//! a whole loss against the trainer's analytic θ-gradient.

#![allow(dead_code)]

use ebm::runtime::CompiledEnergy;

pub fn param_vec(e: &CompiledEnergy) -> Vec<f64> {
    e.param_names()
        .iter()
        .flat_map(|n| e.store().get(n).unwrap())
        .collect()
}

pub fn set_param_vec(e: &CompiledEnergy, v: &[f64]) {
    let mut at = 0;
    for n in e.param_names() {
        let len = e.store().get(&n).unwrap().len();
        e.set_param(&n, &v[at..at + len]).unwrap();
        at += len;
    }
}

pub fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The index of the nearest row of `reference` (`d` wide) to each point.
pub fn nearest(points: &[f64], reference: &[f64], d: usize) -> Vec<usize> {
    points
        .chunks_exact(d)
        .map(|p| {
            (0..reference.len() / d)
                .min_by(|&i, &j| {
                    let di = dist2(p, &reference[i * d..(i + 1) * d]);
                    let dj = dist2(p, &reference[j * d..(j + 1) * d]);
                    di.total_cmp(&dj)
                })
                .unwrap()
        })
        .collect()
}

/// Central differences of `loss_at` around `theta0` (step 1e-5) against
/// `analytic`, every coordinate within a relative 1e-5.
pub fn assert_gradient(theta0: &[f64], analytic: &[f64], loss_at: impl Fn(&[f64]) -> f64) {
    let h = 1e-5;
    for i in 0..theta0.len() {
        let mut up = theta0.to_vec();
        let mut down = theta0.to_vec();
        up[i] += h;
        down[i] -= h;
        let fd = (loss_at(&up) - loss_at(&down)) / (2.0 * h);
        let err = (fd - analytic[i]).abs() / (1e-4 + fd.abs().max(analytic[i].abs()));
        assert!(
            err < 1e-5,
            "θ[{i}]: finite difference {fd} vs analytic {}",
            analytic[i]
        );
    }
}
