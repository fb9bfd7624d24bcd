//! `ebm run`: statements execute in order; `print` evaluates constants,
//! parameters (at their initial values) and energies/models applied to
//! literals; runners run (sampling, training), and `export` reports "not supported yet".

use std::path::PathBuf;

use ebm::pipeline::{SourceFile, run};

fn run_src(src: &str) -> Result<String, String> {
    let file = SourceFile {
        path: "script.ebm".into(),
        text: src.into(),
    };
    let mut out = Vec::new();
    run(&file, &mut out)
        .map(|()| String::from_utf8(out).unwrap())
        .map_err(String::from)
}

#[test]
fn prints_constants_and_energies() {
    let out = run_src(
        r#"const centers = ring(4, radius = 2.0)
energy gauss(x: [2]) = 0.5 * sqnorm(x)
energy cond(x: [2] | c: [2]) = dot(x, c)
model double(x: [3]) -> [3] = 2 * x
param b: [2] ~ zeros
let y = gauss([3, 4]) + 1
print(linspace(0, 1, 3), onehot(1, 3))
print(gauss([3, 4]), cond([1, 2] | [10, 100]), double([1, 2, 3]))
print(y, b, eye(2), centers[0])
print("E(0) =", gauss([0, 0]), "done", reshape([5], []), zeros([]))
"#,
    )
    .unwrap();
    assert_eq!(
        out,
        "[0, 0.5, 1] [0, 1, 0]\n12.5 210 [2, 4, 6]\n13.5 [0, 0] [[1, 0], [0, 1]] [2, 0]\nE(0) = 0 done 5 0\n"
    );
}

#[test]
fn randn_is_the_portable_generator() {
    let out = run_src("print(randn([4], seed = 1))\n").unwrap();
    let vals: Vec<f64> = out
        .trim()
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    let want = [-0.0342673, -1.2926085, -2.5000675, 0.9114666];
    for (g, w) in vals.iter().zip(want) {
        assert!((g - w).abs() < 1e-6);
    }
}

#[test]
fn export_writes_a_model_file_that_use_imports_with_its_values() {
    // Parameters changed by training are exported at their new values; a
    // second script imports the energy twice (one copy namespaced) and sees
    // the same energies as the first script printed.
    let src = "energy e(x: [2]) = sum(mlp(x, [8, 1], act = tanh)) + 0.1 * sum(x^2)\n\
               data d = two_moons(n = 200, seed = 3)\n\
               train(e, d, method = pcd, iters = 5, batch = 32, steps = 3, seed = 0, out = \"run\")\n\
               print(e([0.5, -1.0]))\n\
               export(e, \"e.ebmc\")\n";
    let (out, dir) = run_in("export", src);
    let out = out.unwrap();
    let first = out.lines().find(|l| !l.contains(' ')).unwrap().to_string();
    assert!(dir.join("e.ebmc").is_file(), "{out}");
    let file = SourceFile {
        path: dir.join("user.ebm").display().to_string(),
        text: "use e, e as e2 from \"e.ebmc\"\n\
               energy both(x: [2]) = e(x) and e2(x)\n\
               print(e([0.5, -1.0]))\n\
               print(both([0.5, -1.0]) - 2 * e2([0.5, -1.0]))\n"
            .into(),
    };
    let mut text = Vec::new();
    run(&file, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, [first.as_str(), "0"], "{text}");
}

/// Runs `src` as `DIR/script.ebm` in a fresh folder; returns (stdout, folder).
fn run_in(name: &str, src: &str) -> (Result<String, String>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("ebm-script-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = SourceFile {
        path: dir.join("script.ebm").display().to_string(),
        text: src.into(),
    };
    let mut out = Vec::new();
    let r = run(&file, &mut out)
        .map(|()| String::from_utf8(out).unwrap())
        .map_err(String::from);
    (r, dir)
}

