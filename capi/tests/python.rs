//! The Python example (`examples/python/ebm_ctypes.py`, ctypes only) runs
//! against the built `libebmc` and `ebm` binaries: on the banana example (no
//! parameters), the MLP example (parameters) and a conditional energy. It
//! checks libebmc's energies, gradients and HVPs against `ebm eval` itself
//! and exits nonzero on a mismatch. Without `python3` the test says so and
//! passes.

mod common;

use std::path::Path;
use std::process::Command;

fn python() -> Option<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

fn run_example(python: &str, model: &Path, energy: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/ebm_ctypes.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(model)
        .arg(energy)
        .env("EBM_LIB", common::lib_path())
        .env("EBM_BIN", common::ebm_binary())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ebm_ctypes.py {} {energy} failed ({}):\n{stdout}\n{stderr}",
        model.display(),
        out.status
    );
    assert!(
        stdout.contains("ok: 4 points agree with `ebm eval`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unknown energy refused: no energy"),
        "{stdout}"
    );
}

#[test]
fn python_ctypes_example_agrees_with_ebm_eval() {
    let Some(python) = python() else {
        println!("NOTICE: python3 is not installed; the ctypes example was not run");
        return;
    };
    let dir = common::scratch("python");
    let banana = dir.join("banana.ebmc");
    common::build_example("banana.ebm", &["banana"], &banana);
    run_example(&python, &banana, "banana");
    let mlp = dir.join("mlp.ebmc");
    common::build_example("mlp.ebm", &["net"], &mlp);
    run_example(&python, &mlp, "net");
    let cond = dir.join("cond.ebmc");
    common::build_model(common::SOURCE, &cond);
    run_example(&python, &cond, "shifted");
}
