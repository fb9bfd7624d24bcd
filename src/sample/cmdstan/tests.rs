//! The CmdStan writer and reader: exact round trips, CmdStan's names and
//! column order, the metric blocks, and malformed or mismatched files.

use super::*;

fn toy(shape: &[usize]) -> Draws {
    let dim = shape.iter().product();
    let mut d = Draws::empty(2, 3, dim);
    for (i, v) in d.x.iter_mut().enumerate() {
        *v = (i as f64 * 0.37).sin() / 3.0;
    }
    d.energy = vec![0.1, 0.2, 0.3, 1e-300, -2.5, 7.0];
    d.accept = vec![1.0, 0.5, 0.25, 0.0, 1.0, 0.125];
    d.divergent[3] = true;
    d.header = vec![("sampler".into(), "mala".into())];
    d.image_shape = (shape.len() > 1).then(|| shape.to_vec());
    d
}

/// The summary of a short two-chain run.
fn summary_of_a_run() -> crate::sample::RunSummary {
    let g = crate::sample::targets::Gaussian::iid(2, 1.0);
    let run = crate::sample::RunConfig::new(2, 10, 3, 1);
    let cfg = crate::sample::SamplerConfig::mala(0.1);
    crate::sample::run_chains(&g, &cfg, &run)
        .unwrap()
        .summary
        .unwrap()
}

/// Every chain's file, parsed and combined back.
fn round_trip(d: &Draws) -> Draws {
    let files = (0..d.chains)
        .map(|c| {
            let text = to_cmdstan(d, c, "t.csv");
            (format!("t_{}.csv", c + 1), parse_cmdstan(&text).unwrap())
        })
        .collect();
    combine(files).unwrap()
}

fn same_draws(a: &Draws, b: &Draws) {
    assert_eq!((a.chains, a.draws, a.dim), (b.chains, b.draws, b.dim));
    assert_eq!(a.x, b.x);
    assert_eq!(a.energy, b.energy);
    assert_eq!(a.accept, b.accept);
    assert_eq!(a.divergent, b.divergent);
    assert_eq!(a.hamiltonian, b.hamiltonian);
    assert_eq!(a.n_leapfrog, b.n_leapfrog);
    assert_eq!(a.tree_depth, b.tree_depth);
    assert_eq!(a.image_shape, b.image_shape);
    assert_eq!(a.header, b.header);
}

#[test]
fn round_trip_is_exact_with_one_based_names() {
    let d = toy(&[2]);
    let text = to_cmdstan(&d, 1, "t_2.csv");
    let head =
        "lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__,x.1,x.2\n";
    assert!(text.contains(head), "{text}");
    // Chain 2's first draw: lp__ = −E, no tree, one evaluation, divergent, energy__ = E.
    let row = format!(
        "\n{},0,NaN,0,1,1,{},{},{}\n",
        -1e-300, 1e-300, d.x[6], d.x[7]
    );
    assert!(text.contains(&row), "{text}");
    assert!(text.contains("# id = 2\n") && text.contains("#     num_chains = 2\n"));
    assert!(text.contains("# ebm.sampler = mala\n"));
    same_draws(&round_trip(&d), &d);
}

/// A matrix-shaped point is written column-major (first index fastest),
/// as CmdStan writes a matrix, and read back row-major.
#[test]
fn matrix_points_are_column_major() {
    let d = toy(&[2, 3]);
    let text = to_cmdstan(&d, 0, "t_1.csv");
    assert!(text.contains("energy__,x.1.1,x.2.1,x.1.2,x.2.2,x.1.3,x.2.3\n"));
    let cols = coord_columns(&[2, 3]);
    assert_eq!(cols[1], ("x.2.1".to_string(), 3));
    assert_eq!(cols[2], ("x.1.2".to_string(), 1));
    let back = round_trip(&d);
    assert_eq!(back.image_shape, Some(vec![2, 3]));
    same_draws(&back, &d);
    let c3 = coord_columns(&[2, 1, 2]);
    let names: Vec<&str> = c3.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["x.1.1.1", "x.2.1.1", "x.1.1.2", "x.2.1.2"]);
    assert_eq!(c3.iter().map(|c| c.1).collect::<Vec<_>>(), [0, 2, 1, 3]);
}

