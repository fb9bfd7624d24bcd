//! The command line as a user meets it: `ebm eval` and `ebm dump` on every
//! example, known values, JSON shape, and the errors for bad flags.

mod common;

use common::cli::ebm;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// (file, energy, point, cond)
const EXAMPLES: &[(&str, &str, &str, Option<&str>)] = &[
    ("examples/gmm8.ebm", "gmm", "0.5,0.3", None),
    ("examples/ring.ebm", "ring", "1.0,1.5", None),
    ("examples/banana.ebm", "banana", "0.3,-0.2", None),
    ("examples/composed.ebm", "composed", "-1.0,0.5", None),
    (
        "examples/composed.ebm",
        "blob",
        "1.0,0.5",
        Some("1,0,0,0,0,0,0,0"),
    ),
    ("examples/mlp.ebm", "net", "0.5,-0.5", None),
];

#[test]
fn eval_agrees_across_backends_on_every_example() {
    for (file, energy, at, cond) in EXAMPLES {
        let mut results = Vec::new();
        for backend in ["interp", "cpu"] {
            let mut args = vec![
                "eval", file, "--energy", energy, "--at", at, "--grad", "--hvp", "1,-1",
            ];
            args.extend(["--json", "--backend", backend]);
            if let Some(c) = cond {
                args.extend(["--cond", c]);
            }
            let (code, out, err) = ebm(&args);
            assert_eq!(code, 0, "{file} {energy} on {backend}: {err}");
            results.push(json(&out));
        }
        let (a, b) = (&results[0], &results[1]);
        let flat = |v: &serde_json::Value| -> Vec<f64> {
            let mut xs = vec![v["energy"].as_f64().unwrap()];
            for key in ["grad", "hvp"] {
                xs.extend(
                    v[key]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap()),
                );
            }
            xs
        };
        for (x, y) in flat(a).iter().zip(flat(b)) {
            assert!(
                (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
                "{file} {energy}: interp {x} vs cpu {y}"
            );
        }
    }
}

#[test]
fn eval_prints_known_values() {
    let (code, out, _) = ebm(&[
        "eval",
        "examples/gmm8.ebm",
        "--energy",
        "gmm",
        "--at",
        "0,0",
        "--json",
    ]);
    assert_eq!(code, 0);
    // At the centre every component is at distance 2: E = 2²/(2·0.1²) − log 8.
    let e = json(&out)["energy"].as_f64().unwrap();
    assert!((e - (200.0 - 8f64.ln())).abs() < 1e-9, "{e}");
    let (_, out, _) = ebm(&[
        "eval",
        "examples/banana.ebm",
        "--energy",
        "banana",
        "--at",
        "0,1",
        "--grad",
    ]);
    assert_eq!(out, "energy: 5.5\ngrad:   [-1, 10]\n");
    let (_, out, _) = ebm(&[
        "eval",
        "examples/ring.ebm",
        "--energy",
        "ring",
        "--at",
        "2,0",
        "--dtype",
        "f32",
        "--json",
    ]);
    assert_eq!(json(&out)["energy"].as_f64().unwrap(), 0.0);
}

#[test]
fn dump_prints_every_stage_of_every_example() {
    for (file, energy, _, _) in EXAMPLES {
        for stage in ["ast", "ir", "grad", "opt", "clif"] {
            let (code, out, err) = ebm(&["dump", file, "--stage", stage, "--energy", energy]);
            assert_eq!(code, 0, "{file} --stage {stage}: {err}");
            assert!(!out.is_empty(), "{file} --stage {stage} printed nothing");
        }
    }
}

#[test]
fn bad_requests_are_clear_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["eval", "examples/gmm8.ebm", "--energy", "gm", "--at", "0,0"],
            "no energy named `gm`; did you mean `gmm`?",
        ),
        (
            &[
                "eval",
                "examples/gmm8.ebm",
                "--energy",
                "gmm",
                "--at",
                "0,0,0",
            ],
            "--at needs 2 numbers, found 3",
        ),
        (
            &[
                "eval",
                "examples/gmm8.ebm",
                "--energy",
                "gmm",
                "--at",
                "0,x",
            ],
            "--at expects comma-separated numbers, found `x`",
        ),
        (
            &[
                "eval",
                "examples/composed.ebm",
                "--energy",
                "blob",
                "--at",
                "0,0",
            ],
            "`blob` is conditional: pass --cond with 8 numbers",
        ),
        (
            &["eval", "examples/missing.ebm", "--energy", "e", "--at", "0"],
            "no such file examples/missing.ebm",
        ),
        (
            &[
                "eval",
                "examples/gmm8.ebm",
                "--energy",
                "gmm",
                "--at",
                "nan,0",
            ],
            "--at expects finite numbers, found `nan`",
        ),
    ];
    for (args, want) in cases {
        let (code, _, err) = ebm(args);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(want), "{args:?}: expected `{want}` in\n{err}");
    }
}

/// A FIFO given as a program, sample file or data file is refused at once
/// (reading one would block forever), and ebm's own sample CSV, with its
/// `#` settings lines, loads back into a script.
#[test]
fn special_files_are_refused_and_own_files_load_back() {
    let dir = std::env::temp_dir().join(format!("ebm-cli-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("pipe.csv");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let f = fifo.display().to_string();
        for args in [vec!["check", &f], vec!["summary", &f], vec!["plot", &f]] {
            let (code, _, err) = ebm(&args);
            assert_eq!(code, 1, "{args:?}");
            assert!(err.contains("not a regular file"), "{args:?}: {err}");
        }
    }
    let prog = dir.join("e.ebm");
    std::fs::write(&prog, "energy e(x: [2]) = sum(x^2)\n").unwrap();
    let samples = dir.join("s.csv");
    let (p, s) = (prog.display().to_string(), samples.display().to_string());
    let (code, _, err) = ebm(&[
        "sample", &p, "--energy", "e", "--chains", "2", "--steps", "3", "--out", &s,
    ]);
    assert_eq!(code, 0, "{err}");
    let script = dir.join("load.ebm");
    std::fs::write(
        &script,
        "const d = load(\"s.csv\", key = \"x.1\")\nprint(d)\n",
    )
    .unwrap();
    let (code, out, err) = ebm(&["run", &script.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches(',').count(), 5, "six values of x.1: {out}");
}

/// `-` reads the program from standard input; its diagnostics name `<stdin>`.
#[test]
fn a_dash_reads_the_program_from_stdin() {
    let (code, stdout, stderr) = common::cli::ebm_stdin(&["run", "-"], "print(1 + 1)\n");
    assert_eq!((code, stdout.as_str()), (0, "2\n"), "{stderr}");
    let (code, stdout, _) =
        common::cli::ebm_stdin(&["check", "-"], "energy e(x: [2]) = sum(x^2)\n");
    assert_eq!(code, 0);
    assert!(stdout.starts_with("ok: <stdin> (1 energy"), "{stdout}");
    let (code, _, stderr) = common::cli::ebm_stdin(&["check", "-"], "energy e(x: [2]) = sum(y)\n");
    assert_eq!(code, 1);
    assert!(stderr.contains("--> <stdin>:1:24"), "{stderr}");
}
