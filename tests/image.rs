//! The image primitives against direct loops (f64): `conv2d` with stride and
//! padding, `avg_pool2d`, `max_pool2d` and `flatten`, evaluated as models
//! whose parameters are set by name; their parameter names and shapes; and
//! the diagnostics for inputs that are not images or kernels that do not fit.

use ebm::api::Program;

/// Row-major [c, h, w] index.
fn at(x: &[f64], (h, w): (usize, usize), c: usize, i: isize, j: isize) -> f64 {
    if i < 0 || j < 0 || i >= h as isize || j >= w as isize {
        return 0.0;
    }
    x[(c * h + i as usize) * w + j as usize]
}

/// The convolution by its definition: y[o, i, j] = b[o] +
/// Σ_{c,a,e} W[o, (c·k + a)·k + e] · x_pad[c, i·s + a, j·s + e].
fn conv_direct(
    x: &[f64],
    (c, h, w): (usize, usize, usize),
    wt: &[f64],
    b: &[f64],
    (out, k, s, p): (usize, usize, usize, usize),
) -> Vec<f64> {
    let oh = (h + 2 * p - k) / s + 1;
    let ow = (w + 2 * p - k) / s + 1;
    let mut y = vec![0.0; out * oh * ow];
    for o in 0..out {
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = b[o];
                for ch in 0..c {
                    for a in 0..k {
                        for e in 0..k {
                            let r = (ch * k + a) * k + e;
                            let (ii, jj) = (
                                (i * s + a) as isize - p as isize,
                                (j * s + e) as isize - p as isize,
                            );
                            acc += wt[o * c * k * k + r] * at(x, (h, w), ch, ii, jj);
                        }
                    }
                }
                y[(o * oh + i) * ow + j] = acc;
            }
        }
    }
    y
}

fn pool_direct(
    x: &[f64],
    (c, h, w): (usize, usize, usize),
    k: usize,
    s: usize,
    max: bool,
) -> Vec<f64> {
    let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
    let mut y = Vec::new();
    for ch in 0..c {
        for i in 0..oh {
            for j in 0..ow {
                let vals: Vec<f64> = (0..k)
                    .flat_map(|a| (0..k).map(move |e| (a, e)))
                    .map(|(a, e)| at(x, (h, w), ch, (i * s + a) as isize, (j * s + e) as isize))
                    .collect();
                y.push(if max {
                    vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    vals.iter().sum::<f64>() / vals.len() as f64
                });
            }
        }
    }
    y
}

fn check(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() < 1e-12 * (1.0 + b.abs()), "[{i}]: {a} vs {b}");
    }
}

#[test]
fn conv2d_is_the_convolution() {
    for (c, h, w, out, k, s, p) in [
        (1, 5, 5, 2, 3, 1, 0),
        (2, 6, 7, 3, 3, 2, 1),
        (3, 8, 8, 4, 5, 3, 2),
        (2, 4, 4, 1, 1, 1, 0),
    ] {
        let src = format!(
            "model m(x: [{c}, {h}, {w}]) -> [{out}, {oh}, {ow}] = conv2d(x, {out}, {k}, stride = {s}, padding = {p})\n",
            oh = (h + 2 * p - k) / s + 1,
            ow = (w + 2 * p - k) / s + 1
        );
        let program = Program::from_source(&src).unwrap();
        let model = program.model("m").unwrap();
        let names = model.param_names();
        assert_eq!(
            names,
            vec!["m.conv2d0.w".to_string(), "m.conv2d0.b".to_string()]
        );
        let rows = c * k * k;
        assert_eq!(
            program.params().get("m.conv2d0.w").unwrap().len(),
            rows * out
        );
        let b = ebm::data::rng::normal(2, out);
        model.set_param("m.conv2d0.b", &b).unwrap();
        let wt = program.params().get("m.conv2d0.w").unwrap();
        let x = ebm::data::rng::normal(3, c * h * w);
        let got = model.energy(&x, None, 1).unwrap();
        check(&got, &conv_direct(&x, (c, h, w), &wt, &b, (out, k, s, p)));
    }
}