/// Recorded Hamiltonian columns come back; unrecorded ones stay empty.
#[test]
fn hamiltonian_columns_round_trip() {
    let mut d = toy(&[2]);
    d.header = vec![
        ("sampler".into(), "hmc".into()),
        ("leapfrog".into(), "7".into()),
    ];
    assert!(
        to_cmdstan(&d, 0, "t").contains(",0,7,0,"),
        "HMC writes its leapfrog count"
    );
    same_draws(&round_trip(&d), &d);
    d.hamiltonian = vec![1.5, 2.5, 3.5, 4.5, 5.5, 6.5];
    d.n_leapfrog = vec![3, 7, 15, 1, 2, 31];
    d.tree_depth = vec![2, 3, 4, 1, 1, 5];
    same_draws(&round_trip(&d), &d);
    // A file read back keeps only the columns that were recorded (the
    // leapfrog count here equals the default, so it is dropped): each
    // missing column is written with its default.
    d.n_leapfrog.clear();
    assert!(to_cmdstan(&d, 0, "t").contains(",2,7,0,1.5,"));
    same_draws(&round_trip(&d), &d);
}

#[test]
fn inverse_metric_blocks() {
    let mut d = toy(&[2]);
    d.header.push(("metric_kind".into(), "diag".into()));
    let text = to_cmdstan(&d, 0, "t");
    assert!(text.contains("metric = diag_e\n") && !text.contains("Diagonal elements"));
    let base = summary_of_a_run();
    d.summary = Some(base.clone());
    d.summary.as_mut().unwrap().chain_inv_metric = vec![vec![0.5, 2.0]; 2];
    let text = to_cmdstan(&d, 1, "t");
    assert!(text.contains("metric = diag_e\n"), "{text}");
    assert!(text.contains("# Diagonal elements of inverse mass matrix:\n# 0.5, 2\n"));
    d.summary.as_mut().unwrap().chain_inv_metric = vec![vec![1.0, 0.25, 0.25, 3.0]; 2];
    let text = to_cmdstan(&d, 0, "t");
    assert!(text.contains("metric = dense_e\n"));
    assert!(text.contains("# Elements of inverse mass matrix:\n# 1, 0.25\n# 0.25, 3\n"));
    d.summary = Some(base);
    d.summary.as_mut().unwrap().chain_inv_metric.clear();
    d.header.pop();
    let text = to_cmdstan(&d, 0, "t");
    assert!(
        text.contains("metric = unit_e\n")
            && text.contains("# No free parameters for unit metric\n")
    );
}

