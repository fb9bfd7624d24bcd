//! Annealed importance sampling against known log Z (issue 11's must-show,
//! short fixed-seed form; `cargo run --release --example ais_table` prints
//! the longer table): five 2-D energies (closed-form and learned) against
//! grid quadrature, and a 10-d Gaussian against ½ log det(2πΣ). Over 10
//! independent runs the truth must lie within 3 standard errors. Then
//! `ebm logz` as a user runs it.

mod common;

#[path = "../examples/ais/cases.rs"]
mod cases;

use common::cli::ebm;

const RUNS: usize = 10;
const CHAINS: usize = 128;
const STEPS: usize = 1000;

fn check(names: &[&str]) {
    for case in cases::cases().iter().filter(|c| names.contains(&c.energy)) {
        let row = cases::run(case, RUNS, CHAINS, STEPS, 0);
        println!("{}", row.markdown(CHAINS));
        assert!(
            row.z.abs() < 3.0,
            "{}: AIS {} ± {} vs true {} (z = {:.2})",
            row.name,
            row.log_z,
            row.se,
            row.truth,
            row.z
        );
        // Healthy weights: a quarter of each run's chains count.
        assert!(
            row.ess > CHAINS as f64 / 4.0,
            "{}: ESS {}",
            row.name,
            row.ess
        );
    }
}

#[test]
fn ais_matches_quadrature_on_closed_form_2d_energies() {
    check(&["banana", "ring", "gmm", "composed"]);
}

#[test]
fn ais_matches_quadrature_on_a_learned_energy() {
    check(&["net"]);
}

#[test]
fn ais_matches_the_exact_log_z_of_a_10d_gaussian() {
    check(&["gauss10"]);
}

