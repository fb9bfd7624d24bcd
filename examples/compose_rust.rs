//! The language embedded in Rust: a trained-like energy from a model file
//! composed with an inline `energy!` through the operators (`&` and,
//! `|` or, `!` not, `w *` weight), sampled with MALA from Rust — and shown
//! to be the very composition a script writes: bitwise-equal energies and
//! gradients, and the same draws as the script's own `sample(..)`.
//!
//! `cargo run --release --example compose_rust -- OUT_DIR`
//! (default `target/compose_rust`).

use std::path::PathBuf;

use ebm::api::{Artifact, Energy, Program};
use ebm::runtime::CompiledEnergy;
use ebm::sample::{RunConfig, SamplerConfig, run_compiled};

/// The trained energy's program: a Gaussian bump around `mu` plus a small
/// network. Its parameters get "trained" values below, then it is built
/// into a model file.
const TRAINED: &str = "
param mu: [2] ~ zeros
energy a(x: [2]) = 0.5 * sqnorm(x - mu) + 0.1 * mlp(x, [16, 1], act = swish)
";

/// The inline energy's text, as `energy!` below spells it (for the script).
const RING: &str = "
energy ring(x: [2]) = (norm(x) - 2.0)^2 / (2 * 0.3^2)
";

/// One batch of points for the bitwise comparisons.
const BATCH: [f64; 8] = [0.0, 0.0, 2.0, 0.0, -1.0, 1.5, 0.3, -2.2];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/compose_rust".into()),
    );
    std::fs::create_dir_all(&out)?;

    // 1. A trained-like model file: `a` with parameters moved off their
    //    initial values, built by `Program::build` and loaded back.
    let trainer = Program::from_source(TRAINED)?;
    let store = trainer.params();
    store.set("mu", &[1.0, 0.5])?;
    for name in store.names().iter().filter(|n| n.starts_with("a.")) {
        let v = store.get(name).unwrap_or_default();
        let moved: Vec<f64> = v
            .iter()
            .enumerate()
            .map(|(i, w)| 0.8 * w + 0.01 * i as f64)
            .collect();
        store.set(name, &moved)?;
    }
    let model = out.join("a.ebmc");
    trainer.build(&["a"])?.write(&model)?;
    let file = Artifact::load(&model)?;
    let loaded = file.energy_handle("a")?;
    println!(
        "loaded `a` from {} (parameters {:?})",
        model.display(),
        loaded.param_names()?
    );

    // 2. An inline energy, checked when this example compiled.
    let ring: Energy = ebm_macros::energy!(
        r#"
energy ring(x: [2]) = (norm(x) - 2.0)^2 / (2 * 0.3^2)
"#
    );

    // 3. Compositions, each with the definition a script writes for it.
    let compositions = [
        ("both", &loaded & &ring, "a(x) and ring(x)"),
        ("either", &loaded | &ring, "a(x) or ring(x)"),
        (
            "carved",
            (0.5 * &loaded) & !(0.25 * &ring),
            "0.5 * a(x) and not 0.25 * ring(x)",
        ),
    ];

    // 4. The same compositions written in a script that imports `a` from
    //    the model file (`use`, the file's parameter values with it) and
    //    samples `either`.
    let mut script = format!("use a from \"a.ebmc\"\n{RING}");
    for (name, _, body) in &compositions {
        script.push_str(&format!("energy {name}(x: [2]) = {body}\n"));
    }
    script.push_str(
        "let s = sample(either, mala(step = 0.2), chains = 8, warmup = 300, steps = 500, seed = 7)\n\
         save(s, \"either.csv\")\n",
    );
    let script_path = out.join("compose.ebm");
    std::fs::write(&script_path, &script)?;
    println!("\n{}:\n{script}", script_path.display());

    // Values and gradients: the Rust composition against the script's
    // definition, bit for bit in f64.
    let source = Program::from_file(&script_path)?;
    for (name, composed, body) in &compositions {
        let rust = composed.compiled()?;
        let src = source.energy(name)?;
        same_values(&rust, &src)?;
        println!(
            "{name:>7} = {body:<36} Rust `{}`: energies and gradients bitwise equal",
            composed.name()
        );
    }

    // 5. MALA from Rust on the composed `either`, and the script's own
    //    `sample(either, mala(step = 0.2), ..)` run by `ebm::pipeline::run`.
    let either = compositions[1].1.compiled()?;
    let run = RunConfig::new(8, 300, 500, 7);
    let draws = run_compiled(&either, None, &SamplerConfig::mala(0.2), &run)?;
    let mut log = Vec::new();
    let file_src = ebm::pipeline::SourceFile::read(&script_path)?;
    ebm::pipeline::run(&file_src, &mut log)?;
    print!("\nthe script says:\n{}", String::from_utf8_lossy(&log));
    let scripted = ebm::sample::io::read_csv(&out.join("either.csv"))?;
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if bits(&draws.x) != bits(&scripted.x) || bits(&draws.energy) != bits(&scripted.energy) {
        return Err("the script's draws differ from the Rust composition's".into());
    }
    let mean =
        |k: usize| draws.x.iter().skip(k).step_by(2).sum::<f64>() / (draws.x.len() / 2) as f64;
    println!(
        "\nMALA on `{}` from Rust: {} chains × {} draws, mean ({:.3}, {:.3}), mean acceptance {:.3}; \
         identical, bit for bit, to the script's draws",
        compositions[1].1.name(),
        draws.chains,
        draws.draws,
        mean(0),
        mean(1),
        draws.accept.iter().sum::<f64>() / draws.accept.len() as f64
    );
    Ok(())
}

/// Energies and ∇ₓE of the batch, bitwise equal.
fn same_values(rust: &CompiledEnergy, src: &CompiledEnergy) -> Result<(), String> {
    let n = BATCH.len() / 2;
    let r = rust
        .energy_and_grad_x(&BATCH, None, n)
        .map_err(|e| e.to_string())?;
    let s = src
        .energy_and_grad_x(&BATCH, None, n)
        .map_err(|e| e.to_string())?;
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if bits(&r.energy) != bits(&s.energy) || bits(&r.grad_x) != bits(&s.grad_x) {
        return Err(format!("values differ: {r:?} vs {s:?}"));
    }
    Ok(())
}
