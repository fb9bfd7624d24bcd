//! The C ABI from C: compiles `tests/driver.c` against `include/ebm.h` with
//! the system C compiler (strict C99, warnings as errors), links it to the
//! built `libebmc`, runs it on a model file built here, and compares every
//! number it prints, bit for bit, with `ebm::api::Artifact` evaluating the
//! same file in-process; its refusals must carry sensible messages.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ebm::api::Artifact;
use ebm::backend::DType;
use ebm::backend::cpu::Cpu;

/// The driver's output: `key: values` lines and `error KEY: message` lines.
struct Output {
    values: HashMap<String, Vec<String>>,
    errors: HashMap<String, String>,
}

impl Output {
    fn parse(stdout: &str) -> Output {
        let mut values = HashMap::new();
        let mut errors = HashMap::new();
        for line in stdout.lines() {
            if let Some(rest) = line.strip_prefix("error ") {
                let (key, msg) = rest.split_once(": ").expect("error line");
                errors.insert(key.to_string(), msg.to_string());
            } else if let Some((key, rest)) = line.split_once(':') {
                let words = rest.split_whitespace().map(String::from).collect();
                values.insert(key.to_string(), words);
            }
        }
        Output { values, errors }
    }
    fn words(&self, key: &str) -> &[String] {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("the driver printed no `{key}`"))
    }
    fn f64s(&self, key: &str) -> Vec<f64> {
        self.words(key)
            .iter()
            .map(|w| f64::from_bits(u64::from_str_radix(w, 16).unwrap()))
            .collect()
    }
    fn f32s(&self, key: &str) -> Vec<f32> {
        self.words(key)
            .iter()
            .map(|w| f32::from_bits(u32::from_str_radix(w, 16).unwrap()))
            .collect()
    }
    fn line(&self, key: &str) -> String {
        self.words(key).join(" ")
    }
    fn error(&self, key: &str) -> &str {
        self.errors
            .get(key)
            .unwrap_or_else(|| panic!("the driver printed no error `{key}`"))
    }
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}
fn bits32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Compiles the driver; returns its path.
fn compile_driver(dir: &Path) -> std::path::PathBuf {
    let capi = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = common::lib_dir();
    let exe = dir.join("driver");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args([
            "-std=c99",
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
        ])
        .arg("-I")
        .arg(capi.join("include"))
        .arg(capi.join("tests/driver.c"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lebmc")
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        out.status.success(),
        "driver.c does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

#[test]
fn c_program_evaluates_like_the_rust_api() {
    let dir = common::scratch("c-driver");
    let model = dir.join("model.ebmc");
    common::build_model(common::SOURCE, &model);
    // One flipped byte in the middle: the checksum catches it.
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let corrupt = dir.join("corrupt.ebmc");
    std::fs::write(&corrupt, &bytes).unwrap();
    let garbage = dir.join("garbage.ebmc");
    std::fs::write(&garbage, b"energy e(x: [2]) = sqnorm(x)\n").unwrap();
    let missing = dir.join("missing.ebmc");

    let exe = compile_driver(&dir);
    let run = Command::new(&exe)
        .args([&model, &corrupt, &garbage, &missing])
        .env(common::LIB_PATH_VAR, common::lib_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the driver failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    let out = Output::parse(&stdout);
    assert_eq!(out.line("failures"), "0");

    // Listing.
    assert_eq!(out.line("version"), "0.1.0 1");
    assert_eq!(out.line("defs"), "quad/0 shifted/0 f/1");
    assert_eq!(out.line("past the end"), "NULL -1");
    assert_eq!(out.line("dims"), "2 0 2 2 -1");
    assert_eq!(
        out.line("params"),
        "W/4 b/2 f.mlp0.b1/4 f.mlp0.b2/3 f.mlp0.w1/8 f.mlp0.w2/12"
    );
    assert_eq!(out.line("NULL handle listing"), "0 0 -1 NULL");
    assert_eq!(out.line("empty batch"), "untouched");
    assert_eq!(out.line("aliased grad"), "same");
    assert_eq!(out.line("no err pointer"), "1");

    // The same numbers from the Rust API, bit for bit.
    let art = Artifact::load(&model).unwrap();
    let cpu = Arc::new(Cpu::new());
    let (x, v, c) = (out.f64s("x"), out.f64s("v"), out.f64s("c"));
    let (xf, vf, cf) = (out.f32s("xf"), out.f32s("vf"), out.f32s("cf"));
    let batch = x.len() / 2;
    let quad = art.energy_with("quad", cpu.clone(), DType::F64).unwrap();
    let shifted = art.energy_with("shifted", cpu.clone(), DType::F64).unwrap();
    let quad32 = art.energy_with("quad", cpu.clone(), DType::F32).unwrap();
    let shifted32 = art.energy_with("shifted", cpu.clone(), DType::F32).unwrap();

    let e = quad.energy(&x, None, batch).unwrap();
    let eg = quad.energy_and_grad_x(&x, None, batch).unwrap();
    let h = quad.hvp(&x, &v, None, batch).unwrap();
    assert_eq!(bits64(&out.f64s("energy_f64")), bits64(&e));
    assert_eq!(bits64(&out.f64s("grad_f64.energy")), bits64(&eg.energy));
    assert_eq!(bits64(&out.f64s("grad_f64")), bits64(&eg.grad_x));
    assert_eq!(bits64(&out.f64s("grad_f64.alone")), bits64(&eg.grad_x));
    assert_eq!(bits64(&out.f64s("hvp_f64")), bits64(&h));
    let se = shifted.energy(&x, Some(&c), batch).unwrap();
    let sg = shifted.energy_and_grad_x(&x, Some(&c), batch).unwrap();
    let sh = shifted.hvp(&x, &v, Some(&c), batch).unwrap();
    assert_eq!(bits64(&out.f64s("shifted.energy_f64")), bits64(&se));
    assert_eq!(bits64(&out.f64s("shifted.grad_f64")), bits64(&sg.grad_x));
    assert_eq!(bits64(&out.f64s("shifted.hvp_f64")), bits64(&sh));
    // A sanity check that the numbers mean something: E is finite and varies.
    assert!(e.iter().all(|v| v.is_finite()) && e[0] != e[1], "{e:?}");

    let ef = quad32.energy(&xf, None, batch).unwrap();
    let egf = quad32.energy_and_grad_x(&xf, None, batch).unwrap();
    let hf = quad32.hvp(&xf, &vf, None, batch).unwrap();
    assert_eq!(bits32(&out.f32s("energy_f32")), bits32(&ef));
    assert_eq!(bits32(&out.f32s("grad_f32.energy")), bits32(&egf.energy));
    assert_eq!(bits32(&out.f32s("grad_f32")), bits32(&egf.grad_x));
    assert_eq!(bits32(&out.f32s("hvp_f32")), bits32(&hf));
    let sgf = shifted32.energy_and_grad_x(&xf, Some(&cf), batch).unwrap();
    assert_eq!(
        bits32(&out.f32s("shifted.grad_f32.energy")),
        bits32(&sgf.energy)
    );
    assert_eq!(bits32(&out.f32s("shifted.grad_f32")), bits32(&sgf.grad_x));
    // f32 is near f64, not equal to it.
    for (a, b) in ef.iter().zip(&e) {
        assert!(
            (*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "{a} vs {b}"
        );
    }

    // Parameters: the values read, then the ones set, seen by both dtypes.
    let w = art.params().get("W").unwrap();
    assert_eq!(bits64(&out.f64s("W")), bits64(&w));
    let w2: Vec<f64> = (0..4).map(|i| i as f64 * 0.5 - 0.75).collect();
    assert_eq!(out.f64s("W.after"), w2);
    art.params().set("W", &w2).unwrap();
    let after = quad.energy(&x, None, batch).unwrap();
    let after32 = quad32.energy(&xf, None, batch).unwrap();
    assert_ne!(bits64(&after), bits64(&e));
    assert_eq!(bits64(&out.f64s("after.energy_f64")), bits64(&after));
    assert_eq!(bits32(&out.f32s("after.energy_f32")), bits32(&after32));

    // Refusals, each with a message that says what is wrong.
    let expect = |key: &str, parts: &[&str]| {
        let msg = out.error(key);
        for p in parts {
            assert!(msg.contains(p), "`{key}`: {msg:?} does not contain {p:?}");
        }
    };
    let shown = missing.display().to_string();
    assert_eq!(out.error("open missing"), format!("no such file {shown}"));
    expect("open corrupt", &["corrupt.ebmc: ", "corrupt", "checksum"]);
    expect(
        "open not a model",
        &["garbage.ebmc: ", "not an ebm model file"],
    );
    expect("open NULL", &["path is NULL"]);
    expect(
        "unknown energy",
        &[
            "no energy `nope`",
            "its energies are: `quad`, `shifted`",
            "`f`",
        ],
    );
    expect("model as energy", &["`f` is a model, not an energy"]);
    expect("NULL handle", &["model handle is NULL"]);
    expect("NULL name", &["energy name is NULL"]);
    expect("NULL x", &["x is NULL"]);
    expect("NULL out", &["out_energy is NULL"]);
    expect("NULL grad", &["out_grad is NULL"]);
    expect("NULL v", &["v is NULL"]);
    expect("NULL hvp out", &["out is NULL"]);
    expect(
        "missing c",
        &["`shifted` is conditional", "2 values per point"],
    );
    expect("unexpected c", &["`quad` is not conditional"]);
    expect("huge batch", &["too large"]);
    expect("unknown param", &["no parameter `nope`", "`W`, `b`"]);
    expect("wrong param size", &["`W` has 4 values; n is 3"]);
    expect("NULL param values", &["values is NULL"]);
    expect("NULL param out", &["out is NULL"]);
    // No failure was a caught panic.
    assert!(!stdout.contains("internal error"), "{stdout}");
}
