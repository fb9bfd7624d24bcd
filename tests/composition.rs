//! The composition experiment of docs/composition.md at CI scale, run as a
//! user runs it: `ebm train` on labelled cells for two concept energies and
//! a joint-label baseline, model files imported into a new script with
//! `use`, composed with `and`, `and not` and `mix`, sampled, and judged by
//! where the samples land. Fixed seeds: every figure is deterministic.

mod common;

use common::cli::ebm;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-composition-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn repo(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn train(energy: &str, label: &str, out: &Path) {
    let (code, stdout, stderr) = ebm(&[
        "train",
        &repo("examples/compose/concepts.ebm"),
        "--energy",
        energy,
        "--data",
        &repo("examples/compose/cells.csv"),
        "--columns",
        "x,y",
        "--label",
        label,
        "--iters",
        "1500",
        "--batch",
        "256",
        "--sampler-steps",
        "20",
        "--step",
        "0.01",
        "--lr",
        "0.003",
        "--l2",
        "0.05",
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(out.join("model.ebmc").is_file());
}

/// 2-D points of a saved sample CSV.
fn points(path: &Path) -> Vec<(f64, f64)> {
    let d = ebm::sample::io::read_csv(path).unwrap();
    d.x.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

const CENTRES: [f64; 3] = [-2.0, 0.0, 2.0];

/// The cell (a, b) a point lies in: within 1 of a cluster centre in both
/// coordinates.
fn cell(p: (f64, f64)) -> Option<(usize, usize)> {
    let near = |v: f64| (0..3).find(|&i| (v - CENTRES[i]).abs() < 1.0);
    Some((near(p.0)?, near(p.1)?))
}

fn share(pts: &[(f64, f64)], f: impl Fn((f64, f64)) -> bool) -> f64 {
    pts.iter().filter(|&&p| f(p)).count() as f64 / pts.len() as f64
}

const COMPOSE: &str = r#"
use concept as col from "col/model.ebmc"
use concept as row from "row/model.ebmc"
use joint from "joint/model.ebmc"
energy held(x: [2]) = col(x | onehot(2, 3)) and row(x | onehot(2, 3))
energy baseline(x: [2]) = joint(x | onehot(8, 9))
energy column(x: [2]) = col(x | onehot(0, 3))
energy carved(x: [2]) = col(x | onehot(0, 3)) and not 0.5 * row(x | onehot(0, 3))
energy centre(x: [2]) = col(x | onehot(1, 3)) and row(x | onehot(1, 3))
energy right(x: [2]) = col(x | onehot(2, 3))
let a = sample(held, mala(step = 0.05), chains = 1000, warmup = 500, steps = 1, init = uniform(-3, 3), seed = 1)
let b = sample(baseline, mala(step = 0.05), chains = 1000, warmup = 500, steps = 1, init = uniform(-3, 3), seed = 1)
let c = sample(column, mala(step = 0.05), chains = 1000, warmup = 500, steps = 1, init = uniform(-3, 3), seed = 1)
let d = sample(carved, mala(step = 0.05), chains = 1000, warmup = 500, steps = 1, init = uniform(-3, 3), seed = 1)
save(a, "held.csv")
save(b, "baseline.csv")
save(c, "column.csv")
save(d, "carved.csv")
plot([a, b], "held.png")
"#;

const MIXTURE: &str = r#"
use concept as col from "col/model.ebmc"
use concept as row from "row/model.ebmc"
const z = load("logz.json", "logz")
energy centre(x: [2]) = col(x | onehot(1, 3)) and row(x | onehot(1, 3))
energy right(x: [2]) = col(x | onehot(2, 3))
energy raw(x: [2]) = mix(centre(x), right(x), weights = [0.7, 0.3])
energy normalised(x: [2]) = mix(centre(x), right(x), weights = [0.7, 0.3], logz = z)
let r = sample(raw, pt(replicas = 8, max_temp = 30), chains = 500, warmup = 500, steps = 10, thin = 5, init = uniform(-3, 3), seed = 2)
let n = sample(normalised, pt(replicas = 8, max_temp = 30), chains = 500, warmup = 500, steps = 10, thin = 5, init = uniform(-3, 3), seed = 2)
save(r, "raw.csv")
save(n, "normalised.csv")
"#;

fn log_z(script: &Path, energy: &str) -> f64 {
    let (code, stdout, stderr) = ebm(&[
        "logz",
        &script.display().to_string(),
        "--energy",
        energy,
        "--runs",
        "4",
        "--chains",
        "64",
        "--steps",
        "300",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    v["logz"].as_f64().unwrap()
}

/// Concept energies trained on eight of nine cells compose into the ninth;
/// the joint-label baseline, which never saw it, does not. `and not` carves
/// a cell out of a column, and `mix` reaches its weights once the
/// components' AIS log-normalisers are given.
#[test]
fn trained_concepts_compose_into_the_held_out_cell() {
    let dir = scratch("cells");
    train("concept", "a", &dir.join("col"));
    train("concept", "b", &dir.join("row"));
    train("joint", "cell", &dir.join("joint"));
    let script = dir.join("compose.ebm");
    std::fs::write(&script, COMPOSE).unwrap();
    let (code, stdout, stderr) = ebm(&["run", &script.display().to_string()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(dir.join("held.png").is_file());

    let held = share(&points(&dir.join("held.csv")), |p| cell(p) == Some((2, 2)));
    let baseline = share(&points(&dir.join("baseline.csv")), |p| {
        cell(p) == Some((2, 2))
    });
    assert!(
        held >= 0.8,
        "composed: {held} of the samples in the held-out cell"
    );
    assert!(
        baseline < 0.1,
        "joint-label baseline: {baseline} in the held-out cell"
    );

    let before = share(&points(&dir.join("column.csv")), |p| {
        cell(p) == Some((0, 0))
    });
    let after = share(&points(&dir.join("carved.csv")), |p| {
        cell(p) == Some((0, 0))
    });
    assert!(
        before > 0.1 && after < 0.02,
        "cell (0, 0): {before} → {after}"
    );

    let z = [log_z(&script, "centre"), log_z(&script, "right")];
    assert!(z[1] - z[0] > 1.0, "unequal normalisers expected: {z:?}");
    std::fs::write(
        dir.join("logz.json"),
        format!("{{\"logz\": [{}, {}]}}", z[0], z[1]),
    )
    .unwrap();
    let script = dir.join("mixture.ebm");
    std::fs::write(&script, MIXTURE).unwrap();
    let (code, stdout, stderr) = ebm(&["run", &script.display().to_string()]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let centre = |p: (f64, f64)| cell(p) == Some((1, 1));
    let raw = share(&points(&dir.join("raw.csv")), centre);
    let normalised = share(&points(&dir.join("normalised.csv")), centre);
    eprintln!(
        "held-out cell {held:.3}, baseline {baseline:.3}, (0,0) {before:.3} -> {after:.3}, log Z {z:?}, mix raw {raw:.3} normalised {normalised:.3}"
    );
    // 1000 draws (500 chains × 2): binomial sd ≈ 0.015, and correlated
    // draws at most double it; the log Z estimates add about 0.01.
    assert!(raw < 0.4, "without log Z the centre gets {raw}");
    assert!(
        (normalised - 0.7).abs() < 0.07,
        "with log Z the centre gets {normalised}"
    );
}

/// `ebm train` on a conditional energy names the missing `--label`, and a
/// label beyond the width of `c`, before any iteration.
#[test]
fn conditional_training_needs_labels_that_fit_the_code() {
    let dir = scratch("labels");
    let base = [
        "train",
        &repo("examples/compose/concepts.ebm"),
        "--energy",
        "concept",
        "--data",
        &repo("examples/compose/cells.csv"),
        "--columns",
        "x,y",
        "--iters",
        "5",
    ]
    .map(String::from)
    .to_vec();
    let run = |extra: &[&str]| {
        let mut args = base.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--out".into(), dir.join("out").display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ebm(&args)
    };
    let (code, _, stderr) = run(&[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("give --label COLUMN"), "{stderr}");
    let (code, _, stderr) = run(&["--label", "cell"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("has label") && stderr.contains("codes of 3 values"),
        "{stderr}"
    );
    assert!(!dir.join("out/model.ebmc").exists(), "nothing is written");
}

/// `mix` is −log Σ (wᵢ/Σw)·exp(−Eᵢ − zᵢ), stable far from every component,
/// and its gradient matches central finite differences.
#[test]
fn mix_is_the_weighted_normalised_mixture() {
    let src = "
energy a(x: [2]) = 0.5 * sum(x^2)
energy b(x: [2]) = 2.0 * sum((x - 3)^2)
energy m(x: [2]) = mix(a(x), b(x), weights = [3, 1], logz = [1.5, -0.25])
energy plain(x: [2]) = mix(a(x), b(x))
energy either(x: [2]) = a(x) or b(x)
";
    let program = ebm::api::Program::from_source(src).unwrap();
    let m = program.energy("m").unwrap();
    let plain = program.energy("plain").unwrap();
    let either = program.energy("either").unwrap();
    let x: [f64; 8] = [0.0, 0.0, 3.0, 3.0, 1.5, 1.4, 40.0, -40.0];
    let n = x.len() / 2;
    let e = m.energy(&x, None, n).unwrap();
    for i in 0..n {
        let p = &x[2 * i..2 * i + 2];
        let ea = 0.5 * (p[0] * p[0] + p[1] * p[1]);
        let eb = 2.0 * ((p[0] - 3.0).powi(2) + (p[1] - 3.0).powi(2));
        let (la, lb) = ((0.75f64).ln() - 1.5 - ea, (0.25f64).ln() + 0.25 - eb);
        let top = la.max(lb);
        let want = -(top + ((la - top).exp() + (lb - top).exp()).ln());
        assert!(
            (e[i] - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{i}: {} vs {want}",
            e[i]
        );
    }
    // Equal default weights: `or` shifted by log 2.
    let (p, o) = (
        plain.energy(&x, None, n).unwrap(),
        either.energy(&x, None, n).unwrap(),
    );
    for (a, b) in p.iter().zip(&o) {
        assert!((a - (b + 2f64.ln())).abs() < 1e-12, "{a} vs {b} + log 2");
    }
    let g = m.grad_x(&x, None, n).unwrap();
    let h = 1e-6;
    for k in 0..x.len() {
        let (mut up, mut down) = (x, x);
        up[k] += h;
        down[k] -= h;
        let i = k / 2;
        let fd =
            (m.energy(&up, None, n).unwrap()[i] - m.energy(&down, None, n).unwrap()[i]) / (2.0 * h);
        assert!(
            (fd - g[k]).abs() < 1e-6 * fd.abs().max(1.0),
            "∂/∂x[{k}]: {fd} vs {}",
            g[k]
        );
    }
}
