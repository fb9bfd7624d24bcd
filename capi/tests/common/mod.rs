//! What the integration tests share: a scratch folder per test, the built
//! `libebmc` and `ebm` binaries found in the target folder (cargo builds the
//! cdylib with the package's tests; `ebm` is built by any workspace test
//! run), and a model file with parameters, a conditional energy and a model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `quad` reads W and b; `shifted` is conditional and reads b; `f` is a model.
pub const SOURCE: &str = "\
param W: [2, 2] ~ normal(0, 0.5)
param b: [2] ~ normal(0, 0.5)
energy quad(x: [2]) = 0.5 * x @ W @ x + dot(b, x) + 0.25 * sum(x^4)
energy shifted(x: [2] | c: [2]) = 0.5 * sqnorm(x - c) + sum(sin(x)) * dot(b, c)
model f(x: [2]) -> [3] = mlp(x, [4, 3])
";

/// A new, empty folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("capi-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds a model file of every definition of `source` at `path`.
pub fn build_model(source: &str, path: &Path) {
    let program = ebm::api::Program::from_source(source).unwrap();
    program.build(&[]).unwrap().write(path).unwrap();
}

/// Builds a model file of the named definitions of an example program.
pub fn build_example(example: &str, names: &[&str], path: &Path) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(example);
    let program = ebm::api::Program::from_file(&file).unwrap();
    program.build(names).unwrap().write(path).unwrap();
}

/// The target profile folder (`target/release`): the test executable runs
/// from its `deps` folder.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The folder holding the freshly built `libebmc`: `deps`, where rustc
/// writes it when it builds this package's tests, or the profile folder
/// (`cargo build -p ebm-capi`), whichever copy is newer.
pub fn lib_dir() -> PathBuf {
    let name = lib_name();
    let profile = profile_dir();
    let newest = [profile.join("deps"), profile.clone()]
        .into_iter()
        .filter_map(|dir| {
            let modified = std::fs::metadata(dir.join(&name)).ok()?.modified().ok()?;
            Some((modified, dir))
        })
        .max_by_key(|(modified, _)| *modified);
    match newest {
        Some((_, dir)) => dir,
        None => panic!(
            "{name} is not in {}: build it with `cargo build -p ebm-capi` (with this profile)",
            profile.display()
        ),
    }
}

fn lib_name() -> String {
    format!(
        "{}ebmc{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The dynamic loader's search path variable, pointed at `lib_dir()` for
/// a child process (cargo's own value lists other copies first).
pub const LIB_PATH_VAR: &str = if cfg!(target_os = "macos") {
    "DYLD_LIBRARY_PATH"
} else {
    "LD_LIBRARY_PATH"
};

/// The path of `libebmc` itself.
pub fn lib_path() -> PathBuf {
    lib_dir().join(lib_name())
}

/// The `ebm` binary of this profile.
pub fn ebm_binary() -> PathBuf {
    let path = profile_dir().join(format!("ebm{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build` (with this profile), or run the \
         workspace's tests (`cargo test --release --workspace`)",
        path.display()
    );
    path
}
