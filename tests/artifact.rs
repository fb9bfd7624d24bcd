//! Model files end to end: every example and a trained model round-trip
//! bitwise through `ebm build`'s format; the CLI reads model files like
//! source; damaged files fail with one line and never a panic; the format
//! version 1 fixture keeps loading.

mod common;

#[path = "support/fuzz_gen.rs"]
mod fuzz_gen;
#[path = "support/model_mutate.rs"]
mod model_mutate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::cli::ebm;
use ebm::api::{Artifact, Program};
use ebm::backend::{Backend, DType, cpu::Cpu};
use ebm::runtime::{CompiledEnergy, Scalar};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ebm-artifact-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Deterministic points in [-2, 2).
fn points(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

fn bits<T: Scalar>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// Values, ∇ₓ and HVPs of `a` and `b` agree bit for bit on a batch.
fn same_outputs<T: Scalar>(a: &CompiledEnergy, b: &CompiledEnergy, what: &str) {
    let batch = 5;
    let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
    let x = cast(points(batch * a.dim(), 1));
    let c = (a.cond_dim() > 0).then(|| cast(points(batch * a.cond_dim(), 2)));
    let c = c.as_deref();
    assert_eq!(
        bits(&a.energy(&x, c, batch).unwrap()),
        bits(&b.energy(&x, c, batch).unwrap()),
        "{what}: values"
    );
    if a.out_dim() != 1 {
        return; // a model: values only
    }
    let (ga, gb) = (
        a.energy_and_grad_x(&x, c, batch).unwrap(),
        b.energy_and_grad_x(&x, c, batch).unwrap(),
    );
    assert_eq!(bits(&ga.grad_x), bits(&gb.grad_x), "{what}: gradients");
    let v = cast(points(batch * a.dim(), 3));
    assert_eq!(
        bits(&a.hvp(&x, &v, c, batch).unwrap()),
        bits(&b.hvp(&x, &v, c, batch).unwrap()),
        "{what}: HVPs"
    );
}

fn programs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [
        "examples",
        "examples/train",
        "examples/jem",
        "examples/ais",
        "examples/timeseries",
    ]
    .iter()
    .flat_map(|d| std::fs::read_dir(root().join(d)).unwrap())
    .filter_map(|e| e.ok().map(|e| e.path()))
    .filter(|p| p.extension().is_some_and(|x| x == "ebm"))
    .collect();
    files.push(root().join("tests/ui/data/model_v1.ebm"));
    files.sort();
    files
}

#[test]
fn every_example_round_trips_bitwise_in_f64_and_f32() {
    let backend: Arc<dyn Backend> = Arc::new(Cpu::new());
    let mut compared = 0;
    for path in programs() {
        let program = Program::from_file(&path).unwrap();
        let bytes = program.build(&[]).unwrap().to_bytes();
        let loaded = Artifact::from_bytes(&bytes).unwrap();
        assert_eq!(loaded.file().to_bytes(), bytes);
        for dtype in [DType::F64, DType::F32] {
            for name in program.energies() {
                let what = format!("{}: {name} {dtype:?}", path.display());
                let a = program.energy_with(name, backend.clone(), dtype).unwrap();
                let b = loaded.energy_with(name, backend.clone(), dtype).unwrap();
                match dtype {
                    DType::F64 => same_outputs::<f64>(&a, &b, &what),
                    DType::F32 => same_outputs::<f32>(&a, &b, &what),
                }
                compared += 1;
            }
            for name in loaded.models() {
                let what = format!("{}: model {name}", path.display());
                let a = program.model_with(name, backend.clone(), dtype).unwrap();
                let b = loaded.model_with(name, backend.clone(), dtype).unwrap();
                match dtype {
                    DType::F64 => same_outputs::<f64>(&a, &b, &what),
                    DType::F32 => same_outputs::<f32>(&a, &b, &what),
                }
                compared += 1;
            }
        }
    }
    // 17 programs, 20 energies and 4 models, in two dtypes.
    assert!(compared >= 40, "only {compared} definitions compared");
}

