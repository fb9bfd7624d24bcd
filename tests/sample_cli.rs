//! `ebm sample`, `ebm summary` and `ebm plot` as a user runs them: files
//! written and read back, byte-identical reruns, backends that agree, and
//! divergent chains that are reported without touching the others.

mod common;

use common::cli::ebm;
use std::path::{Path, PathBuf};

use ebm::sample::io::read_csv;
use ebm::stats;

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-sample-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const GAUSS: &str =
    "# N((1, -2), diag(0.25, 1))\nenergy gauss(x: [2]) = 0.5 * sqnorm((x - [1, -2]) / [0.5, 1])\n";

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn is_png(p: &Path) -> bool {
    std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

#[test]
fn sample_csv_summary_plot() {
    let dir = scratch("csv");
    let src = write(&dir, "g.ebm", GAUSS);
    let csv = dir.join("g.csv");
    let png = dir.join("g.png");
    let (code, out, err) = ebm(&[
        "sample",
        &src,
        "--energy",
        "gauss",
        "--sampler",
        "mala",
        "--chains",
        "4",
        "--steps",
        "400",
        "--warmup",
        "200",
        "--seed",
        "3",
        "--out",
        &s(&csv),
        "--plot",
        &s(&png),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("mala: 4 chains × (200 warm-up + 400 steps, thin 1), seed 3"),
        "{out}"
    );
    assert!(
        out.contains("acceptance") && out.contains("chain-steps/s"),
        "{out}"
    );
    assert!(out.contains(&format!("wrote {}", csv.display())), "{out}");
    assert!(is_png(&png));

    let d = read_csv(&csv).unwrap();
    assert_eq!((d.chains, d.draws, d.dim), (4, 400, 2));
    let text = std::fs::read_to_string(&csv).unwrap();
    for key in [
        "# energy = gauss",
        "# sampler = mala",
        "# seed = 3",
        "# backend = cpu",
    ] {
        assert!(text.contains(key), "{key} missing from the header");
    }
    // The draws recover the target within 5 Monte-Carlo standard errors.
    for (coord, (mean, sd)) in [(1.0, 0.5), (-2.0, 1.0)].into_iter().enumerate() {
        let x = d.coord(coord);
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let se = stats::mcse_mean(&x, d.chains);
        assert!(
            (m - mean).abs() < 5.0 * se,
            "coord {coord}: {m} vs {mean} ± {se}"
        );
        let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / x.len() as f64;
        let sv = stats::mcse_variance(&x, d.chains);
        assert!((var - sd * sd).abs() < 5.0 * sv, "coord {coord}: var {var}");
    }

    let (code, out, err) = ebm(&["summary", &s(&csv)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("4 chains × 400 draws"), "{out}");
    for col in [
        "mean", "rhat", "ess_bulk", "ess_tail", "x.0", "x.1", "energy__",
    ] {
        assert!(out.contains(col), "{col} missing:\n{out}");
    }

    let bg = dir.join("bg.png");
    let (code, out, err) = ebm(&[
        "plot",
        &s(&csv),
        "--out",
        &s(&bg),
        "--energy-file",
        &src,
        "--energy",
        "gauss",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("wrote {}", bg.display()));
    assert!(is_png(&bg));
    let (code, _, err) = ebm(&["plot", &s(&csv), "--kind", "trace"]);
    assert_eq!(code, 0, "{err}");
    assert!(is_png(&dir.join("g.png")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn npy_output_and_init_from_a_file() {
    let dir = scratch("npy");
    let src = write(&dir, "g.ebm", GAUSS);
    let npy = dir.join("g.npy");
    let (code, _, err) = ebm(&[
        "sample",
        &src,
        "--energy",
        "gauss",
        "--sampler",
        "hmc",
        "--leapfrog",
        "8",
        "--chains",
        "3",
        "--steps",
        "50",
        "--warmup",
        "50",
        "--thin",
        "2",
        "--out",
        &s(&npy),
    ]);
    assert_eq!(code, 0, "{err}");
    let a = ebm::data::npy::read(&std::fs::read(&npy).unwrap()).unwrap();
    assert_eq!(a.shape, vec![3, 25, 2]);
    assert!(a.data.iter().all(|v| v.is_finite()));
    let (code, out, err) = ebm(&["summary", &s(&npy)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 chains × 25 draws"), "{out}");

    // Continue from the last draw of each chain: no warm-up, so the first
    // ULA step starts next to the saved points.
    let csv = dir.join("next.csv");
    let (code, _, err) = ebm(&[
        "sample",
        &src,
        "--energy",
        "gauss",
        "--sampler",
        "ula",
        "--step",
        "1e-12",
        "--chains",
        "3",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--init",
        &s(&npy),
        "--out",
        &s(&csv),
    ]);
    assert_eq!(code, 0, "{err}");
    let d = read_csv(&csv).unwrap();
    for c in 0..3 {
        let last = &a.data[(c * 25 + 24) * 2..(c * 25 + 25) * 2];
        for (x, y) in d.point(c, 0).iter().zip(last) {
            assert!((x - y).abs() < 1e-4, "chain {c}: {x} vs {y}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn same_seed_writes_identical_bytes() {
    let dir = scratch("seed");
    let src = write(&dir, "g.ebm", GAUSS);
    let run = |name: &str, seed: &str| {
        let p = dir.join(name);
        let (code, _, err) = ebm(&[
            "sample",
            &src,
            "--energy",
            "gauss",
            "--sampler",
            "rwmh",
            "--chains",
            "6",
            "--steps",
            "100",
            "--warmup",
            "50",
            "--seed",
            seed,
            "--init",
            "uniform:-1,1",
            "--out",
            &s(&p),
        ]);
        assert_eq!(code, 0, "{err}");
        std::fs::read(p).unwrap()
    };
    let a = run("a.csv", "7");
    let b = run("b.csv", "7");
    let c = run("c.csv", "8");
    assert!(a == b, "same seed, different bytes");
    assert!(a != c, "different seeds, same bytes");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The CPU backend's f32 fast paths (AVX-512 assembled loops, a GEMM's
/// bias and activation in its registers) write the bytes of the plain
/// Cranelift loops and separate steps, for a sampler that needs only ∇E
/// and one that needs E too, over a batch that is no multiple of 16.
#[test]
fn cpu_fast_paths_write_the_bytes_of_their_plain_forms() {
    let dir = scratch("fast-paths");
    let src = format!("{}/bench/workloads/mlp.ebm", env!("CARGO_MANIFEST_DIR"));
    let plain = [("EBM_ASM_LOOPS", "0"), ("EBM_GEMM_EPILOGUE", "0")];
    for sampler in ["ula", "mala"] {
        let run = |name: &str, env: &[(&str, &str)]| {
            let p = dir.join(format!("{sampler}-{name}.npy"));
            let (code, _, err) = common::cli::ebm_env(
                &[
                    "sample",
                    &src,
                    "--energy",
                    "mlp",
                    "--sampler",
                    sampler,
                    "--step",
                    "0.01",
                    "--chains",
                    "300",
                    "--warmup",
                    "0",
                    "--steps",
                    "20",
                    "--dtype",
                    "f32",
                    "--seed",
                    "5",
                    "--out",
                    &s(&p),
                ],
                env,
            );
            assert_eq!(code, 0, "{err}");
            std::fs::read(p).unwrap()
        };
        let fast = run("fast", &[]);
        assert!(
            fast == run("plain", &plain),
            "{sampler}: fast paths changed the draws"
        );
        assert!(
            fast == run("loops", &plain[..1]),
            "{sampler}: assembled loops changed the draws"
        );
        assert!(
            fast == run("epilogue", &plain[1..]),
            "{sampler}: GEMM epilogues changed the draws"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn interp_and_cpu_backends_agree() {
    let dir = scratch("backends");
    let src = write(&dir, "g.ebm", GAUSS);
    let mut means = Vec::new();
    for backend in ["interp", "cpu"] {
        let p = dir.join(format!("{backend}.csv"));
        let (code, _, err) = ebm(&[
            "sample",
            &src,
            "--energy",
            "gauss",
            "--sampler",
            "mala",
            "--chains",
            "4",
            "--steps",
            "300",
            "--warmup",
            "150",
            "--seed",
            "1",
            "--backend",
            backend,
            "--out",
            &s(&p),
        ]);
        assert_eq!(code, 0, "{backend}: {err}");
        let d = read_csv(&p).unwrap();
        let x = d.coord(0);
        let m = x.iter().sum::<f64>() / x.len() as f64;
        means.push((m, stats::mcse_mean(&x, d.chains)));
    }
    let ((m0, s0), (m1, s1)) = (means[0], means[1]);
    assert!(
        (m0 - m1).abs() < 5.0 * (s0 * s0 + s1 * s1).sqrt(),
        "interp {m0} ± {s0}, cpu {m1} ± {s1}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn divergent_chain_is_reported_and_isolated() {
    let dir = scratch("diverge");
    // A unit Gaussian, except beyond x = 5 where the energy falls like −x⁴:
    // a chain started there runs off to infinity.
    let src = write(
        &dir,
        "cliff.ebm",
        "energy cliff(x: [1]) = sum(where(x > 5, -x^4, 0.5 * x^2))\n",
    );
    let init = dir.join("init.npy");
    ebm::data::npy::write_f64(&init, &[4, 1], &[0.5, -0.5, 10.0, 0.0]).unwrap();
    let csv = dir.join("c.csv");
    let (code, out, err) = ebm(&[
        "sample",
        &src,
        "--energy",
        "cliff",
        "--sampler",
        "ula",
        "--step",
        "0.01",
        "--chains",
        "4",
        "--steps",
        "300",
        "--warmup",
        "0",
        "--init",
        &s(&init),
        "--out",
        &s(&csv),
    ]);
    assert_eq!(code, 0, "{err}");
    // It ran off to −∞ (E falls like −x⁴): an escape, not a plain divergence.
    assert!(
        out.contains("chain 2 escaped to infinity at iteration"),
        "{out}"
    );
    assert!(out.contains("the energy looks unbounded below"), "{out}");
    assert!(!out.contains("diverged first"), "{out}");
    assert!(out.contains("frozen chains 1"), "{out}");
    let d = read_csv(&csv).unwrap();
    for c in 0..4 {
        let div = (0..d.draws)
            .filter(|&k| d.divergent[c * d.draws + k])
            .count();
        if c == 2 {
            assert!(div > 0, "chain 2 is flagged");
        } else {
            assert_eq!(div, 0, "chain {c} is clean");
            let x: Vec<f64> = (0..d.draws).map(|k| d.point(c, k)[0]).collect();
            assert!(
                x.iter().all(|v| v.is_finite() && v.abs() < 6.0),
                "chain {c}"
            );
        }
    }
    let (code, out, _) = ebm(&["summary", &s(&csv)]);
    assert_eq!(code, 0);
    assert!(out.contains("divergent transitions"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An energy `ebm check` proves unbounded below: `ebm check` warns and
/// succeeds, `ebm sample` warns first (standard error) and then reports the
/// chains that escaped (the run summary, standard output); `ebm run` warns
/// and runs.
#[test]
fn unbounded_energy_warns_then_reports_escapes() {
    let dir = scratch("escape");
    let src = write(
        &dir,
        "bad.ebm",
        "energy sq(x: [2]) = sqnorm(x)\nenergy bad(x: [2]) = not sq(x)\nprint(bad([1, 0]))\n",
    );
    let (code, out, err) = ebm(&["check", &src]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: "), "{out}");
    assert!(
        err.starts_with("warning[W0101]: energy `bad` is unbounded below"),
        "{err}"
    );
    let (code, out, err) = ebm(&["run", &src]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "-1");
    assert!(err.contains("warning[W0101]"), "{err}");
    let csv = dir.join("b.csv");
    let (code, out, err) = ebm(&[
        "sample",
        &src,
        "--energy",
        "bad",
        "--sampler",
        "ula",
        "--chains",
        "2",
        "--out",
        &s(&csv),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning[W0101]: energy `bad` is unbounded below"),
        "{err}"
    );
    assert!(
        err.contains("= note: exp(−E) has no finite integral"),
        "{err}"
    );
    for c in 0..2 {
        assert!(
            out.contains(&format!("chain {c} was escaping to infinity at the end")),
            "{out}"
        );
    }
    assert!(out.contains("the energy looks unbounded below (a `not` or a negative weight?)"));
    // With a step so large the chains overflow, the escape has an iteration.
    let (code, out, err) = ebm(&[
        "sample",
        &src,
        "--energy",
        "bad",
        "--sampler",
        "ula",
        "--step",
        "1",
        "--chains",
        "2",
        "--out",
        &s(&csv),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("chain 0 escaped to infinity at iteration"),
        "{out}"
    );
    assert!(!out.contains("diverged first"), "{out}");
    // A sampler on a bounded energy with a step far too large: a divergence.
    let (code, out, err) = ebm(&[
        "sample",
        &src,
        "--energy",
        "sq",
        "--sampler",
        "ula",
        "--step",
        "2.5",
        "--chains",
        "2",
        "--out",
        &s(&csv),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("chain 0 diverged first at iteration"), "{out}");
    assert!(!out.contains("to infinity"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_flags_are_clear_errors() {
    let dir = scratch("flags");
    let src = write(&dir, "g.ebm", GAUSS);
    let out = s(&dir.join("o.csv"));
    let cases: &[(&[&str], &str)] = &[
        (&["--energy", "gaus"], "did you mean `gauss`"),
        (
            &["--energy", "gauss", "--chains", "0"],
            "--chains must be at least 1",
        ),
        (
            &["--energy", "gauss", "--noise", "0.1"],
            "--noise applies to --sampler ula only",
        ),
        (
            &["--energy", "gauss", "--init", "uniform:2,1"],
            "--init expects",
        ),
        (&["--energy", "gauss", "--cond", "1"], "not conditional"),
        (
            &["--energy", "gauss", "--step", "0"],
            "--step must be a number > 0",
        ),
        // A negative value is the flag's value, refused in the flag's words.
        (
            &["--energy", "gauss", "--step", "-1"],
            "--step must be a number > 0, found -1",
        ),
        (
            &["--energy", "gauss", "--replicas", "4"],
            "--replicas applies to --sampler pt only",
        ),
        (
            &["--energy", "gauss", "--sampler", "pt", "--replicas", "1"],
            "--replicas must be between 2 and 256, found 1",
        ),
        (
            &["--energy", "gauss", "--sampler", "pt", "--max-temp", "0.5"],
            "--max-temp must be a number > 1, found 0.5",
        ),
        (
            &["--energy", "gauss", "--sampler", "pt", "--ladder", "1,4,2"],
            "--ladder: the ladder's temperatures must be finite and increasing",
        ),
        (
            &["--energy", "gauss", "--sampler", "pt", "--ladder", "2,4"],
            "--ladder: the ladder must start at temperature 1",
        ),
        (
            &[
                "--energy",
                "gauss",
                "--sampler",
                "pt",
                "--ladder",
                "1,2",
                "--replicas",
                "3",
            ],
            "drop --replicas and --max-temp",
        ),
        (
            &["--energy", "gauss", "--sampler", "pt", "--swap-every", "0"],
            "--swap-every must be at least 1",
        ),
        (
            &["--energy", "gauss", "--sampler", "mala", "--friction", "1"],
            "--friction applies to --sampler uld only",
        ),
        (
            &["--energy", "gauss", "--sampler", "uld", "--friction", "-1"],
            "--friction must be a number > 0, found -1",
        ),
        (
            &["--energy", "gauss", "--sampler", "uld", "--target", "0.5"],
            "--target must be an acceptance rate",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["sample", src.as_str(), "--out", out.as_str()];
        args.extend_from_slice(flags);
        let (code, _, err) = ebm(&args);
        assert_eq!(code, 1, "{flags:?}");
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    let (code, _, err) = ebm(&["sample", &src, "--energy", "gauss", "--out", "x.txt"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--out expects a file name ending in .csv or .npy"),
        "{err}"
    );
    let (code, _, err) = ebm(&["summary", &s(&dir.join("missing.csv"))]);
    assert_eq!(code, 1);
    assert!(err.contains("no such file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn example_scripts_run_and_draw() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = scratch("examples");
    let cases: &[(&str, &[&str])] = &[
        ("gmm8.ebm", &["out/gmm8.png"]),
        (
            "sample_gmm8.ebm",
            &["out/gmm8_mala.png", "out/gmm8_mala.csv"],
        ),
        (
            "objectives/pt_vs_mala.ebm",
            &[
                "objectives/out/two_modes_mala.png",
                "objectives/out/two_modes_pt.png",
            ],
        ),
        (
            "sample_banana.ebm",
            &[
                "out/banana_hmc.png",
                "out/banana_hmc_trace.png",
                "out/banana_hmc.csv",
            ],
        ),
    ];
    for (name, outputs) in cases {
        // A copy, so the outputs land in the scratch folder.
        let src = dir.join(name);
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::copy(root.join("examples").join(name), &src).unwrap();
        let (code, out, err) = ebm(&["run", &s(&src)]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.contains(" = sample("), "{name}: {out}");
        for o in *outputs {
            let p = dir.join(o);
            assert!(
                out.contains(&format!("wrote {}", p.display())),
                "{name}: {out}"
            );
            if o.ends_with(".png") {
                assert!(is_png(&p), "{o}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_starting_points_file_points_at_init() {
    let dir = scratch("badinit");
    let src = write(
        &dir,
        "s.ebm",
        "energy gauss(x: [2]) = 0.5 * sqnorm(x)\nlet s = sample(gauss, init = \"start.npy\")\n",
    );
    ebm::data::npy::write_f64(&dir.join("start.npy"), &[3], &[1.0, 2.0, 3.0]).unwrap();
    let (code, _, err) = ebm(&["run", &src]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error[E0620]: cannot read the starting points"),
        "{err}"
    );
    assert!(err.contains("s.ebm:2:30"), "{err}");
    // Four values per row are not two points of a 2-D energy.
    ebm::data::npy::write_f64(&dir.join("start.npy"), &[2, 4], &[0.0; 8]).unwrap();
    let (code, _, err) = ebm(&["run", &src]);
    assert_eq!(code, 1);
    assert!(err.contains("found shape [2, 4]"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ebm sample --sampler pt` prints the ladder and the swap rates and
/// writes them in the CSV header; `--sampler uld` takes its friction; both
/// recover the Gaussian's mean.
#[test]
fn pt_and_uld_from_the_command_line() {
    let dir = scratch("pt-uld");
    let src = write(&dir, "g.ebm", GAUSS);
    let runs: &[(&str, &[&str])] = &[
        (
            "pt",
            &["--ladder", "1,2,4", "--swap-every", "2", "--step", "0.3"],
        ),
        ("pt", &["--replicas", "3", "--replica-move", "rwmh"]),
        ("uld", &["--step", "0.2", "--friction", "2"]),
    ];
    for (i, (sampler, flags)) in runs.iter().enumerate() {
        let csv = dir.join(format!("{i}.csv"));
        let mut args = vec![
            "sample",
            &src,
            "--energy",
            "gauss",
            "--sampler",
            sampler,
            "--chains",
            "4",
            "--steps",
            "2000",
            "--warmup",
            "300",
            "--seed",
            "5",
        ];
        let out_path = s(&csv);
        args.extend_from_slice(&["--out", &out_path]);
        args.extend_from_slice(flags);
        let (code, out, err) = ebm(&args);
        assert_eq!(code, 0, "{flags:?}: {err}");
        let d = read_csv(&csv).unwrap();
        let header = |k: &str| {
            d.header
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        if *sampler == "pt" {
            assert!(
                out.contains("swap acceptance between adjacent temperatures"),
                "{out}"
            );
            assert!(header("pt_swap_rates").is_some(), "{:?}", d.header);
            if i == 0 {
                assert_eq!(header("ladder").as_deref(), Some("1 2 4"));
                assert_eq!(header("swap_every").as_deref(), Some("2"));
            } else {
                assert_eq!(header("replica_move").as_deref(), Some("rwmh"));
            }
        } else {
            assert_eq!(header("friction").as_deref(), Some("2"));
        }
        for (k, want) in [(0, 1.0), (1, -2.0)] {
            let x = d.coord(k);
            let m = x.iter().sum::<f64>() / x.len() as f64;
            let se = stats::mcse_mean(&x, d.chains);
            assert!((m - want).abs() < 5.0 * se, "{sampler} x.{k}: {m} ± {se}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A chain started in a well too steep to move in (any move its last place
/// allows costs ~1e18 in energy, any smaller one rounds away): its step
/// size collapses during adaptation and `ebm sample` names it by id in the
/// run summary; the CSV header records every chain's adapted step size.
#[test]
fn a_stuck_chain_is_named_in_the_run_summary() {
    let dir = scratch("stuck");
    let src = write(
        &dir,
        "well.ebm",
        "energy well(x: [1]) = sum(where(x > 10, 1e30 * (x - 20)^2, 0.5 * x^2))\n",
    );
    let init = dir.join("init.npy");
    ebm::data::npy::write_f64(&init, &[4, 1], &[0.5, -0.5, 0.1, 20.0]).unwrap();
    let csv = dir.join("w.csv");
    let (code, out, err) = ebm(&[
        "sample",
        &src,
        "--energy",
        "well",
        "--sampler",
        "mala",
        "--step",
        "0.1",
        "--chains",
        "4",
        "--steps",
        "300",
        "--warmup",
        "300",
        "--init",
        &s(&init),
        "--out",
        &s(&csv),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("chain 3 is stuck: step size"), "{out}");
    assert!(out.contains("1 distinct draw of 300"), "{out}");
    for c in 0..3 {
        assert!(!out.contains(&format!("chain {c} is stuck")), "{out}");
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.contains("\n# stuck_chains = 3\n"), "{text}");
    let steps = text
        .lines()
        .find_map(|l| l.strip_prefix("# step_sizes = "))
        .expect("per-chain step sizes in the header");
    let steps: Vec<f64> = steps.split(' ').map(|v| v.parse().unwrap()).collect();
    assert_eq!(steps.len(), 4);
    assert!(steps[3] < 1e-8 * steps[0].min(steps[1]), "{steps:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `ebm summary` of a file where one chain holds NaN: R-hat, ESS and MCSE
/// print as `NaN` (never a huge number), and the table stays aligned.
#[test]
fn summary_prints_nan_diagnostics_in_aligned_columns() {
    let dir = scratch("nan-rhat");
    let mut text = String::from("chain__,draw__,energy__,accept__,divergent__,x.0,x.1\n");
    for c in 0..4 {
        for k in 0..50 {
            let a = ((c * 50 + k) as f64 * 0.7).sin();
            let b = ((c * 50 + k) as f64 * 1.3).cos();
            let x0 = if c == 2 && k > 10 { f64::NAN } else { a };
            text.push_str(&format!(
                "{c},{k},{},0.9,0,{x0},{b}\n",
                0.5 * (a * a + b * b)
            ));
        }
    }
    let csv = write(&dir, "nan.csv", &text);
    let (code, out, err) = ebm(&["summary", &csv]);
    assert_eq!(code, 0, "{err}");
    let row = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {out}"))
            .to_string()
    };
    let x0 = row("x.0");
    let cells: Vec<&str> = x0.split_whitespace().collect();
    assert_eq!(cells.len(), 10, "{out}");
    // mcse, rhat, ess_bulk, ess_tail.
    for i in [2, 7, 8, 9] {
        assert_eq!(cells[i], "NaN", "column {i}: {out}");
    }
    assert!(!out.contains("nan"), "{out}");
    // Every table line is as wide as the header.
    let header = out
        .lines()
        .find(|l| l.contains("ess_bulk"))
        .unwrap()
        .chars()
        .count();
    for name in ["energy__", "x.0", "x.1"] {
        assert_eq!(row(name).chars().count(), header, "{name}: {out}");
    }
    assert!(out.contains("not a number for x.0"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--format cmdstan` writes CmdStan's one file per chain, with the same
/// draws as the default format; `ebm summary`, `ebm plot` and `--init` read
/// them by their base name or as a list, and refuse mismatched chains.
#[test]
fn cmdstan_format_writes_one_file_per_chain() {
    let dir = scratch("cmdstan");
    let src = write(&dir, "g.ebm", GAUSS);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "sample", &src, "--energy", "gauss", "--chains", "3", "--steps", "40", "--warmup",
            "30", "--seed", "4",
        ];
        args.extend_from_slice(extra);
        ebm(&args)
    };
    let single = dir.join("g.csv");
    let (code, _, err) = run(&["--out", &s(&single)]);
    assert_eq!(code, 0, "{err}");
    let base = dir.join("cs/g.csv");
    let (code, out, err) = run(&["--format", "cmdstan", "--out", &s(&base)]);
    assert_eq!(code, 0, "{err}");
    let files: Vec<PathBuf> = (1..=3).map(|c| dir.join(format!("cs/g_{c}.csv"))).collect();
    assert!(
        out.contains(&format!(
            "wrote {} … {} (3 files, one per chain)",
            files[0].display(),
            files[2].display()
        )),
        "{out}"
    );
    assert!(!base.exists());
    let (a, b) = (read_csv(&single).unwrap(), read_csv(&base).unwrap());
    assert_eq!((b.chains, b.draws, b.dim), (3, 40, 2));
    assert_eq!((a.x, a.energy, a.accept), (b.x, b.energy, b.accept));

    let summary = |paths: &[&str]| {
        let mut args = vec!["summary"];
        args.extend_from_slice(paths);
        let (code, out, err) = ebm(&args);
        assert_eq!(code, 0, "{err}");
        out
    };
    let expected = summary(&[&s(&single)]);
    assert_eq!(summary(&[&s(&base)]), expected);
    let listed: Vec<String> = files.iter().map(|p| s(p)).collect();
    let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
    assert_eq!(summary(&listed), expected);

    let png = dir.join("cs.png");
    let (code, _, err) = ebm(&["plot", &s(&base), "--out", &s(&png)]);
    assert_eq!(code, 0, "{err}");
    assert!(is_png(&png));
    let (code, _, err) = run(&["--init", &s(&base), "--out", &s(&dir.join("again.csv"))]);
    assert_eq!(code, 0, "{err}");

    // A chain of another run (fewer draws) is refused, by name.
    let (code, _, err) = ebm(&[
        "sample",
        &src,
        "--energy",
        "gauss",
        "--chains",
        "1",
        "--steps",
        "20",
        "--warmup",
        "5",
        "--format",
        "cmdstan",
        "--out",
        &s(&dir.join("short.csv")),
    ]);
    assert_eq!(code, 0, "{err}");
    let short = s(&dir.join("short_1.csv"));
    let (code, _, err) = ebm(&["summary", listed[0], &short]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{short}: 20 draws, but {} has 40", listed[0])),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// CmdStan outputs are checked before the run: a `.csv` name, and every
/// chain's file writable.
#[test]
fn cmdstan_outputs_are_checked_before_the_run() {
    let dir = scratch("cmdstan-bad");
    let src = write(&dir, "g.ebm", GAUSS);
    let sample = |out: &str| {
        ebm(&[
            "sample", &src, "--energy", "gauss", "--chains", "2", "--steps", "10", "--format",
            "cmdstan", "--out", out,
        ])
    };
    let (code, _, err) = sample(&s(&dir.join("g.npy")));
    assert_eq!(code, 1);
    assert!(
        err.contains("--format cmdstan writes one .csv file per chain"),
        "{err}"
    );
    std::fs::create_dir(dir.join("g_2.csv")).unwrap();
    let (code, out, err) = sample(&s(&dir.join("g.csv")));
    assert_eq!(code, 1);
    assert!(err.contains("g_2.csv: it is a folder"), "{err}");
    assert!(
        out.is_empty() && !dir.join("g_1.csv").exists(),
        "refused before sampling"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
