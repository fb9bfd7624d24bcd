//! Embedding ebm in a Rust program: compile an energy from source text and
//! call its kernels on a batch, in f32 and f64.
//!
//! cargo run --release --example embed

use std::sync::Arc;

use ebm::api::Program;
use ebm::backend::DType;
use ebm::backend::cpu::Cpu;

const SOURCE: &str = "
const centers = ring(8, radius = 2.0)
energy gmm(x: [2]) = -logsumexp(-sum((x - centers)^2, axis = 1) / (2 * 0.1^2))
energy net(x: [2]) = mlp(x, [32, 32, 1], act = swish)
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let program = Program::from_source(SOURCE)?;
    println!("energies: {:?}", program.energies());

    // f64 on the JIT: energy and gradient of a batch of three points.
    let gmm = program.energy("gmm")?;
    let x = [2.0, 0.0, 0.0, 0.0, 1.0, 1.0];
    let eg = gmm.energy_and_grad_x(&x, None, 3)?;
    println!("E = {:?}\n∇E = {:?}", eg.energy, eg.grad_x);
    println!(
        "Hv = {:?}",
        gmm.hvp(&x, &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], None, 3)?
    );

    // f32, and the parameter gradient of a learnable energy (summed over the batch).
    let net = program.energy_with("net", Arc::new(Cpu::new()), DType::F32)?;
    let xs: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let grads = net.grad_params(&xs, None, 3)?;
    for (name, g) in net.param_names().iter().zip(&grads) {
        let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
        println!("|∂E/∂{name}| = {norm:.4}");
    }
    Ok(())
}