fn file(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn field(json: &str, key: &str) -> f64 {
    let at = json.find(&format!("\"{key}\": ")).expect(key) + key.len() + 4;
    let rest = &json[at..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim().parse().unwrap()
}

#[test]
fn logz_cli_prints_the_estimate_and_json() {
    let ring = file("examples/ring.ebm");
    let base = [
        "logz", &ring, "--energy", "ring", "--steps", "300", "--runs", "4", "--chains", "32",
    ];
    let (code, out, err) = ebm(&base);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("log Z = "), "{out}");
    let first: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        (first[0], first[1], first[2], first[4]),
        ("log", "Z", "=", "±"),
        "{out}"
    );

    let mut args = base.to_vec();
    args.push("--json");
    let (code, json, err) = ebm(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(field(&json, "runs"), 4.0);
    let (v, se) = (field(&json, "logz"), field(&json, "se"));
    // The ring's log Z is 1.5529 (quadrature); a short run is still close.
    assert!(se > 0.0 && (v - 1.5529).abs() < 0.2, "{json}");
    // Same seed, same bytes (the timing aside).
    let (_, again, _) = ebm(&args);
    let cut = |s: &str| s[..s.find("\"elapsed_s\"").unwrap()].to_string();
    assert_eq!(cut(&json), cut(&again));
}

#[test]
fn logz_cli_fits_the_base_to_data_and_reports_heldout_nll() {
    let f = file("examples/ais/learned.ebm");
    let p = file("examples/ais/moons.safetensors");
    let (code, out, err) = ebm(&[
        "logz",
        &f,
        "--energy",
        "net",
        "--params",
        &p,
        "--data",
        "toy:two_moons:2000",
        "--heldout",
        "toy:two_moons:1000",
        "--steps",
        "300",
        "--runs",
        "4",
        "--chains",
        "32",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let (z, nll) = (field(&out, "logz"), field(&out, "heldout_nll"));
    assert!((z - 3.229).abs() < 0.1, "{out}");
    assert!(
        nll.is_finite() && field(&out, "heldout_nll_se") > 0.0,
        "{out}"
    );
    assert_eq!(field(&out, "heldout_rows"), 1000.0);

    // Reverse AIS from the data rows: flagged, and close to the same value
    // (the data approximate the model's draws).
    let (code, out, err) = ebm(&[
        "logz",
        &f,
        "--energy",
        "net",
        "--params",
        &p,
        "--data",
        "toy:two_moons:2000",
        "--reverse",
        "--steps",
        "300",
        "--runs",
        "4",
        "--chains",
        "32",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"reverse\": true"), "{out}");
    assert!((field(&out, "logz") - 3.229).abs() < 0.1, "{out}");
}

#[test]
fn logz_cli_refuses_bad_flags_and_files_in_one_line() {
    let ring = file("examples/ring.ebm");
    let cases: [(&[&str], &str); 5] = [
        (&["--runs", "1"], "--runs must be at least 2"),
        (&["--steps", "1"], "--steps must be at least 2"),
        (&["--step", "0"], "--step must be a number > 0"),
        (
            &[
                "--chains", "1000000", "--runs", "1000", "--steps", "1000000",
            ],
            "limit",
        ),
        (
            &["--data", "/nonexistent/rows.csv"],
            "/nonexistent/rows.csv",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["logz", &ring, "--energy", "ring"];
        args.extend_from_slice(extra);
        let (code, out, err) = ebm(&args);
        assert_eq!(code, 1, "{extra:?}: {out}{err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{extra:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // Rows of the wrong width name the flag and the widths.
    let dir = std::env::temp_dir().join(format!("ebm-logz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rows = dir.join("three.csv");
    std::fs::write(&rows, "a,b,c\n1,2,3\n4,5,6\n").unwrap();
    let r = rows.display().to_string();
    let (code, _, err) = ebm(&["logz", &ring, "--energy", "ring", "--heldout", &r]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--heldout") && err.contains("three.csv"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ebm evaluate --json` reports the KSD² of the held-out rows against the
/// energy: about 0 for exact draws of a standard normal energy, clearly
/// more for shifted draws.
#[test]
fn evaluate_reports_ksd_of_the_heldout_rows() {
    let dir = std::env::temp_dir().join(format!("ebm-ksd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("g.ebm");
    std::fs::write(&prog, "energy g(x: [2]) = 0.5 * sqnorm(x)\n").unwrap();
    let z = ebm::data::rng::normal(11, 2 * 1000);
    let ksd = |shift: f64| {
        let rows = dir.join(format!("rows{shift}.csv"));
        let mut text = String::from("a,b\n");
        for r in z.chunks_exact(2) {
            text.push_str(&format!("{},{}\n", r[0] + shift, r[1]));
        }
        std::fs::write(&rows, text).unwrap();
        let (p, r) = (prog.display().to_string(), rows.display().to_string());
        let (code, out, err) = ebm(&[
            "evaluate", &p, "--energy", "g", "--data", &r, "--chains", "20", "--steps", "10",
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        field(&out, "ksd")
    };
    let (exact, shifted) = (ksd(0.0), ksd(0.5));
    // The null KSD² has sd ∝ 1/n: 4e-3 at n = 300 (stats::ksd's tests),
    // about 1e-3 here.
    assert!(exact.abs() < 5e-3, "exact {exact}");
    assert!(shifted > 0.1, "shifted {shifted}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `ais(..)` statement in a script: the ring's log Z (by 1-D
/// quadrature in the radius) within 3 standard errors, from a standard
/// normal base and from a base fitted to a data set, with its held-out NLL.
#[test]
fn ais_statement_prints_log_z_and_the_heldout_nll() {
    let dir = std::env::temp_dir().join(format!("ebm-ais-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("ais.ebm");
    std::fs::write(
        &script,
        "energy ring(x: [2]) = 4.0 * (sqrt(sum(x^2)) - 1.5)^2\n\
         data r = rings(n = 2000, seed = 3, heldout = 0.25)\n\
         ais(ring, steps = 300, runs = 10, chains = 64)\n\
         ais(ring, r, steps = 300, runs = 10, chains = 64, sampler = \"hmc\")\n",
    )
    .unwrap();
    let (code, stdout, stderr) = ebm(&["run", &script.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    // log Z by 1-D quadrature in r: ∫ exp(−4(r − 1.5)²) 2πr dr.
    let h = 1e-4;
    let truth = (0..60_000)
        .map(|i| {
            let r = (i as f64 + 0.5) * h;
            (-4.0 * (r - 1.5f64).powi(2)).exp() * std::f64::consts::TAU * r * h
        })
        .sum::<f64>()
        .ln();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ais(")).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        let v: Vec<f64> = line
            .split("log Z = ")
            .nth(1)
            .unwrap()
            .split([' ', '±'])
            .filter_map(|t| t.parse().ok())
            .take(2)
            .collect();
        let z = (v[0] - truth) / v[1];
        assert!(z.abs() < 3.0, "{line}: truth {truth}, z {z:.2}");
    }
    assert!(stdout.contains("fitted Gaussian base"), "{stdout}");
    assert!(stdout.contains("held-out NLL = "), "{stdout}");
}