#[test]
fn pooling_and_flatten() {
    for (c, h, w, k, s) in [(2, 4, 4, 2, 2), (1, 7, 6, 3, 2), (3, 5, 5, 2, 1)] {
        let (oh, ow) = ((h - k) / s + 1, (w - k) / s + 1);
        let src = format!(
            "model a(x: [{c}, {h}, {w}]) -> [{c}, {oh}, {ow}] = avg_pool2d(x, {k}, stride = {s})\n\
             model m(x: [{c}, {h}, {w}]) -> [{c}, {oh}, {ow}] = max_pool2d(x, {k}, stride = {s})\n\
             model f(x: [{c}, {h}, {w}]) -> [{n}] = flatten(x)\n",
            n = c * h * w
        );
        let program = Program::from_source(&src).unwrap();
        let x = ebm::data::rng::normal(5, c * h * w);
        let avg = program.model("a").unwrap().energy(&x, None, 1).unwrap();
        check(&avg, &pool_direct(&x, (c, h, w), k, s, false));
        let max = program.model("m").unwrap().energy(&x, None, 1).unwrap();
        check(&max, &pool_direct(&x, (c, h, w), k, s, true));
        let flat = program.model("f").unwrap().energy(&x, None, 1).unwrap();
        check(&flat, &x);
    }
}

#[test]
fn a_conv_energy_samples_and_a_conv_classifier_trains() {
    use ebm::train::classify::Classifier;
    use ebm::train::{Labels, TrainConfig, Trainer};
    let src = "model f(x: [1, 6, 6]) -> [3] = mlp(flatten(avg_pool2d(swish(conv2d(x, 4, 3, padding = 1)), 2)), [16, 3])\n\
               energy e(x: [1, 6, 6]) = -logsumexp(f(x)) + 0.5 * sum(x^2)\n";
    let program = Program::from_source(src).unwrap();
    // Sampling: MALA on the conv energy keeps finite, moving chains.
    let e = program.energy("e").unwrap();
    let sampler = ebm::sample::SamplerConfig::mala(0.05);
    let run = ebm::sample::RunConfig::new(8, 50, 50, 1);
    let draws = ebm::sample::run_compiled(&e, None, &sampler, &run).unwrap();
    assert!(draws.x.iter().all(|v| v.is_finite()));
    let acc = draws.summary.as_ref().unwrap().accept_rate;
    assert!(acc > 0.2, "acceptance {acc}");
    // Training: three classes told apart by which third of the image is bright.
    let n = 90;
    let mut data = Vec::new();
    let mut labels = Vec::new();
    let z = ebm::data::rng::normal(8, n * 36);
    for i in 0..n {
        let y = i % 3;
        for p in 0..36 {
            let bright = (p % 6) / 2 == y;
            data.push(if bright { 0.8 } else { -0.8 } + 0.2 * z[i * 36 + p]);
        }
        labels.push(y);
    }
    let c = Classifier::new(program.model("f").unwrap()).unwrap();
    let mut cfg = TrainConfig::jem(1.0);
    cfg.batch = 30;
    cfg.iters = 60;
    cfg.sampler_steps = 5;
    cfg.optim.lr = 3e-3;
    let lab = Labels {
        of_row: &labels,
        classes: 3,
    };
    let mut t = Trainer::classifier(&c.energy, &c.model, &data, lab, cfg).unwrap();
    let first = t.step().unwrap();
    while !t.done() {
        t.step().unwrap();
    }
    let (ce, acc) = t.classifier_scores(&data, &labels).unwrap();
    assert!(
        ce < first.ce.unwrap() * 0.5,
        "CE {} -> {ce}",
        first.ce.unwrap()
    );
    assert!(acc > 0.9, "accuracy {acc}");
}
