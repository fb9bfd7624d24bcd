//! `ebm run`: statements execute in order; `print` evaluates constants,
//! parameters (at their initial values) and energies/models applied to
//! literals; runner statements report "not supported yet".

use ebm::driver::{SourceFile, run};

fn run_src(src: &str) -> Result<String, String> {
    let file = SourceFile {
        path: "script.ebm".into(),
        text: src.into(),
    };
    let mut out = Vec::new();
    run(&file, &mut out).map(|()| String::from_utf8(out).unwrap())
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
fn runners_are_not_supported_yet() {
    let err = run_src("energy e(x: [2]) = sqnorm(x)\nprint(1)\nlet s = sample(e, chains = 4)\n")
        .unwrap_err();
    assert!(err.starts_with("error[E0501]: expected a statement that `ebm run` supports, found `sample`, which is not supported yet"), "{err}");
    assert!(err.contains("script.ebm:3:9"), "{err}");
}