#[test]
fn a_trained_model_file_evaluates_like_its_source_and_parameters() {
    let dir = scratch("trained");
    let src = dir.join("e.ebm");
    std::fs::write(
        &src,
        "energy e(x: [2]) = sum(mlp(x, [16, 16, 1], act = swish)) + 0.1 * sum(x^2)\n",
    )
    .unwrap();
    let out = dir.join("run");
    let (code, _, err) = ebm(&[
        "train",
        src.to_str().unwrap(),
        "--energy",
        "e",
        "--data",
        "toy:two_moons:500",
        "--scale",
        "standardize",
        "--iters",
        "20",
        "--batch",
        "64",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let model = out.join("model.ebmc");
    let params = out.join("params.safetensors");
    // The same JSON, to the last digit, from source + parameters and from the model file.
    for at in ["0.3,-0.7", "1.5,0.25", "-2,1"] {
        let args = |file: &Path, extra: &[&str]| {
            let mut a = vec![
                "eval",
                file.to_str().unwrap(),
                "--energy",
                "e",
                "--at",
                at,
                "--grad",
                "--hvp",
                "1,-1",
                "--json",
            ];
            a.extend_from_slice(extra);
            a.into_iter().map(String::from).collect::<Vec<_>>()
        };
        let run = |a: Vec<String>| {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            ebm(&a)
        };
        let from_source = run(args(&src, &["--params", params.to_str().unwrap()]));
        let from_model = run(args(&model, &[]));
        assert_eq!(from_source.0, 0, "{}", from_source.2);
        assert_eq!(from_source.1, from_model.1, "at {at}");
    }
    // Sampling a model file works like sampling from source.
    let draws = dir.join("s.csv");
    let (code, _, err) = ebm(&[
        "sample",
        model.to_str().unwrap(),
        "--energy",
        "e",
        "--sampler",
        "mala",
        "--chains",
        "4",
        "--steps",
        "50",
        "--warmup",
        "50",
        "--out",
        draws.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, info, _) = ebm(&["info", model.to_str().unwrap()]);
    assert_eq!(code, 0);
    for want in [
        "energy e(x: [2])",
        "e.mlp0.w1 [2, 16]",
        "scaling",
        "trained:",
    ] {
        assert!(info.contains(want), "{want} missing from\n{info}");
    }
}

#[test]
fn damaged_files_fail_with_one_line_and_exit_1() {
    let dir = scratch("damaged");
    let good = std::fs::read(root().join("tests/ui/data/model_v1.ebmc")).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("flipped", flipped, "checksum does not match"),
        ("cut", good[..good.len() - 100].to_vec(), "truncated"),
        ("newer", newer, "format version 2"),
        ("png", b"\x89PNG\r\n\x1a\n0000".to_vec(), "expected"),
        ("empty", Vec::new(), "expected"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.join(format!("{name}.ebmc"));
        std::fs::write(&path, bytes).unwrap();
        for cmd in ["info", "eval"] {
            let p = path.to_str().unwrap();
            let args: Vec<&str> = match cmd {
                "eval" => vec!["eval", p, "--energy", "quad", "--at", "0,0"],
                _ => vec![cmd, p],
            };
            let (code, _, err) = ebm(&args);
            assert_eq!(code, 1, "{name} {cmd}: {err}");
            assert!(!err.contains("panicked"), "{name} {cmd}: {err}");
            if name != "png" && name != "empty" {
                assert_eq!(err.lines().count(), 1, "{name} {cmd}: {err}");
                assert!(err.contains(want), "{name} {cmd}: {err}");
            }
        }
    }
}

#[test]
fn format_version_1_files_keep_loading() {
    let fixture = root().join("tests/ui/data/model_v1.ebmc");
    let loaded = Artifact::load(&fixture).unwrap();
    assert_eq!(loaded.energies(), ["quad", "net"]);
    assert_eq!(loaded.models(), ["cls"]);
    let program = Program::from_file(&root().join("tests/ui/data/model_v1.ebm")).unwrap();
    for name in ["quad", "net"] {
        let a = program.energy(name).unwrap();
        let b = loaded.energy(name).unwrap();
        same_outputs::<f64>(&a, &b, name);
    }
}

#[test]
fn ndarray_batches_match_the_slice_api() {
    use ndarray::Array2;
    let loaded = Artifact::load(&root().join("tests/ui/data/model_v1.ebmc")).unwrap();
    let e = loaded.energy("net").unwrap();
    let flat = points(6, 9);
    let x = Array2::from_shape_vec((3, 2), flat.clone()).unwrap();
    let (values, grads) = e.grad_x_array(x.view(), None).unwrap();
    let eg = e.energy_and_grad_x(&flat, None, 3).unwrap();
    assert_eq!(values.to_vec(), eg.energy);
    assert_eq!(grads.iter().copied().collect::<Vec<_>>(), eg.grad_x);
    // A transposed view is read in its logical order.
    let xt = Array2::from_shape_vec(
        (2, 3),
        vec![flat[0], flat[2], flat[4], flat[1], flat[3], flat[5]],
    )
    .unwrap();
    assert_eq!(e.energy_array(xt.t(), None).unwrap(), values);
    let bad = Array2::<f64>::zeros((3, 3));
    let err = e.energy_array(bad.view(), None).unwrap_err().to_string();
    assert!(err.contains("3 columns"), "{err}");
}

#[test]
fn the_reader_survives_mutated_files() {
    let good = std::fs::read(root().join("tests/ui/data/model_v1.ebmc")).unwrap();
    let mut rng = fuzz_gen::Rng::new(20_261_130);
    let mut accepted = 0;
    for _ in 0..3000 {
        let bad = model_mutate::mutate(&mut rng, &good);
        let r = std::panic::catch_unwind(|| ebm::artifact::Artifact::from_bytes(&bad).is_ok());
        match r {
            Ok(true) => accepted += 1,
            Ok(false) => {}
            Err(_) => panic!("the reader panicked on a mutant of {} bytes", bad.len()),
        }
    }
    // Only mutants that change nothing the reader checks can load (a
    // byte inside a number of the source text, say): never most of them.
    assert!(accepted < 300, "{accepted} of 3000 mutants loaded");
}

#[test]
fn pytorch_weights_load_through_a_name_map() {
    // tests/data/torch/make_state_dict.py wrote a PyTorch nn.Sequential's
    // state dict and its outputs and gradients (float64 from the float32
    // weights); the same network in ebm, built from that state dict, must
    // reproduce them.
    let dir = scratch("torch");
    let data = root().join("tests/data/torch");
    let src = dir.join("net.ebm");
    std::fs::write(
        &src,
        "energy e(x: [2]) = sum(mlp(x, [16, 1], act = swish))\n",
    )
    .unwrap();
    let model = dir.join("net.ebmc");
    let state = data.join("mlp_state_dict.safetensors");
    let build = |map: &str| {
        ebm(&[
            "build",
            src.to_str().unwrap(),
            "--params",
            state.to_str().unwrap(),
            "--map",
            map,
            "-o",
            model.to_str().unwrap(),
        ])
    };
    let (code, _, err) =
        build("0.weight=e.mlp0.w1:T, 0.bias=e.mlp0.b1, 2.weight=e.mlp0.w2:T, 2.bias=e.mlp0.b2");
    assert_eq!(code, 0, "{err}");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("mlp_reference.json")).unwrap())
            .unwrap();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
    for (i, p) in reference["points"].as_array().unwrap().iter().enumerate() {
        let at = format!("{},{}", p[0], p[1]);
        let (code, out, err) = ebm(&[
            "eval",
            model.to_str().unwrap(),
            "--energy",
            "e",
            "--at",
            &at,
            "--grad",
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        let want_e = reference["energy"][i].as_f64().unwrap();
        assert!(
            close(got["energy"].as_f64().unwrap(), want_e),
            "{out} vs {want_e}"
        );
        for k in 0..2 {
            let want = reference["grad"][i][k].as_f64().unwrap();
            assert!(
                close(got["grad"][k].as_f64().unwrap(), want),
                "{out} vs {want}"
            );
        }
    }
    // Forgetting the transpose, a parameter, or a name is one clear line.
    for (map, want) in [
        (
            "0.weight=e.mlp0.w1, 0.bias=e.mlp0.b1, 2.weight=e.mlp0.w2:T, 2.bias=e.mlp0.b2",
            "add `:T`",
        ),
        (
            "0.weight=e.mlp0.w1:T, 0.bias=e.mlp0.b1",
            "sets no value for e.mlp0.b2, e.mlp0.w2",
        ),
        ("0.weight=e.mlp0.w9:T", "did you mean `e.mlp0.w1`"),
        ("0.weigh=e.mlp0.w1:T", "no key `0.weigh`"),
    ] {
        let (code, _, err) = build(map);
        assert_eq!(code, 1, "{map}");
        assert!(err.contains(want), "{map}: {err}");
    }
}

#[test]
fn dump_and_info_read_model_files() {
    let src = root().join("tests/ui/data/model_v1.ebm");
    let model = root().join("tests/ui/data/model_v1.ebmc");
    for stage in ["ir", "grad", "opt"] {
        let a = ebm(&[
            "dump",
            src.to_str().unwrap(),
            "--stage",
            stage,
            "--energy",
            "net",
        ]);
        let b = ebm(&[
            "dump",
            model.to_str().unwrap(),
            "--stage",
            stage,
            "--energy",
            "net",
        ]);
        assert_eq!(a.0, 0, "{}", a.2);
        assert_eq!(a.1, b.1, "stage {stage}");
    }
    let (code, text, _) = ebm(&["info", model.to_str().unwrap(), "--source"]);
    assert_eq!(code, 0);
    assert_eq!(text, std::fs::read_to_string(&src).unwrap());
    let (code, _, err) = ebm(&["dump", model.to_str().unwrap(), "--stage", "ast"]);
    assert_eq!(code, 1);
    assert!(err.contains("holds IR, not source"), "{err}");
}

#[test]
fn rust_operators_on_a_loaded_model_equal_a_script_that_uses_it() {
    // The composition from Rust (handles of the model file, composed with
    // an energy written inline) against the script that imports the file
    // with `use` and writes the same composition: bitwise equal.
    let fixture = root().join("tests/ui/data/model_v1.ebmc");
    let file = Artifact::load(&fixture).unwrap();
    let net = file.energy_handle("net").unwrap();
    let quad = file.energy_handle("quad").unwrap();
    let ring = ebm_macros::energy!("energy ring(x: [2]) = (norm(x) - 2.0)^2");
    let rust = ((0.5 * &net) | &quad) & !(0.25 * &ring);
    let dir = scratch("compose");
    let script = dir.join("c.ebm");
    std::fs::write(
        &script,
        format!(
            "use net, quad from {:?}\nenergy ring(x: [2]) = (norm(x) - 2.0)^2\n\
             energy c(x: [2]) = (0.5 * net(x) or quad(x)) and not (0.25 * ring(x))\n",
            fixture.display().to_string()
        ),
    )
    .unwrap();
    let program = Program::from_file(&script).unwrap();
    same_outputs::<f64>(
        &rust.compiled().unwrap(),
        &program.energy("c").unwrap(),
        "composition",
    );
}
