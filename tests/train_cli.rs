//! `ebm train`, `ebm evaluate` and `ebm sample --params` as a user runs
//! them: the files a run writes, a resumed run equal to an uninterrupted
//! one byte for byte, bad data and bad flags refused before any iteration,
//! a corrupt checkpoint named in a clear error.

mod common;

use common::cli::ebm;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-train-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

const MLP: &str = "energy e(x: [2]) = sum(mlp(x, [16, 16, 1], act = swish))\n";

fn program(dir: &Path) -> String {
    let p = dir.join("e.ebm");
    std::fs::write(&p, MLP).unwrap();
    s(&p)
}

fn data(dir: &Path) -> String {
    let p = dir.join("data.csv");
    let mut text = String::from("a,b,label\n");
    let z = ebm::data::rng::normal(5, 400);
    for (i, r) in z.chunks_exact(2).enumerate() {
        text.push_str(&format!("{},{},{}\n", 1.0 + 0.5 * r[0], -1.0 + r[1], i % 2));
    }
    std::fs::write(&p, text).unwrap();
    s(&p)
}

fn train(dir: &Path, out: &Path, iters: &str, extra: &[&str]) -> (i32, String, String) {
    let (f, d) = (program(dir), data(dir));
    let mut args = vec![
        "train",
        &f,
        "--energy",
        "e",
        "--data",
        &d,
        "--label",
        "label",
        "--iters",
        iters,
        "--batch",
        "32",
        "--sampler-steps",
        "5",
        "--buffer",
        "100",
        "--checkpoint-every",
        "4",
        "--eval-every",
        "3",
    ];
    let o = s(out);
    args.extend(["--out", &o]);
    args.extend(extra);
    ebm(&args)
}

