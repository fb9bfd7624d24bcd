//! Plot smoke tests: every plot kind renders a PNG (with text, so the font
//! registration works). The files land in `target/plots/` for eyeballing.

use super::*;
use crate::sample::targets::{Banana, Mixture1d, Ring};
use crate::sample::{FnEnergy, Init, RunConfig, SamplerConfig, run_chains};

fn out(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/plots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn is_png(p: &std::path::Path) {
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n");
    assert!(b.len() > 2000);
}

#[test]
fn ring_scatter_over_density() {
    let ring = Ring {
        k: 8,
        radius: 2.0,
        sd: 0.25,
    };
    let mut run = RunConfig::new(400, 200, 10, 1);
    run.init = Init::Uniform { a: -3.0, b: 3.0 };
    let d = run_chains(&ring, &SamplerConfig::mala(0.02), &run).unwrap();
    let p = out("ring.png");
    scatter_density(&p, &d, Some(&ring), (0, 1), "MALA on an 8-Gaussian ring").unwrap();
    is_png(&p);
}

#[test]
fn banana_auto_and_trace() {
    let b = Banana {
        a: 0.5,
        s: 0.6,
        t: 1.0,
    };
    let d = run_chains(
        &b,
        &SamplerConfig::hmc(0.2, 8),
        &RunConfig::new(4, 200, 300, 2),
    )
    .unwrap();
    let p = out("banana.png");
    plot_auto(&p, &d, Some(&b), "HMC on a banana").unwrap();
    is_png(&p);
    let t = out("banana_trace.png");
    trace(&t, &d, &[0, 1], 4, "HMC trace").unwrap();
    is_png(&t);
}

#[test]
fn mixture_histogram_with_density() {
    let m = Mixture1d {
        weights: vec![0.3, 0.7],
        means: vec![-1.5, 1.5],
        sds: vec![1.0, 0.8],
    };
    let d = run_chains(
        &m,
        &SamplerConfig::rwmh(1.0),
        &RunConfig::new(8, 200, 1500, 3),
    )
    .unwrap();
    let p = out("mixture.png");
    // Through the energy (numerically normalised) and through the closed form.
    plot_auto(&p, &d, Some(&m), "RWMH on a two-component mixture").unwrap();
    is_png(&p);
    let f = |_: usize, x: f64| m.density(x);
    histograms(&out("mixture_exact.png"), &d, &[0], Some(&f), "closed form").unwrap();
    // Numerical normalisation agrees with the closed form.
    let g = density_1d(&m, -12.0, 12.0);
    for x in [-2.0, 0.0, 1.3] {
        assert!((g(0, x) - m.density(x)).abs() < 1e-6);
    }
}

#[test]
fn image_grid_of_8x8_draws() {
    // Independent pixels around a ring-shaped mean image.
    let mean: Vec<f64> = (0..64)
        .map(|k| {
            let (y, x) = ((k / 8) as f64 - 3.5, (k % 8) as f64 - 3.5);
            let r = (x * x + y * y).sqrt();
            (-(r - 2.5).powi(2)).exp()
        })
        .collect();
    let m2 = mean.clone();
    let mut e = FnEnergy::new(
        64,
        move |x: &[f64]| {
            x.iter()
                .zip(&mean)
                .map(|(a, m)| 50.0 * (a - m).powi(2))
                .sum()
        },
        move |x: &[f64], g: &mut [f64]| {
            let mut s = 0.0;
            for i in 0..64 {
                g[i] = 100.0 * (x[i] - m2[i]);
                s += 50.0 * (x[i] - m2[i]).powi(2);
            }
            s
        },
    );
    e.image_shape = Some(vec![8, 8]);
    let d = run_chains(
        &e,
        &SamplerConfig::ula(0.002),
        &RunConfig::new(16, 0, 300, 4),
    )
    .unwrap();
    assert_eq!(d.image_shape, Some(vec![8, 8]));
    let p = out("images.png");
    plot_auto(&p, &d, Some(&e), "ULA draws, 8x8").unwrap();
    is_png(&p);
    assert!(image_grid(&p, &d, &[7, 9], 4, "bad").is_err());
}
