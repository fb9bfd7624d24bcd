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

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(p: &std::path::Path) -> (u32, u32) {
    is_png(p);
    let b = std::fs::read(p).unwrap();
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

/// Runs `f` on another thread and fails (instead of hanging) when it takes
/// longer than a minute: plotters' tick computation loops forever on some
/// ranges, which the plots must never hand it.
fn within_a_minute(name: &str, f: impl FnOnce() -> Result<(), String> + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(r) => r.unwrap_or_else(|e| panic!("{name}: {e}")),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: still drawing after a minute")
        }
        Err(e) => panic!("{name}: the drawing thread panicked ({e})"),
    }
}

#[test]
fn loss_curves_draw_on_linear_and_log_axes() {
    let steps = 400;
    let loss: Vec<(f64, f64)> = (0..steps)
        .map(|t| (t as f64, 2.0 * (-(t as f64) / 80.0).exp() + 0.05))
        .collect();
    let mmd: Vec<(f64, f64)> = (0..=8)
        .map(|k| (50.0 * k as f64, 0.3 / (1.0 + k as f64).powi(2)))
        .collect();
    let series = [("cd loss", loss), ("mmd²", mmd)];
    let p = out("curves.png");
    loss_curves(&p, "training", "step", &series).unwrap();
    assert_eq!(png_size(&p), curves::CURVES_SIZE);
    let p = out("curves_log.png");
    loss_curves_log(&p, "training (log)", "step", &series).unwrap();
    assert_eq!(png_size(&p), curves::CURVES_SIZE);
}

#[test]
fn loss_curves_survive_any_values() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    type Case = (&'static str, Vec<Vec<(f64, f64)>>);
    let cases: Vec<Case> = vec![
        ("no series", vec![]),
        (
            "an empty series",
            vec![vec![], vec![(0.0, 1.0), (1.0, 0.5)]],
        ),
        ("one point", vec![vec![(3.0, 0.25)]]),
        (
            "only non-finite",
            vec![vec![(nan, 1.0), (0.0, nan), (1.0, inf)]],
        ),
        (
            "gaps",
            vec![vec![(0.0, 1.0), (1.0, nan), (2.0, -inf), (3.0, 0.5)]],
        ),
        ("extreme values", vec![vec![(0.0, -1e308), (1.0, f64::MAX)]]),
        (
            "extreme steps",
            vec![vec![(-f64::MAX, 1.0), (f64::MAX, 2.0)]],
        ),
        (
            "constant",
            vec![vec![(0.0, 1e15), (1.0, 1e15), (2.0, 1e15)]],
        ),
        (
            "below f64 ticks",
            vec![vec![(0.0, 1e15), (1.0, 1e15 + 0.125)]],
        ),
        ("subnormal", vec![vec![(0.0, 0.0), (1.0, 1e-310)]]),
        (
            "many decades",
            vec![vec![(0.0, 1e-300), (1.0, 1.0), (2.0, 1e300)]],
        ),
        ("tiny", vec![vec![(0.0, 1e-200), (1.0, 2e-200)]]),
        ("negative only", vec![vec![(0.0, -3.0), (1.0, -1.0)]]),
        (
            "long",
            vec![(0..20000).map(|t| (t as f64, (t as f64).sin())).collect()],
        ),
    ];
    for (k, (name, data)) in cases.into_iter().enumerate() {
        for log in [false, true] {
            let p = out(&format!("curves_edge_{k}_{log}.png"));
            let data = data.clone();
            let q = p.clone();
            within_a_minute(name, move || {
                let series: Vec<(&str, Vec<(f64, f64)>)> =
                    data.into_iter().map(|s| ("series", s)).collect();
                let draw = if log { loss_curves_log } else { loss_curves };
                draw(&q, name, "step", &series)
            });
            assert_eq!(png_size(&p), curves::CURVES_SIZE, "{name}");
        }
    }
    // A path that cannot be written is an error, not a panic.
    let bad = out("no_such_dir").join("x").join("c.png");
    assert!(loss_curves(&bad, "t", "step", &[("a", vec![(0.0, 1.0)])]).is_err());
}

#[test]
fn learned_density_with_plain_points() {
    let ring = Ring {
        k: 8,
        radius: 2.0,
        sd: 0.25,
    };
    let mut r = crate::sample::rng::ChainRng::new(11, 0);
    let pts: Vec<f64> = (0..1000).map(|_| 1.5 * r.normal()).collect();
    let p = out("density_points.png");
    density_with_points(&p, "samples over the learned density", &ring, &pts, None).unwrap();
    assert_eq!(png_size(&p), (W, H));
    let bounds = Some(([-4.0, -4.0], [4.0, 4.0]));
    let q = out("density_points_bounds.png");
    density_with_points(&q, "fixed bounds", &ring, &pts, bounds).unwrap();
    assert_eq!(png_size(&q), (W, H));
    // Diverged samples and no samples still draw.
    let wild = vec![1e300, -1e300, f64::NAN, 0.0, f64::INFINITY, 1.0, 1e15, 1e15];
    let wild_ring = Ring {
        k: 8,
        radius: 2.0,
        sd: 0.25,
    };
    within_a_minute("wild points", move || {
        density_with_points(&out("density_wild.png"), "wild", &wild_ring, &wild, None)
    });
    let q = out("density_points_empty.png");
    density_with_points(&q, "no points", &ring, &[], None).unwrap();
    assert_eq!(png_size(&q), (W, H));
    // Caller mistakes are errors.
    assert!(density_with_points(&p, "odd", &ring, &pts[..3], None).is_err());
    let flat = Some(([0.0, 0.0], [0.0, 1.0]));
    assert!(density_with_points(&p, "flat", &ring, &pts, flat).is_err());
    let m = Mixture1d {
        weights: vec![1.0],
        means: vec![0.0],
        sds: vec![1.0],
    };
    assert!(density_with_points(&p, "1-D", &m, &pts, None).is_err());
}

#[test]
fn titles_note_draws_that_cannot_be_shown_in_place() {
    let mut d = Draws::empty(1, 3, 2);
    d.x = vec![1e308, -1e308, f64::NAN, 0.0, 1.0, 2.0];
    let t = noted_title("t", &d);
    assert_eq!(
        t,
        "t (1 non-finite values left out; 2 values beyond ±1e300 drawn at the edge)"
    );
    d.x = vec![0.0; 6];
    assert_eq!(noted_title("t", &d), "t");
}
