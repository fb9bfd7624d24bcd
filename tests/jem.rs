//! JEM: the classifier loss's θ-gradient against central finite differences
//! of the loss computed from the model's logits (f64), the baseline's loss
//! being the cross-entropy, and `ebm jem` / `ebm evaluate --model` /
//! `ebm predict` as a user runs them: the files, the JSON contract, resume
//! bit for bit, and bad labels refused before training.

mod common;

use common::cli::ebm;
use ebm::api::Program;
use ebm::backend::{DType, cpu::Cpu};
use ebm::stats::classify::logsumexp;
use ebm::train::classify::Classifier;
use ebm::train::{Labels, Objective, TrainConfig, Trainer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MODEL: &str = "model f(x: [3]) -> [4] = mlp(x, [6, 4], act = swish)\n";

fn classifier(dtype: DType) -> Classifier {
    let program = Program::from_source(MODEL).unwrap();
    let model = program
        .model_with("f", Arc::new(Cpu::new()), dtype)
        .unwrap();
    Classifier::new(model).unwrap()
}

fn points(n: usize, seed: u64) -> Vec<f64> {
    ebm::data::rng::normal(seed, 3 * n)
}

fn param_vec(c: &Classifier) -> Vec<f64> {
    let s = c.model.store();
    c.model
        .param_names()
        .iter()
        .flat_map(|n| s.get(n).unwrap())
        .collect()
}

fn set_param_vec(c: &Classifier, v: &[f64]) {
    let mut at = 0;
    for n in c.model.param_names() {
        let len = c.model.store().get(&n).unwrap().len();
        c.model.set_param(&n, &v[at..at + len]).unwrap();
        at += len;
    }
}

/// CE(f(x⁺), y) + w·(mean E(x⁺) − mean E(x⁻)), E = −logsumexp f, from logits.
fn jem_loss(c: &Classifier, xp: &[f64], y: &[usize], xn: &[f64], w: f64) -> f64 {
    let (b, k) = (y.len(), c.classes);
    let lp = c.logits(xp, b).unwrap();
    let lse_p = logsumexp(&lp, k);
    let ce = (0..b).map(|i| lse_p[i] - lp[i * k + y[i]]).sum::<f64>() / b as f64;
    if xn.is_empty() {
        return ce;
    }
    let nb = xn.len() / 3;
    let lse_n = logsumexp(&c.logits(xn, nb).unwrap(), k);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    ce + w * (-mean(&lse_p) + mean(&lse_n))
}

fn check_gradient(objective: Objective, negatives: usize) {
    let c = classifier(DType::F64);
    let (b, w) = (8, objective.px_weight());
    let data = points(40, 7);
    let labels: Vec<usize> = (0..40).map(|i| (i * 7 + 3) % 4).collect();
    let mut cfg = TrainConfig::jem(w);
    cfg.objective = objective;
    cfg.batch = b;
    let lab = Labels {
        of_row: &labels,
        classes: 4,
    };
    let mut t = Trainer::classifier(&c.energy, &c.model, &data, lab, cfg).unwrap();
    let xp = data[..3 * b].to_vec();
    let y = labels[..b].to_vec();
    let xn = points(negatives, 9);
    let mut x = xp.clone();
    x.extend_from_slice(&xn);
    let obj = t.classifier_objective::<f64>(&x, &y).unwrap();
    let analytic = obj.grads.concat();
    let theta0 = param_vec(&c);
    assert!((jem_loss(&c, &xp, &y, &xn, w) - obj.total).abs() < 1e-12);
    let j = obj.jem.unwrap();
    assert!((j.ce - jem_loss(&c, &xp, &y, &[], 0.0)).abs() < 1e-12);
    let h = 1e-5;
    for i in 0..theta0.len() {
        let at = |d: f64| {
            let mut th = theta0.clone();
            th[i] += d;
            set_param_vec(&c, &th);
            let v = jem_loss(&c, &xp, &y, &xn, w);
            set_param_vec(&c, &theta0);
            v
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        let err = (fd - analytic[i]).abs() / (1e-4 + fd.abs().max(analytic[i].abs()));
        assert!(
            err < 1e-6,
            "θ[{i}]: finite differences {fd}, gradient {}",
            analytic[i]
        );
    }
}

#[test]
fn jem_gradient_matches_finite_differences() {
    check_gradient(Objective::Jem { weight: 0.7 }, 5);
}

#[test]
fn baseline_gradient_is_the_cross_entropy_gradient() {
    check_gradient(Objective::Classifier, 0);
}

#[test]
fn the_energies_are_minus_logsumexp_and_minus_the_class_logit() {
    let c = classifier(DType::F64);
    let x = points(5, 3);
    let logits = c.logits(&x, 5).unwrap();
    let e = c.energy.energy(&x, None, 5).unwrap();
    for (ei, l) in e.iter().zip(logsumexp(&logits, 4)) {
        assert!((ei + l).abs() < 1e-12);
    }
    let onehot = [0.0, 0.0, 1.0, 0.0];
    let cond: Vec<f64> = onehot.iter().cycle().take(20).copied().collect();
    let ec = c.conditional.energy(&x, Some(&cond), 5).unwrap();
    for (i, v) in ec.iter().enumerate() {
        assert!((v + logits[i * 4 + 2]).abs() < 1e-12);
    }
}

// ----- the commands -----

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-jem-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

const DIGITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/jem/digits.ebm");
const TRAIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/data/digits_train.csv"
);
const TEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits_test.csv");

fn jem(out: &Path, iters: &str, extra: &[&str]) -> (i32, String, String) {
    let o = s(out);
    let mut args = vec![
        "jem",
        DIGITS,
        "--model",
        "f",
        "--data",
        TRAIN,
        "--label",
        "label",
        "--scale",
        "range:-1,1",
        "--iters",
        iters,
        "--lr",
        "0.001",
        "--batch",
        "64",
        "--sgld-steps",
        "5",
        "--checkpoint-every",
        "20",
        "--eval-every",
        "20",
        "--out",
        &o,
    ];
    args.extend(extra);
    ebm(&args)
}

#[test]
fn a_jem_run_is_scored_by_evaluate_and_predict() {
    let dir = scratch("run");
    let out = dir.join("jem");
    let (code, stdout, stderr) = jem(&out, "60", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("it/s") && stdout.contains("cross-entropy"),
        "{stdout}"
    );
    for f in [
        "params.safetensors",
        "metrics.csv",
        "checkpoint.safetensors",
        "loss.png",
        "best.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let ce = header.iter().position(|h| *h == "ce").unwrap();
    let last: Vec<&str> = metrics.lines().last().unwrap().split(',').collect();
    assert!(last[ce].parse::<f64>().unwrap() < 2.0, "{metrics}");

    let params = s(&out.join("params.safetensors"));
    let rel = s(&dir.join("rel.png"));
    let samples = s(&dir.join("samples.png"));
    let (code, stdout, stderr) = ebm(&[
        "evaluate",
        DIGITS,
        "--model",
        "f",
        "--params",
        &params,
        "--data",
        TEST,
        "--label",
        "label",
        "--json",
        "--reliability",
        &rel,
        "--samples",
        &samples,
        "--sgld-steps",
        "20",
        "--per-class",
        "2",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > 0.5 && acc <= 1.0, "accuracy {acc}");
    let ece = v["ece"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ece));
    assert!(v["nll"].as_f64().unwrap() > 0.0);
    for set in ["noise", "permuted", "inverted"] {
        for score in ["msp", "logsumexp", "grad_norm"] {
            let a = v["auroc"][set][score].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{set}/{score}: {a}");
        }
    }
    for png in [&rel, &samples] {
        let bytes = std::fs::read(png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }

    let preds = dir.join("preds.csv");
    let (code, stdout, stderr) = ebm(&[
        "predict",
        DIGITS,
        "--model",
        "f",
        "--params",
        &params,
        "--data",
        TEST,
        "--label",
        "label",
        "--out",
        &s(&preds),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("450 rows") && stdout.contains("accuracy"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&preds).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("class,p0,p1"));
    let row: Vec<f64> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(row.len(), 21);
    let total: f64 = row[1..11].iter().sum();
    assert!((total - 1.0).abs() < 1e-9);
    let top = (1..11).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() - 1;
    assert_eq!(row[0] as usize, top);
}

#[test]
fn baseline_and_held_out_classes() {
    let dir = scratch("baseline");
    let out = dir.join("base");
    let (code, _, stderr) = jem(&out, "40", &["--baseline", "--exclude-classes", "8,9"]);
    assert_eq!(code, 0, "{stderr}");
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let e_neg = header.iter().position(|h| *h == "e_neg").unwrap();
    let row: Vec<&str> = metrics.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[e_neg], "NaN", "the baseline draws no negatives");
    let params = s(&out.join("params.safetensors"));
    let (code, stdout, stderr) = ebm(&[
        "evaluate",
        DIGITS,
        "--model",
        "f",
        "--params",
        &params,
        "--data",
        TEST,
        "--label",
        "label",
        "--exclude-classes",
        "8,9",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["auroc"]["classes"]["msp"].as_f64().is_some(), "{stdout}");
    assert_eq!(v["rows"].as_u64().unwrap(), 450 - 46 - 51);
}

#[test]
fn resume_is_bit_identical() {
    let dir = scratch("resume");
    let (a, b) = (dir.join("a"), dir.join("b"));
    assert_eq!(jem(&a, "30", &[]).0, 0);
    let (code, stdout, stderr) = jem(&b, "30", &["--stop-after", "12"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ebm jem --resume"), "{stdout}");
    let (code, _, stderr) = ebm(&["jem", "--resume", &s(&b)]);
    assert_eq!(code, 0, "{stderr}");
    let pa = std::fs::read(a.join("params.safetensors")).unwrap();
    let pb = std::fs::read(b.join("params.safetensors")).unwrap();
    assert!(pa == pb, "resumed parameters differ");
}

#[test]
fn bad_labels_are_refused_before_training() {
    let dir = scratch("labels");
    let data = dir.join("bad.csv");
    let mut text = String::from("a,b,c,label\n");
    for i in 0..20 {
        text.push_str(&format!("{i},1,2,{}\n", if i == 13 { 7 } else { i % 4 }));
    }
    std::fs::write(&data, &text).unwrap();
    let prog = dir.join("f.ebm");
    std::fs::write(&prog, MODEL).unwrap();
    let out = s(&dir.join("out"));
    let run = |d: &Path| {
        ebm(&[
            "jem",
            &s(&prog),
            "--model",
            "f",
            "--data",
            &s(d),
            "--label",
            "label",
            "--iters",
            "2",
            "--out",
            &out,
        ])
    };
    let (code, _, stderr) = run(&data);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("row 14 has label 7") && stderr.contains("4 classes"),
        "{stderr}"
    );
    std::fs::write(&data, text.replace(",7\n", ",1.5\n")).unwrap();
    let (code, _, stderr) = run(&data);
    assert_eq!(code, 1);
    assert!(stderr.contains("expected an integer"), "{stderr}");
    assert!(
        !dir.join("out").exists(),
        "nothing written before the checks"
    );
    let (code, _, stderr) = ebm(&[
        "jem",
        &s(&prog),
        "--model",
        "nope",
        "--data",
        &s(&data),
        "--label",
        "label",
        "--out",
        &out,
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no model named `nope`"), "{stderr}");
}