#[test]
fn sample_plot_save_summary() {
    let (out, dir) = run_in(
        "all",
        r#"energy gauss(x: [2]) = 0.5 * sqnorm((x - [1, -2]) / [0.5, 1])
let s = sample(gauss, rwmh(step = 0.5), chains = 4, steps = 300, warmup = 200, seed = 2)
summary(s)
print("table:", summary(s))
plot(s, "out/gauss.png")
plot(s, "out/trace.png", kind = "trace", title = "traces")
save(s, "out/gauss.csv")
save(s, "gauss.npy")
"#,
    );
    let out = out.unwrap();
    assert!(
        out.starts_with(
            "s = sample(gauss) with rwmh: 4 chains × (200 warm-up + 300 steps, thin 1), seed 2\n"
        ),
        "{out}"
    );
    assert!(out.contains("  acceptance "), "{out}");
    assert_eq!(out.matches("4 chains × 300 draws").count(), 2, "{out}");
    assert!(out.contains("table: sampler rwmh"), "{out}");
    // Output paths are relative to the script's folder.
    for f in [
        "out/gauss.png",
        "out/trace.png",
        "out/gauss.csv",
        "gauss.npy",
    ] {
        let p = dir.join(f);
        assert!(p.exists(), "{f}");
        assert!(out.contains(&format!("wrote {}", p.display())), "{out}");
    }
    let d = ebm::sample::io::read_csv(&dir.join("out/gauss.csv")).unwrap();
    assert_eq!((d.chains, d.draws, d.dim), (4, 300, 2));
    let m = d.coord(0).iter().sum::<f64>() / 1200.0;
    let se = ebm::stats::mcse_mean(&d.coord(0), 4);
    assert!((m - 1.0).abs() < 5.0 * se, "{m} ± {se}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn conditional_energy_and_decoupled_langevin() {
    let (out, dir) = run_in(
        "cond",
        r#"const centers = ring(4, radius = 3.0)
energy blob(x: [2] | c: [4]) = sqnorm(x - c @ centers) / 2
let s = sample(blob, ula(step = 0.02, noise = 0.1), cond = onehot(1, 4), chains = 8,
               steps = 200, warmup = 200, init = normal(0, 0.5), dtype = "f32")
save(s, "s.csv")
let t = sample(blob, mala, cond = onehot(1, 4), init = "s.csv", steps = 20, warmup = 0)
"#,
    );
    let out = out.unwrap();
    // T = noise² / (2 step) = 0.25.
    assert!(out.contains("effective temperature T = 0.2500"), "{out}");
    let d = ebm::sample::io::read_csv(&dir.join("s.csv")).unwrap();
    // Centre 1 of the ring is (0, 3); the tolerance follows from the ESS.
    for (i, want) in [(0, 0.0), (1, 3.0)] {
        let x = d.coord(i);
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let se = ebm::stats::mcse_mean(&x, d.chains);
        assert!((m - want).abs() < 4.0 * se, "x.{i}: {m} vs {want} ± {se}");
    }
    assert!(out.contains("t = sample(blob) with mala"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_stop_the_run_before_anything_runs() {
    let (out, dir) = run_in(
        "bad",
        r#"energy gauss(x: [2]) = 0.5 * sqnorm(x)
print(1)
let s = sample(gauss, chains = 4)
save(s, "s.csv")
let t = sample(gauss, mala(stepp = 0.1), chains = 0)
"#,
    );
    let err = out.unwrap_err();
    assert!(
        err.contains("error[E0601]") && err.contains("found `stepp`"),
        "{err}"
    );
    assert!(
        err.contains(
            "error[E0606]: expected a whole number from 1 to 16777216 for `chains`, found 0"
        ),
        "{err}"
    );
    assert!(!dir.join("s.csv").exists(), "nothing ran");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_validates_runner_arguments() {
    let src = "energy gauss(x: [2]) = 0.5 * sqnorm(x)\nlet s = sample(gauss, hmc(steps = 0))\nplot(s, \"a.png\")\nsummary(q)\n";
    let err = ebm::pipeline::check_source("c.ebm", src)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("c.ebm:2:35") && err.contains("`steps`"),
        "{err}"
    );
    assert!(err.contains("c.ebm:4:9") && err.contains("E0608"), "{err}");
    // Valid runner statements pass `ebm check` without running.
    let ok = "energy gauss(x: [2]) = 0.5 * sqnorm(x)\nlet s = sample(gauss, chains = 100000, steps = 100000, thin = 1000)\nplot(s, \"a.png\")\n";
    ebm::pipeline::check_source("c.ebm", ok).unwrap();
}

/// `train(..)` updates the program's parameters in place: `print` after it
/// sees the trained values; its files are written; `evaluate(..)` reports;
/// `load_params(..)` reads the trained values back exactly.
#[test]
fn train_evaluate_load_params() {
    let (r, dir) = run_in(
        "train",
        r#"param mu: [2] ~ zeros
energy g(x: [2]) = 0.5 * sqnorm(x - mu)
data pts = eight_gaussians(n = 400, seed = 3, heldout = 0.25)
print(mu)
train(g, pts, method = cd, iters = 30, batch = 64, steps = 5, lr = 0.05, out = "run")
print(mu)
evaluate(g, pts, chains = 40, steps = 40)
let s = sample(g, mala, chains = 2, warmup = 10, steps = 10)
load_params("run/params.safetensors")
print(mu)
"#,
    );
    let out = r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "[0, 0]");
    assert!(lines[1].starts_with("train(g, pts) 30 iterations"), "{out}");
    assert_ne!(lines[2], "[0, 0]", "the parameters did not change: {out}");
    assert!(
        out.contains("MMD²") && out.contains("KL(data || model)"),
        "{out}"
    );
    assert_eq!(lines.last().copied(), Some(lines[2]), "{out}");
    for f in [
        "params.safetensors",
        "checkpoint.safetensors",
        "metrics.csv",
    ] {
        assert!(dir.join("run").join(f).is_file(), "{f}");
    }
}

#[test]
fn jem_and_classifier_evaluate() {
    let digits = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits.csv");
    let src = format!(
        r#"model f(x: [64]) -> [10] = mlp(x, [32, 10], act = swish)
data d = csv("{digits}", label = "label", scale = "range:-1,1", heldout = 0.2)
jem(f, d, iters = 30, batch = 32, steps = 5, lr = 0.001, out = "jem")
jem(f, d, baseline = 1, iters = 10, out = "base")
evaluate(f, d)
"#
    );
    let (r, dir) = run_in("jem", &src);
    let out = r.unwrap();
    assert!(out.starts_with("jem(f, d) jem 30 iterations"), "{out}");
    assert!(out.contains("jem(f, d) classifier 10 iterations"), "{out}");
    assert!(out.contains("evaluate(f, d): 359 rows, accuracy"), "{out}");
    assert!(out.contains("permuted:"), "{out}");
    assert!(dir.join("jem/params.safetensors").is_file());
}

#[test]
fn unwritable_outputs_stop_the_run_before_it_starts() {
    let (r, dir) = run_in(
        "outputs",
        "energy e(x: [2]) = sqnorm(x)\nprint(1)\nlet s = sample(e, mala, chains = 2, steps = 10)\nsave(s, \"taken.csv\")\n",
    );
    // The first run writes taken.csv; make it a folder and run again.
    r.unwrap();
    let taken = dir.join("taken.csv");
    std::fs::remove_file(&taken).unwrap();
    std::fs::create_dir(&taken).unwrap();
    let file = SourceFile {
        path: dir.join("script.ebm").display().to_string(),
        text: "energy e(x: [2]) = sqnorm(x)\nprint(1)\nlet s = sample(e, mala, chains = 2, steps = 10)\nsave(s, \"taken.csv\")\n".into(),
    };
    let mut out = Vec::new();
    let err = String::from(run(&file, &mut out).unwrap_err());
    assert!(
        out.is_empty(),
        "nothing ran: {}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        err.contains("E0621") && err.contains("it is a folder"),
        "{err}"
    );
}

/// `sample(...)` in a script prints the same run summary as `ebm sample`:
/// a chain started in a well too steep to move in is named as stuck, and
/// `summary(s)` prints its R-hat in the table's columns.
#[test]
fn script_sample_names_a_stuck_chain() {
    let dir = std::env::temp_dir().join(format!("ebm-script-stuck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let init = dir.join("init.npy");
    ebm::data::npy::write_f64(&init, &[4, 1], &[0.5, -0.5, 0.1, 20.0]).unwrap();
    let src = format!(
        "energy well(x: [1]) = sum(where(x > 10, 1e30 * (x - 20)^2, 0.5 * x^2))\n\
         let s = sample(well, mala(step = 0.1), chains = 4, warmup = 300, steps = 300, init = \"{}\")\n\
         summary(s)\n",
        init.display()
    );
    let out = run_src(&src).unwrap();
    assert!(out.contains("chain 3 is stuck: step size"), "{out}");
    assert!(!out.contains("chain 0 is stuck"), "{out}");
    assert!(out.contains("distinct draws"), "{out}");
    let header = out.lines().find(|l| l.contains("ess_bulk")).unwrap();
    let row = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("x.0"))
        .unwrap();
    assert_eq!(row.chars().count(), header.chars().count(), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `save(.., format = "cmdstan")` writes one file per chain, which a later
/// `init` reads by the base name; a chain file that cannot be written is
/// refused before anything runs.
#[test]
fn save_in_cmdstan_format() {
    let src = r#"energy gauss(x: [2, 2]) = 0.5 * sum(x^2)
let s = sample(gauss, chains = 3, steps = 20, warmup = 10, seed = 1)
save(s, "out/s.csv", format = "cmdstan")
save(s, "one.csv")
let t = sample(gauss, init = "out/s.csv", chains = 3, steps = 5, warmup = 0)
"#;
    let (out, dir) = run_in("cmdstan", src);
    let out = out.unwrap();
    let (first, last) = (dir.join("out/s_1.csv"), dir.join("out/s_3.csv"));
    let wrote = format!(
        "wrote {} … {} (3 files, one per chain)",
        first.display(),
        last.display()
    );
    assert!(out.contains(&wrote), "{out}");
    let text = std::fs::read_to_string(&first).unwrap();
    assert!(
        text.contains("energy__,x.1.1,x.2.1,x.1.2,x.2.2\n"),
        "{text}"
    );
    let a = ebm::sample::io::read_csv(&dir.join("out/s.csv")).unwrap();
    let b = ebm::sample::io::read_csv(&dir.join("one.csv")).unwrap();
    assert_eq!(
        (a.x, a.energy, a.image_shape),
        (b.x, b.energy, b.image_shape)
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let (_, dir) = run_in("cmdstan-folder", "");
    std::fs::create_dir_all(dir.join("out/s_2.csv")).unwrap();
    let file = SourceFile {
        path: dir.join("script.ebm").display().to_string(),
        text: src.into(),
    };
    let err = String::from(run(&file, &mut Vec::new()).unwrap_err());
    assert!(err.contains("s_2.csv: it is a folder"), "{err}");
    assert!(!dir.join("out/s_1.csv").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A string constant goes wherever a path or key literal does: `load`,
/// `csv`, `save`, a sampler's `init` file, `print`.
#[test]
fn string_constants_are_paths() {
    let dir = std::env::temp_dir().join(format!("ebm-script-strings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pts.csv"), "a,b\n0,2\n1,3\n").unwrap();
    let src = r#"const points = "pts.csv"
const col = "b"
const out = "out/s.csv"
const pts = load(points, col)
energy e(x: [1]) = 0.5 * sqnorm(x - pts[0])
data d = csv(points, label = "a")
let s = sample(e, rwmh(step = 0.5), chains = 2, steps = 20, warmup = 5)
save(s, out)
let s2 = sample(e, rwmh(step = 0.5), chains = 2, steps = 20, warmup = 5, init = out)
print("read", points, pts)
"#;
    let file = SourceFile {
        path: dir.join("script.ebm").display().to_string(),
        text: src.into(),
    };
    let mut text = Vec::new();
    run(&file, &mut text).unwrap_or_else(|d| panic!("{d}"));
    let text = String::from_utf8(text).unwrap();
    assert!(text.ends_with("read pts.csv [2, 3]\n"), "{text}");
    assert!(dir.join("out/s.csv").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