/// Malformed files are errors naming the line, never a panic.
#[test]
fn malformed_files_are_errors() {
    let head = "lp__,accept_stat__,n_leapfrog__";
    let rank33 = format!("lp__,x{}\n", ".1".repeat(33));
    for (text, expect) in [
        ("", "no header row"),
        ("# only comments\n", "no header row"),
        ("accept_stat__,x.1\n", "line 1: the header has no lp__"),
        (
            "lp__,theta\n",
            "line 1: column `theta` is not a coordinate of x",
        ),
        ("lp__,x.0\n", "line 1: column `x.0` is not a coordinate"),
        ("lp__,x\n", "line 1: column `x` is not a coordinate"),
        (
            "lp__,x.1.+1\n",
            "line 1: column `x.1.+1` is not a coordinate",
        ),
        ("lp__\n", "line 1: the header has no coordinate columns"),
        (
            &rank33,
            "line 1: coordinate columns have at most 32 indices",
        ),
        (
            "#c\nlp__,x.1,x.3\n",
            "line 2: 2 coordinate columns cannot hold index 3",
        ),
        (
            "lp__,x.1,x.99999999999999999999999\n",
            "line 1: column `x.99999999999999999999999`",
        ),
        (
            "lp__,x.1.1,x.1.1,x.2.1,x.2.2\n",
            "line 1: coordinate x.1.1 appears twice",
        ),
        (
            "lp__,x.1,x.1.2\n",
            "line 1: the coordinate columns have different numbers",
        ),
        (
            "lp__,x.1.1,x.2.2\n",
            "line 1: the coordinate columns do not form a full array",
        ),
        ("lp__,x.1\n1,2,3\n", "line 2: expected 2 fields, found 3"),
        ("lp__,x.1\n1,two\n", "line 2: `two` is not a number"),
        (
            &format!("{head},x.1\n1,1,-1,0\n"),
            "line 2: n_leapfrog__ must be a whole number",
        ),
        (
            &format!("{head},x.1\n1,1,1.5,0\n"),
            "line 2: n_leapfrog__ must be a whole number",
        ),
        (
            &format!("{head},x.1\n1,1,1e300,0\n"),
            "line 2: n_leapfrog__ must be a whole number",
        ),
    ] {
        let err = parse_cmdstan(text).unwrap_err();
        assert!(err.starts_with(expect), "{text:?}: {err}");
    }
}

/// Warm-up draws (before `# Adaptation terminated`) are left out; a
/// file another program wrote names its sampler.
#[test]
fn saved_warmup_is_skipped() {
    let text = "# algorithm = hmc (Default)\n# engine = nuts (Default)\nlp__,x.1\n-1,5\n-2,6\n# Adaptation terminated\n# Step size = 0.5\n-3,7\n# \n#  Elapsed Time: 0.1 seconds (Total)\n";
    let ch = parse_cmdstan(text).unwrap();
    assert_eq!(ch.get("algorithm"), Some("hmc"));
    let d = combine(vec![("a.csv".into(), ch)]).unwrap();
    assert_eq!((d.chains, d.draws, d.dim), (1, 1, 1));
    assert_eq!((d.x[0], d.energy[0]), (7.0, 3.0));
    assert!(d.accept[0].is_nan());
    assert_eq!(d.header, vec![("sampler".to_string(), "nuts".to_string())]);
}

#[test]
fn mismatched_files_are_refused_by_name() {
    let a = "lp__,x.1,x.2\n1,2,3\n";
    let parse = |t: &str| parse_cmdstan(t).unwrap();
    let err = combine(vec![
        ("a_1.csv".into(), parse(a)),
        ("a_2.csv".into(), parse("lp__,x.1,x.3,x.2\n1,2,3,4\n")),
    ])
    .unwrap_err();
    assert!(
        err.starts_with("a_2.csv: its columns differ from a_1.csv's (column 3 is `x.3`"),
        "{err}"
    );
    let err = combine(vec![
        ("a_1.csv".into(), parse(a)),
        ("a_2.csv".into(), parse("lp__,x.1\n1,2\n")),
    ])
    .unwrap_err();
    assert!(err.contains("(2 columns where a_1.csv has 3)"), "{err}");
    let err = combine(vec![
        ("a_1.csv".into(), parse(a)),
        ("a_2.csv".into(), parse("lp__,x.1,x.2\n1,2,3\n4,5,6\n")),
    ])
    .unwrap_err();
    assert!(
        err.starts_with("a_2.csv: 2 draws, but a_1.csv has 1"),
        "{err}"
    );
}

#[test]
fn chain_paths_follow_cmdstan() {
    let p = chain_paths(Path::new("out/draws.csv"), 3).unwrap();
    assert_eq!(p[2], Path::new("out/draws_3.csv"));
    assert!(
        chain_paths(Path::new("out/draws.npy"), 3)
            .unwrap_err()
            .contains("expected DIR/NAME.csv")
    );
    assert!(chain_paths(Path::new("out/draws"), 3).is_err());
}