#[test]
fn a_run_writes_its_files_and_its_parameters_sample() {
    let dir = scratch("files");
    let out = dir.join("run");
    let (code, stdout, stderr) = train(&dir, &out, "12", &["--method", "icd"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("trained 12 iterations"), "{stdout}");
    for f in [
        "params.safetensors",
        "checkpoint.safetensors",
        "metrics.csv",
        "loss.png",
        "best.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing: {stdout}");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert!(metrics.starts_with("iter,loss,"));
    assert_eq!(metrics.lines().count(), 13);
    let params = ebm::data::safetensors::read(&out.join("params.safetensors")).unwrap();
    assert!(
        params.tensors.contains_key("e.mlp0.w1"),
        "{:?}",
        params.tensors.keys()
    );
    let csv = dir.join("draws.csv");
    let (code, _, stderr) = ebm(&[
        "sample",
        &program(&dir),
        "--energy",
        "e",
        "--params",
        &s(&out.join("params.safetensors")),
        "--steps",
        "10",
        "--warmup",
        "10",
        "--out",
        &s(&csv),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = ebm(&[
        "evaluate",
        &program(&dir),
        "--energy",
        "e",
        "--params",
        &s(&out.join("params.safetensors")),
        "--data",
        &data(&dir),
        "--label",
        "label",
        "--chains",
        "50",
        "--steps",
        "20",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("\"mmd2\"") && stdout.contains("\"heldout_nll\""),
        "{stdout}"
    );
}

/// 10 iterations, then `--resume` to 20 (the run's configured total, from a
/// copy of the folder after the first 10), equals 20 straight through.
#[test]
fn resume_is_bit_identical() {
    let dir = scratch("resume");
    let straight = dir.join("straight");
    let (code, _, stderr) = train(&dir, &straight, "20", &[]);
    assert_eq!(code, 0, "{stderr}");

    let half = dir.join("half");
    let (code, _, stderr) = train(&dir, &half, "20", &["--stop-after", "10"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = ebm(&["train", "--resume", &s(&half)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(10 this run)"), "{stdout}");
    let a = std::fs::read(straight.join("params.safetensors")).unwrap();
    let b = std::fs::read(half.join("params.safetensors")).unwrap();
    assert!(a == b, "params.safetensors differs after resume");
    // The checkpoints' tensors (parameters, optimiser state, buffer,
    // counters) are equal; their metadata names different output folders.
    let read = |p: &Path| ebm::data::safetensors::read(&p.join("checkpoint.safetensors")).unwrap();
    assert_eq!(read(&straight).tensors, read(&half).tensors);
    let rows = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p.join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplitn(3, ',').nth(2).unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        rows(&straight),
        rows(&half),
        "metrics differ (timing aside)"
    );
}

#[test]
fn bad_data_and_flags_are_refused_before_training() {
    let dir = scratch("bad");
    let out = dir.join("run");
    let f = program(&dir);
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n3\n").unwrap();
    let (code, _, stderr) = ebm(&[
        "train",
        &f,
        "--energy",
        "e",
        "--data",
        &s(&bad),
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    let nan = dir.join("nan.csv");
    std::fs::write(&nan, "a,b\n1,2\nNaN,3\n").unwrap();
    let (code, _, stderr) = ebm(&[
        "train",
        &f,
        "--energy",
        "e",
        "--data",
        &s(&nan),
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.to_lowercase().contains("nan"), "{stderr}");
    let wide = dir.join("wide.csv");
    std::fs::write(&wide, "a,b,c\n1,2,3\n4,5,6\n").unwrap();
    let (code, _, stderr) = ebm(&[
        "train",
        &f,
        "--energy",
        "e",
        "--data",
        &s(&wide),
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("3 columns"), "{stderr}");
    assert!(!out.join("metrics.csv").exists(), "no iteration may run");
    let (code, _, _) = ebm(&["train", &f, "--energy", "e", "--iters", "x"]);
    assert_eq!(code, 2, "a malformed command line is clap's exit code 2");
    let (code, _, stderr) = ebm(&[
        "train",
        &f,
        "--energy",
        "e",
        "--data",
        "toy:two_moons",
        "--lr",
        "0",
        "--out",
        &s(&out),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--lr"), "{stderr}");
    for (flags, says) in [
        (&["--clamp", "1,0"][..], "--clamp"),
        (
            &["--sampler", "mala", "--clip-grad", "0.1"][..],
            "--sampler ula only",
        ),
        (&["--buffer", "0"][..], "--buffer"),
    ] {
        let mut args = vec![
            "train",
            &f,
            "--energy",
            "e",
            "--data",
            "toy:two_moons",
            "--out",
            "/nonexistent/x",
        ];
        args.extend(flags);
        let (code, _, stderr) = ebm(&args);
        assert_eq!(code, 1, "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
}

#[test]
fn a_corrupt_checkpoint_is_a_clear_error() {
    let dir = scratch("corrupt");
    let out = dir.join("run");
    let (code, _, stderr) = train(&dir, &out, "4", &[]);
    assert_eq!(code, 0, "{stderr}");
    let ck = out.join("checkpoint.safetensors");
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, stderr) = ebm(&["train", "--resume", &s(&out)]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("checkpoint.safetensors") && stderr.contains("truncated"),
        "{stderr}"
    );
    std::fs::write(&ck, b"not a checkpoint").unwrap();
    let (code, _, stderr) = ebm(&["train", "--resume", &s(&out)]);
    assert_eq!(code, 1);
    assert!(stderr.contains("checkpoint.safetensors"), "{stderr}");
}

/// Parameters trained on standardised data evaluate points given in the
/// data's own scale: `--at` agrees with `--data` rows, and `--grad` with
/// central differences of `--at` (the chain rule through the scaling).
#[test]
fn scaled_training_evaluates_in_the_data_scale() {
    let dir = scratch("scaled");
    let out = dir.join("run");
    let (code, _, stderr) = train(&dir, &out, "6", &["--scale", "standardize"]);
    assert_eq!(code, 0, "{stderr}");
    let meta = ebm::data::safetensors::read(&out.join("params.safetensors")).unwrap();
    assert!(
        meta.metadata.contains_key("ebm.scale.mul"),
        "{:?}",
        meta.metadata
    );
    let f = program(&dir);
    let p = s(&out.join("params.safetensors"));
    let at = |x: f64, y: f64, grad: bool| -> serde_json::Value {
        let point = format!("{x},{y}");
        let mut args = vec![
            "eval", &f, "--energy", "e", "--params", &p, "--at", &point, "--json", "--dtype", "f64",
        ];
        if grad {
            args.push("--grad");
        }
        let (code, stdout, stderr) = ebm(&args);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    let rows = dir.join("rows.csv");
    std::fs::write(&rows, "a,b\n1.5,-0.5\n").unwrap();
    let (code, stdout, stderr) = ebm(&[
        "eval",
        &f,
        "--energy",
        "e",
        "--params",
        &p,
        "--data",
        &s(&rows),
        "--json",
        "--dtype",
        "f64",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let by_row: Vec<f64> = serde_json::from_str(&stdout).unwrap();
    let e = at(1.5, -0.5, true);
    assert!((e["energy"].as_f64().unwrap() - by_row[0]).abs() < 1e-12);
    let h = 1e-5;
    for (k, (dx, dy)) in [(h, 0.0), (0.0, h)].into_iter().enumerate() {
        let up = at(1.5 + dx, -0.5 + dy, false)["energy"].as_f64().unwrap();
        let down = at(1.5 - dx, -0.5 - dy, false)["energy"].as_f64().unwrap();
        let fd = (up - down) / (2.0 * h);
        let g = e["grad"][k].as_f64().unwrap();
        assert!(
            (fd - g).abs() < 1e-6 * (1.0 + g.abs()),
            "∂/∂x{k}: {fd} vs {g}"
        );
    }
}

/// `ebm evaluate --sampler ula` scores the samples a model is used with
/// (decoupled noise, clamp, starts from noise) and `--image` draws them as
/// an image grid; flags that do not fit are refused before any sampling.
#[test]
fn evaluate_with_the_training_sampler_and_an_image_grid() {
    let dir = scratch("eval-ula");
    let (f, d) = (program(&dir), data(&dir));
    let png = dir.join("grid.png");
    let base = [
        "evaluate", &f, "--energy", "e", "--data", &d, "--label", "label", "--chains", "40",
        "--steps", "30",
    ];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        ebm(&args)
    };
    let (code, stdout, stderr) = run(&[
        "--sampler",
        "ula",
        "--step",
        "0.05",
        "--noise",
        "0.01",
        "--clamp",
        "-3,3",
        "--clip-grad",
        "1",
        "--init",
        "uniform:-1,1",
        "--image",
        "1x2",
        "--plot",
        &s(&png),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"mmd2\""), "{stdout}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    for (extra, want) in [
        (&["--noise", "0.1"][..], "apply to --sampler ula only"),
        (
            &["--sampler", "ula", "--clamp", "3,1"][..],
            "--clamp expects A,B with A < B",
        ),
        (&["--init", "uniform:2"][..], "--init expects"),
        (
            &["--image", "3x3", "--plot", "x.png"][..],
            "--image 3x3 holds 9 values",
        ),
        (&["--image", "8by8"][..], "--image expects HxW"),
        (
            &["--plot", "grid.jpg"][..],
            "--plot expects a file name ending in .png",
        ),
    ] {
        let (code, _, stderr) = run(extra);
        assert_eq!(code, 1, "{extra:?}: {stderr}");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
    }
}

/// Score matching and NCE through `ebm train`: their files, a resumed run
/// equal to an uninterrupted one (NCE's learned log Z included), and their
/// flags refused with the flags' own wording.
#[test]
fn score_matching_and_nce_runs_resume_bit_identical() {
    let dir = scratch("methods");
    for method in [
        &["--method", "sm"][..],
        &[
            "--method",
            "ssm",
            "--projections",
            "3",
            "--projection",
            "gaussian",
        ],
        &["--method", "dsm", "--sigma", "0.05,0.2"],
        &[
            "--method",
            "nce",
            "--nce-noise",
            "fitted:1.5",
            "--nce-ratio",
            "2",
        ],
    ] {
        let name = method[1];
        let straight = dir.join(format!("{name}-straight"));
        let (code, stdout, stderr) = train(&dir, &straight, "12", method);
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(
            stdout.contains("E- NaN") == (name != "nce"),
            "{name}: {stdout}"
        );
        let half = dir.join(format!("{name}-half"));
        let mut first = method.to_vec();
        first.extend(["--stop-after", "5"]);
        let (code, _, stderr) = train(&dir, &half, "12", &first);
        assert_eq!(code, 0, "{name}: {stderr}");
        let (code, _, stderr) = ebm(&["train", "--resume", &s(&half)]);
        assert_eq!(code, 0, "{name}: {stderr}");
        let read = |p: &Path| ebm::data::safetensors::read(&p.join("params.safetensors")).unwrap();
        let (a, b) = (read(&straight), read(&half));
        assert_eq!(
            a.tensors, b.tensors,
            "{name}: parameters differ after resume"
        );
        assert_eq!(a.tensors.contains_key("nce.log_z"), name == "nce", "{name}");
        let metrics = std::fs::read_to_string(straight.join("metrics.csv")).unwrap();
        assert_eq!(metrics.lines().count(), 13, "{name}: {metrics}");
    }
    for (flags, want) in [
        (
            &["--method", "sm", "--l2", "0.1"][..],
            "--l2 0.1: the energy penalty applies to cd, pcd and icd",
        ),
        (
            &["--method", "dsm", "--sigma", "0.1,-1"],
            "--sigma expects 1 to 64 noise levels",
        ),
        (
            &["--method", "nce", "--nce-noise", "gaussian"],
            "--nce-noise expects `fitted`",
        ),
        (
            &["--method", "ssm", "--projections", "0"],
            "--projections must be between 1 and 64",
        ),
        (
            &["--method", "ssm", "--loss", "softplus"],
            "--loss softplus: the contrastive loss variants apply to cd, pcd and icd",
        ),
    ] {
        let out = dir.join("bad");
        let (code, _, stderr) = train(&dir, &out, "5", flags);
        assert_eq!(code, 1, "{flags:?}");
        assert!(stderr.contains(want), "{flags:?}: {stderr}");
        assert!(!out.join("metrics.csv").exists(), "{flags:?} trained");
    }
}
