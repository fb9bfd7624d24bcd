//! The sampling engine on compiled energies: fused step kernels against the
//! engine's reference moves, conditional energies whose `c` is as wide as
//! `x` (once fed the noise by a name convention), determinism across thread
//! counts, and the shared parameter store.

use std::sync::Arc;

use ebm::api::Program;
use ebm::backend::cpu::Cpu;
use ebm::backend::{DType, Interp};
use ebm::sample::{
    AdaptScope, DensityOf, Draws, Init, RunConfig, SamplerConfig, run_chains, run_compiled,
};

fn samplers() -> Vec<SamplerConfig> {
    vec![
        SamplerConfig::ula(0.05),
        SamplerConfig::mala(0.2),
        SamplerConfig::rwmh(0.5),
        SamplerConfig::hmc(0.2, 5),
        SamplerConfig::pt(0.2, 4, 10.0),
        pt_rwmh(),
        SamplerConfig::uld(0.2, 1.0),
    ]
}

/// Parallel tempering with random-walk replica moves.
fn pt_rwmh() -> SamplerConfig {
    let mut c = SamplerConfig::pt(0.5, 3, 5.0);
    if let ebm::sample::Method::Pt(o) = &mut c.method {
        o.moves = ebm::sample::PtMove::Rwmh;
        o.swap_every = 2;
    }
    c.target_accept = 0.234;
    c
}

const BANANA: &str = "
energy banana(x: [2]) = 0.5 * x[0]^2 + 0.5 * (x[1] - x[0]^2)^2 / 0.5^2
";

/// The fused kernels compute the same moves as the engine's reference
/// definitions (written on the host around separate E/∇E calls): in f64, a
/// short run agrees to rounding, accept decisions included.
#[test]
fn fused_moves_match_the_reference_moves() {
    let program = Program::from_source(BANANA).unwrap();
    let energy = program.energy("banana").unwrap();
    let reference = DensityOf::new(&energy, None).unwrap();
    for cfg in samplers() {
        let mut run = RunConfig::new(64, 20, 30, 5);
        run.threads = 2;
        let fused = run_compiled(&energy, None, &cfg, &run).unwrap();
        let host = run_chains(&reference, &cfg, &run).unwrap();
        let name = cfg.method.name();
        assert_eq!(fused.accept.len(), host.accept.len());
        let flips = fused
            .accept
            .iter()
            .zip(&host.accept)
            .filter(|(a, b)| (*a - *b).abs() > 1e-6)
            .count();
        assert_eq!(flips, 0, "{name}: acceptance differs");
        for (a, b) in fused.x.iter().zip(&host.x) {
            assert!(
                (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                "{name}: fused {a} vs reference {b}"
            );
        }
        for (a, b) in fused.energy.iter().zip(&host.energy) {
            assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{name}: energy");
        }
    }
}

/// A conditional energy with dim(c) = dim(x): every input is bound by its
/// role, so `c` is the conditioning vector for every sampler and dtype, and
/// the chains sample N(c, I).
#[test]
fn conditional_energy_as_wide_as_x_samples_its_condition() {
    let program =
        Program::from_source("energy shifted(x: [3] | c: [3]) = 0.5 * sqnorm(x - c)").unwrap();
    let cond = [2.0, -1.0, 0.5];
    for dtype in [DType::F64, DType::F32] {
        let energy = program
            .energy_with("shifted", Arc::new(Cpu::new()), dtype)
            .unwrap();
        for cfg in samplers() {
            let mut run = RunConfig::new(64, 200, 400, 3);
            run.threads = 2;
            let d = run_compiled(&energy, Some(&cond), &cfg, &run).unwrap();
            let name = format!("{} {}", cfg.method.name(), dtype.name());
            for (i, want) in cond.iter().enumerate() {
                let x = d.coord(i);
                let m = x.iter().sum::<f64>() / x.len() as f64;
                let se = ebm::stats::mcse_mean(&x, d.chains);
                // ULA's bias at λ = 0.05 is in the variance, not the mean.
                assert!(
                    (m - want).abs() < 5.0 * se,
                    "{name} x.{i}: mean {m} vs {want} ± {se}"
                );
            }
        }
    }
}

fn draws(energy: &ebm::runtime::CompiledEnergy, cfg: &SamplerConfig, threads: usize) -> Draws {
    let mut run = RunConfig::new(37, 30, 20, 11);
    run.threads = threads;
    run.init = Init::Uniform { a: -2.0, b: 2.0 };
    run_compiled(energy, None, cfg, &run).unwrap()
}

/// Same seed and backend, any thread count → the same bits; a chain's path
/// does not depend on how many chains run (per-chain adaptation).
#[test]
fn same_bits_for_any_thread_count_and_chain_count() {
    let program = Program::from_source(BANANA).unwrap();
    for dtype in [DType::F32, DType::F64] {
        let energy = program
            .energy_with("banana", Arc::new(Cpu::new()), dtype)
            .unwrap();
        for cfg in samplers() {
            let one = draws(&energy, &cfg, 1);
            for t in [2, 3, 8] {
                let other = draws(&energy, &cfg, t);
                assert_eq!(one.x, other.x, "{} with {t} threads", cfg.method.name());
                assert_eq!(one.energy, other.energy);
                assert_eq!(one.accept, other.accept);
                // The run's statistics too (# accept_rate, PT's rates):
                // sums over chains in chain order, whatever the blocks.
                assert_eq!(
                    one.header,
                    other.header,
                    "{} with {t} threads",
                    cfg.method.name()
                );
            }
            let mut run = RunConfig::new(5, 30, 20, 11);
            run.init = Init::Uniform { a: -2.0, b: 2.0 };
            let few = run_compiled(&energy, None, &cfg, &run).unwrap();
            for k in 0..few.draws {
                assert_eq!(few.point(4, k), one.point(4, k), "{}", cfg.method.name());
            }
        }
    }
}

/// `energies: false` (training's negative phase) moves ULA chains exactly as
/// a full run does and leaves the energy column NaN; MH samplers, which need
/// E for their decisions, and ULD, whose fused step computes E(x') anyway,
/// ignore it.
/// A scalar `x` (shape `[]`) is one coordinate: every sampler's fused
/// steps run on it (they once built an ill-shaped graph) and draw the
/// chains `x: [1]` draws.
#[test]
fn a_scalar_x_samples_like_a_one_element_x() {
    let p = Program::from_source(
        "energy s(x: []) = x^2 / 2 + x^4 / 10\nenergy v(x: [1]) = sum(x^2 / 2 + x^4 / 10)\n",
    )
    .unwrap();
    let mut cfgs = samplers();
    cfgs.push(SamplerConfig::nuts(0.2, 6));
    for cfg in &cfgs {
        for dtype in [DType::F32, DType::F64] {
            let scalar = p.energy_with("s", Arc::new(Cpu::new()), dtype).unwrap();
            let vector = p.energy_with("v", Arc::new(Cpu::new()), dtype).unwrap();
            let (a, b) = (draws(&scalar, cfg, 2), draws(&vector, cfg, 2));
            assert_eq!(a.x, b.x, "{} {dtype:?}", cfg.method.name());
        }
    }
}

#[test]
fn runs_without_energies_move_the_same_chains() {
    let program = Program::from_source(BANANA).unwrap();
    let energy = program.energy("banana").unwrap();
    for cfg in samplers() {
        let full = draws(&energy, &cfg, 2);
        let mut run = RunConfig::new(37, 30, 20, 11);
        run.threads = 2;
        run.init = Init::Uniform { a: -2.0, b: 2.0 };
        run.energies = false;
        let bare = run_compiled(&energy, None, &cfg, &run).unwrap();
        assert_eq!(full.x, bare.x, "{}", cfg.method.name());
        if cfg.method.is_mh() || cfg.method.name() == "uld" {
            assert_eq!(full.energy, bare.energy);
        } else {
            assert!(bare.energy.iter().all(|e| e.is_nan()));
        }
    }
}

/// Shared adaptation pools all chains into one block: one step size.
#[test]
fn shared_adaptation_runs_as_one_block() {
    let program = Program::from_source(BANANA).unwrap();
    let energy = program.energy("banana").unwrap();
    let mut cfg = SamplerConfig::mala(0.1);
    cfg.adapt_scope = AdaptScope::Shared;
    let d = draws(&energy, &cfg, 4);
    let s = d.summary.unwrap();
    assert_eq!(s.step_min, s.step_max);
}

/// The interpreter is the oracle for the engine's compiled path too.
#[test]
fn interpreter_and_jit_give_the_same_chains() {
    let program = Program::from_source(BANANA).unwrap();
    let jit = program.energy("banana").unwrap();
    let interp = program
        .energy_with("banana", Arc::new(Interp), DType::F64)
        .unwrap();
    for cfg in samplers() {
        let a = draws(&jit, &cfg, 2);
        let b = draws(&interp, &cfg, 2);
        for (x, y) in a.x.iter().zip(&b.x) {
            assert!(
                (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
                "{}: {x} vs {y}",
                cfg.method.name()
            );
        }
    }
}

const SHARED: &str = "
param mu: [2] ~ zeros
energy near(x: [2]) = 0.5 * sqnorm(x - mu)
energy far(x: [2]) = 0.5 * sqnorm(x + mu)
";

/// Two energies of one program read one parameter store: an update through
/// the store is seen by both, and reaches their compiled kernels without
/// compiling anything again.
#[test]
fn energies_share_one_parameter_store() {
    let program = Program::from_source(SHARED).unwrap();
    let near = program.energy("near").unwrap();
    let far = program.energy("far").unwrap();
    assert!(Arc::ptr_eq(near.store(), far.store()));
    let x = [1.0, 1.0];
    assert_eq!(near.energy(&x, None, 1).unwrap(), vec![1.0]);
    assert_eq!(far.energy(&x, None, 1).unwrap(), vec![1.0]);
    let compiled = (near.compiled_kernels(), far.compiled_kernels());
    let version = program.params().version();
    program.params().set("mu", &[1.0, 1.0]).unwrap();
    assert!(program.params().version() > version);
    assert_eq!(near.energy(&x, None, 1).unwrap(), vec![0.0]);
    assert_eq!(far.energy(&x, None, 1).unwrap(), vec![4.0]);
    assert_eq!(
        (near.compiled_kernels(), far.compiled_kernels()),
        compiled,
        "an update recompiled a kernel"
    );
    // Through one energy, seen by the other; f32 views refresh too.
    near.set_param("mu", &[0.0, 2.0]).unwrap();
    assert_eq!(far.energy(&x, None, 1).unwrap(), vec![5.0]);
    let far32 = program
        .energy_with("far", Arc::new(Cpu::new()), DType::F32)
        .unwrap();
    assert_eq!(far32.energy(&[1.0f32, 1.0], None, 1).unwrap(), vec![5.0]);
    near.set_param("mu", &[0.0, 0.0]).unwrap();
    assert_eq!(far32.energy(&[1.0f32, 1.0], None, 1).unwrap(), vec![1.0]);
    // The sampler reads the store too: chains move to the new mode.
    program.params().set("mu", &[3.0, -3.0]).unwrap();
    let mut run = RunConfig::new(16, 200, 200, 1);
    run.threads = 2;
    let d = run_compiled(&near, None, &SamplerConfig::mala(0.5), &run).unwrap();
    let m0 = d.coord(0).iter().sum::<f64>() / d.coord(0).len() as f64;
    assert!((m0 - 3.0).abs() < 0.3, "{m0}");
    // Wrong sizes and unknown names are errors, not panics.
    assert!(program.params().set("mu", &[1.0]).is_err());
    assert!(program.params().set("nu", &[1.0, 1.0]).is_err());
}

/// A per-sample seed pulls back the output: ∇_θ Σ_b w_b E(x_b).
#[test]
fn weighted_parameter_gradients() {
    let program = Program::from_source(SHARED).unwrap();
    let near = program.energy("near").unwrap();
    program.params().set("mu", &[1.0, -1.0]).unwrap();
    let x = [2.0, 0.0, 0.0, 0.0];
    let w = [0.5, -2.0];
    let (values, grads) = near.weighted_grad_params(&x, &w, None, 2).unwrap();
    assert_eq!(values, vec![1.0, 1.0]);
    // ∂E/∂μ = −(x − μ): rows (−1, −1) and (1, −1); weighted sum.
    assert_eq!(grads, vec![vec![-0.5 - 2.0, -0.5 + 2.0]]);
}

/// E = x⁴ explodes under ULA from x = 20: that chain freezes at its last
/// finite position inside the fused multi-step call, the others sample on.
#[test]
fn a_diverging_chain_freezes_inside_the_fused_loop() {
    let program = Program::from_source("energy quartic(x: [1]) = x[0]^4").unwrap();
    for dtype in [DType::F64, DType::F32] {
        let energy = program
            .energy_with("quartic", Arc::new(Cpu::new()), dtype)
            .unwrap();
        let mut run = RunConfig::new(4, 0, 200, 9);
        run.init = Init::Array {
            values: vec![0.1, 20.0, -0.3, 0.5],
            rows: 4,
        };
        let d = run_compiled(&energy, None, &SamplerConfig::ula(0.01), &run).unwrap();
        let s = d.summary.clone().unwrap();
        assert_eq!(s.frozen_chains, 1);
        assert_eq!(s.divergent_chains.len(), 1);
        assert_eq!(s.divergent_chains[0].chain, 1);
        let it = s.divergent_chains[0].iteration;
        assert!(it < 10, "diverged at {it}");
        assert!(d.divergent[d.draws + it..2 * d.draws].iter().all(|v| *v));
        assert!(d.x.iter().all(|v| v.is_finite()));
        assert_eq!(d.point(1, it), d.point(1, d.draws - 1));
        for c in [0, 2, 3] {
            assert!((0..d.draws).all(|k| !d.divergent[c * d.draws + k]));
        }
        assert_eq!(s.divergences, d.draws - it);
    }
}

/// ULD's windows (one multi-step call per kept draw) freeze a diverging
/// chain's whole state (position, velocity, gradient and energy) where the
/// reference loop (one host step per iteration) does. On the cliff the
/// energy overflows while the position is still finite, so a guard that
/// kept some buffers and moved others would leave another last point.
#[test]
fn uld_windows_freeze_whole_states_as_the_reference_does() {
    let program =
        Program::from_source("energy cliff(x: [3]) = sum(where(x > 5, -x^4, 0.5 * x^2))").unwrap();
    let energy = program.energy("cliff").unwrap();
    let reference = DensityOf::new(&energy, None).unwrap();
    let mut run = RunConfig::new(8, 100, 60, 11);
    run.thin = 3;
    run.threads = 2;
    run.init = Init::Array {
        values: (0..24)
            .map(|i| if i == 7 { 5.5 } else { (i as f64 * 0.7).sin() })
            .collect(),
        rows: 8,
    };
    let cfg = SamplerConfig::uld(0.05, 1.0);
    let fused = run_compiled(&energy, None, &cfg, &run).unwrap();
    let host = run_chains(&reference, &cfg, &run).unwrap();
    let (f, h) = (
        fused.summary.clone().unwrap(),
        host.summary.clone().unwrap(),
    );
    assert_eq!(f.frozen_chains, 1);
    assert_eq!(f.frozen_chains, h.frozen_chains);
    assert_eq!(f.divergences, h.divergences);
    // The chain runs away to −∞ energy: an escape, with its last state.
    let (fe, he) = (&f.escaped_chains, &h.escaped_chains);
    assert_eq!(fe.len(), 1);
    assert_eq!(
        (fe[0].chain, fe[0].iteration),
        (he[0].chain, he[0].iteration)
    );
    let near = |a: f64, b: f64| a.is_finite() && (a - b).abs() <= 1e-9 * (1.0 + b.abs());
    assert!(
        near(fe[0].norm, he[0].norm),
        "{} vs {}",
        fe[0].norm,
        he[0].norm
    );
    assert!(
        near(fe[0].energy, he[0].energy),
        "{} vs {}",
        fe[0].energy,
        he[0].energy
    );
    assert_eq!(fused.divergent, host.divergent);
    assert_eq!(fused.accept, host.accept);
    for (a, b) in fused
        .x
        .iter()
        .zip(&host.x)
        .chain(fused.energy.iter().zip(&host.energy))
    {
        assert!(near(*a, *b), "windows {a}, reference {b}");
    }
}

/// The backend contract: buffers allocated, uploaded and read back through
/// the backend, a multi-step call on resident buffers, declared dtypes.
#[test]
fn backend_buffers_and_multi_step_calls() {
    use ebm::backend::{Backend, Bind, Buffer, HostData, NoiseFeed, StepLoop};
    use ebm::runtime::steps::{self, UlaMove};
    let program = Program::from_source("energy g(x: [2]) = 0.5 * sqnorm(x)").unwrap();
    let energy = program.energy("g").unwrap();
    let cpu = Cpu::with_threads(1);
    assert_eq!(cpu.dtypes(), &[DType::F32, DType::F64]);
    let m = UlaMove {
        drift: 0.1,
        noise: 0.0,
        clip: None,
        clamp: None,
    };
    let sg = steps::ula(energy.energy_graph(), m).unwrap();
    let kernel = cpu.compile(&sg.graph, DType::F64).unwrap();
    let x0 = [1.0, -2.0, 3.0, 0.5];
    let binds: Vec<Bind> = sg
        .graph
        .inputs()
        .iter()
        .map(|d| Bind::State(if d.name == "x" { 0 } else { 1 }))
        .collect();
    let mut state = vec![
        cpu.upload(HostData::F64(&x0)).unwrap(),
        cpu.alloc(4, DType::F64).unwrap(),
        cpu.alloc(4, DType::F64).unwrap(),
    ];
    let lp = StepLoop {
        first_step: 0,
        steps: 5,
        inputs: &binds,
        outputs: &[2],
        carry: &[(2, 0)],
        noise: Some(NoiseFeed {
            buffer: 1,
            seed: 1,
            offset: 0,
        }),
        uniforms: &[],
        record: &[],
        freeze: true,
    };
    let mut frozen = vec![None; 2];
    kernel
        .run_steps(&lp, &[], &mut state, 2, &mut frozen)
        .unwrap();
    // Noise scale 0: x ← x − 0.1x, five times.
    let got = cpu.download(&state[0]).unwrap();
    for (g, x) in got.iter().zip(x0) {
        assert!((g - x * 0.9f64.powi(5)).abs() < 1e-12, "{g}");
    }
    assert_eq!(frozen, vec![None, None]);
    // Wrong-dtype buffers are an error, not a panic.
    let mut bad = vec![
        Buffer::F32(vec![0.0; 4]),
        Buffer::F32(vec![0.0; 4]),
        Buffer::F32(vec![0.0; 4]),
    ];
    assert!(
        kernel
            .run_steps(&lp, &[], &mut bad, 2, &mut frozen)
            .is_err()
    );
    // A recorded history no memory could hold is an error before the
    // first step, not an aborted allocation.
    state.push(cpu.alloc(0, DType::F64).unwrap());
    let huge = StepLoop {
        steps: u64::MAX / 2,
        record: &[(0, 3)],
        ..lp
    };
    let err = kernel
        .run_steps(&huge, &[], &mut state, 2, &mut frozen)
        .unwrap_err();
    assert!(err.to_string().contains("history"), "{err}");
}

/// A multi-step call computes what one call per step computes, bit for bit,
/// on an MLP whose weights the CPU backend packs once per loop (f32 panel
/// kernel); a second loop after the weights change sees the new weights.
#[test]
fn multi_step_calls_match_single_steps_and_see_new_weights() {
    use ebm::backend::{Backend, Bind, Buffer, HostData, StepLoop};
    use ebm::ir::InputKind;
    use ebm::runtime::steps::{self, UlaMove};
    let program = Program::from_source(
        "param W1: [2, 40] ~ normal(0, 1)\nparam W2: [40, 40] ~ normal(0, 1)\nparam w3: [40] ~ normal(0, 1)\n\
         energy e(x: [2]) = sum(swish(swish(x @ W1) @ W2) * w3)",
    )
    .unwrap();
    let energy = program.energy("e").unwrap();
    let m = UlaMove {
        drift: 0.05,
        noise: 0.0,
        clip: None,
        clamp: None,
    };
    let sg = steps::ula(energy.energy_graph(), m).unwrap();
    let cpu = Cpu::with_threads(1);
    let kernel = cpu.compile(&sg.graph, DType::F32).unwrap();
    let n = 70;
    let x0: Vec<f32> = (0..2 * n).map(|i| (i as f32 * 0.37).sin()).collect();
    let weights = |scale: f32| -> Vec<Buffer> {
        let decls = sg.graph.inputs().iter();
        let shared = decls.filter(|d| d.kind == InputKind::Shared);
        shared
            .map(|d| {
                let len = d.shape.iter().product::<usize>();
                Buffer::F32((0..len).map(|i| scale * (i as f32 * 0.61).cos()).collect())
            })
            .collect()
    };
    // Inputs: sample inputs from state (x = 0, noise = 1), shared ones fixed.
    let (mut next_fixed, mut binds) = (0, vec![]);
    for d in sg.graph.inputs() {
        binds.push(match (d.kind, d.name.as_str()) {
            (InputKind::Shared, _) => {
                next_fixed += 1;
                Bind::Fixed(next_fixed - 1)
            }
            (_, "x") => Bind::State(0),
            _ => Bind::State(1),
        });
    }
    let lp = StepLoop {
        first_step: 0,
        steps: 4,
        inputs: &binds,
        outputs: &[2],
        carry: &[(2, 0)],
        noise: None,
        uniforms: &[],
        record: &[],
        freeze: false,
    };
    let looped = |w: &[Buffer], x: &[f32]| -> Vec<f32> {
        let fixed: Vec<&Buffer> = w.iter().collect();
        let mut state = vec![
            cpu.upload(HostData::F32(x)).unwrap(),
            cpu.alloc(2 * n, DType::F32).unwrap(),
            cpu.alloc(2 * n, DType::F32).unwrap(),
        ];
        let mut frozen = vec![None; n];
        kernel
            .run_steps(&lp, &fixed, &mut state, n, &mut frozen)
            .unwrap();
        cpu.download(&state[0])
            .unwrap()
            .iter()
            .map(|&v| v as f32)
            .collect()
    };
    let stepped = |w: &[Buffer], x: &[f32]| -> Vec<f32> {
        let mut x = Buffer::F32(x.to_vec());
        let noise = Buffer::F32(vec![0.0; 2 * n]);
        for _ in 0..4 {
            let mut out = Buffer::F32(vec![0.0; 2 * n]);
            let ins: Vec<&Buffer> = binds
                .iter()
                .map(|b| match *b {
                    Bind::Fixed(i) => &w[i],
                    Bind::State(0) => &x,
                    Bind::State(_) => &noise,
                })
                .collect();
            kernel.run_buffers(&ins, &mut [&mut out], n).unwrap();
            x = out;
        }
        match x {
            Buffer::F32(v) => v,
            Buffer::F64(_) | Buffer::Held(_) => unreachable!(),
        }
    };
    let (w, w2) = (weights(0.2), weights(-0.3));
    let a = looped(&w, &x0);
    assert_eq!(a, stepped(&w, &x0));
    assert_ne!(a, x0);
    // New weights in the same kernel: packed again, not reused.
    assert_eq!(looped(&w2, &x0), stepped(&w2, &x0));
    assert_ne!(looped(&w2, &x0), a);
}

const JEM: &str = "
model f(x: [2]) -> [3] = linear(x, 3)
energy px(x: [2]) = -logsumexp(f(x))
";

/// A model compiles like an energy: per-sample values and their pullbacks
/// by a per-sample seed (JEM's cross-entropy seeds the logits with
/// softmax − onehot); it shares its parameters with the energy built on it.
#[test]
fn models_compile_with_pullbacks_and_share_parameters() {
    use ebm::runtime::{Args, KernelSpec, Pullback, Seed, Slot};
    let program = Program::from_source(JEM).unwrap();
    let f = program.model("f").unwrap();
    let px = program.energy("px").unwrap();
    assert_eq!(f.out_dim(), 3);
    assert!(program.energy("f").is_err(), "a model is not an energy");
    assert_eq!(f.param_names(), px.param_names());
    let x = [0.5, -1.0, 2.0, 0.25];
    let logits = f.energy(&x, None, 2).unwrap();
    assert_eq!(logits.len(), 6);
    // px = −logsumexp(logits), from the same store.
    let e = px.energy(&x, None, 2).unwrap();
    for b in 0..2 {
        let l = &logits[3 * b..3 * b + 3];
        let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + l.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        assert!((e[b] + lse).abs() < 1e-12);
    }
    // Pull back the logits with seed s: ∇_x Σ_b ⟨s_b, f(x_b)⟩ = Wᵀ s_b
    // (f = xW + b, W: [2, 3]); ∇_θ checked against finite differences.
    let seed = [1.0, 0.0, -1.0, 0.5, 0.5, 0.0];
    let spec = KernelSpec {
        value: true,
        pullback: Some(Pullback {
            seed: Seed::PerSample,
            wrt_x: true,
            wrt_params: true,
        }),
        hvp: false,
        mixed: false,
    };
    let out = f.run(spec, Args::x(&x[..]).seed(&seed), 2).unwrap();
    assert_eq!(out.get(Slot::Value).unwrap(), &logits[..]);
    let names = f.param_names();
    let store = program.params();
    let w_name = names.iter().find(|n| n.ends_with(".w")).unwrap();
    let w = store.get(w_name).unwrap();
    let gx = out.get(Slot::PullbackX).unwrap();
    for b in 0..2 {
        for i in 0..2 {
            let want: f64 = (0..3).map(|k| w[i * 3 + k] * seed[3 * b + k]).sum();
            assert!((gx[2 * b + i] - want).abs() < 1e-12);
        }
    }
    let objective = || {
        let l = f.energy(&x, None, 2).unwrap();
        l.iter().zip(&seed).map(|(a, s)| a * s).sum::<f64>()
    };
    for (k, name) in names.iter().enumerate() {
        let g = out.get(Slot::PullbackParam(k)).unwrap().to_vec();
        let base = store.get(name).unwrap();
        for j in 0..base.len() {
            let h = 1e-6;
            let mut p = base.clone();
            p[j] += h;
            store.set(name, &p).unwrap();
            let up = objective();
            p[j] -= 2.0 * h;
            store.set(name, &p).unwrap();
            let down = objective();
            store.set(name, &base).unwrap();
            let fd = (up - down) / (2.0 * h);
            assert!((g[j] - fd).abs() < 1e-6, "{name}[{j}]: {} vs {fd}", g[j]);
        }
    }
}

/// A run whose chain state and draws would not fit is refused before any
/// memory is taken, with the size in the message.
#[test]
fn oversized_runs_are_refused_before_they_start() {
    let program = Program::from_source("energy g(x: [100]) = 0.5 * sqnorm(x)").unwrap();
    let energy = program.energy("g").unwrap();
    let run = RunConfig::new(4_000_000, 0, 1, 0);
    let err = run_compiled(&energy, None, &SamplerConfig::mala(0.1), &run).unwrap_err();
    assert!(err.to_string().contains("GiB"), "{err}");
}

/// ½N(−6, 1) + ½N(6, 1): an energy barrier of 18 between the modes.
const TWO_MODES: &str = "
const centers = [-6.0, 6.0]
energy two_modes(x: [1]) = -logsumexp(-0.5 * (x - centers)^2)
";

/// Per chain: draws left of 0, draws right of 0, and mode switches.
fn mode_visits(d: &Draws) -> Vec<(usize, usize, usize)> {
    (0..d.chains)
        .map(|c| {
            let xs: Vec<f64> = (0..d.draws).map(|k| d.point(c, k)[0]).collect();
            let left = xs.iter().filter(|v| **v < 0.0).count();
            let switches = xs
                .windows(2)
                .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
                .count();
            (left, xs.len() - left, switches)
        })
        .collect()
}

/// The must-show of issue 11: on a well-separated mixture, chains started
/// alternately in the two modes, MALA's chains never leave their starting
/// mode (R-hat far above 1) while parallel tempering's T = 1 chains visit
/// both modes, each of them, with R-hat < 1.05. Run with `--nocapture` for
/// the figures (visit counts, switches, R-hat, swap rates, time).
#[test]
fn parallel_tempering_mixes_where_mala_stays_stuck() {
    let program = Program::from_source(TWO_MODES).unwrap();
    let energy = program.energy("two_modes").unwrap();
    let mut run = RunConfig::new(8, 500, 4000, 2026);
    run.threads = 2;
    run.init = Init::Array {
        values: vec![-6.0, 6.0],
        rows: 2,
    };
    let mala = run_compiled(&energy, None, &SamplerConfig::mala(0.5), &run).unwrap();
    let pt_cfg = SamplerConfig::pt(0.5, 8, 60.0);
    let pt = run_compiled(&energy, None, &pt_cfg, &run).unwrap();
    let mut rhats = Vec::new();
    for (name, d) in [("mala", &mala), ("pt", &pt)] {
        let x = d.coord(0);
        let rhat = ebm::stats::rhat(&x, d.chains);
        let basic = ebm::stats::rhat_basic(&x, d.chains);
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let s = d.summary.as_ref().unwrap();
        println!(
            "{name}: R-hat {rhat:.3} (rank-normalised; classic split {basic:.3}), mean {mean:+.3} (true 0), {s}"
        );
        for (c, (l, r, sw)) in mode_visits(d).iter().enumerate() {
            println!("  {name} chain {c}: {l} draws x<0, {r} draws x>0, {sw} switches");
        }
        rhats.push((rhat, basic));
    }
    // MALA: every chain stays on the side it started on.
    for (c, (l, r, _)) in mode_visits(&mala).iter().enumerate() {
        let stuck = if c % 2 == 0 { *r == 0 } else { *l == 0 };
        assert!(stuck, "mala chain {c} left its mode: {l} / {r}");
    }
    // Rank-normalised R-hat saturates near 1.7 for chains split between
    // two separated modes; the classic split R-hat grows with the gap.
    assert!(
        rhats[0].0 > 1.5 && rhats[0].1 > 3.0,
        "mala R-hat {:?}",
        rhats[0]
    );
    // PT: every chain spends at least a quarter of its draws in each mode.
    for (c, (l, r, sw)) in mode_visits(&pt).iter().enumerate() {
        assert!(
            *l > pt.draws / 4 && *r > pt.draws / 4 && *sw >= 20,
            "pt chain {c}: {l} / {r}, {sw} switches"
        );
    }
    assert!(
        rhats[1].0 < 1.05 && rhats[1].1 < 1.05,
        "pt R-hat {:?}",
        rhats[1]
    );
    let s = pt.summary.unwrap();
    assert_eq!(s.swap_rates.len(), 7);
    assert!(s.swap_rates.iter().all(|r| *r > 0.2), "{:?}", s.swap_rates);
}

/// A backend that asks samplers for Metropolis windows (a device backend's
/// path) while computing on the host.
struct Windowed(Arc<dyn ebm::backend::Backend>);

impl ebm::backend::Backend for Windowed {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn compile(
        &self,
        graph: &ebm::ir::Graph,
        dtype: DType,
    ) -> Result<Arc<dyn ebm::backend::Kernel>, ebm::backend::BackendError> {
        self.0.compile(graph, dtype)
    }
    fn metropolis_windows(&self) -> bool {
        true
    }
}

/// A banana whose energy is NaN past x₀ = 2.5: proposals there diverge.
const CLIFFED: &str = "
energy cliffed(x: [2]) = where(x[0] > 2.5, log(-1 - x[0]^2), 0.5 * x[0]^2 + 2 * (x[1] - x[0]^2)^2)
";

/// Windows of whole MALA, random-walk and static HMC transitions (the
/// proposal or trajectory and the decision as one graph, run by
/// `Kernel::run_steps` with the chain state carried; HMC's jittered step
/// from a second uniform stream; in warm-up each chain's step adapted by
/// the graph's copy of the dual averaging) book exactly what the engine's
/// one-call-per-proposal loop books: on the f64 interpreter the draws,
/// energies, acceptances, divergences, HMC's H₀ and leapfrog counts and
/// the summaries (adapted steps and metrics included) are the same bits,
/// across windows (a warm-up of every metric window, one longer than a
/// window holds, and more sampling iterations than one window holds),
/// blocks (two threads), thinning, divergent proposals and a chain frozen
/// from its start.
#[test]
fn metropolis_windows_book_what_the_host_loop_books() {
    let program = Program::from_source(CLIFFED).unwrap();
    let plain = program
        .energy_with("cliffed", Arc::new(Interp), DType::F64)
        .unwrap();
    let windowed = program
        .energy_with("cliffed", Arc::new(Windowed(Arc::new(Interp))), DType::F64)
        .unwrap();
    for cfg in [
        SamplerConfig::mala(0.6),
        SamplerConfig::rwmh(1.5),
        SamplerConfig::hmc(0.4, 6),
    ] {
        let mut run = RunConfig::new(6, 1200, 1300, 17);
        run.threads = 2;
        run.thin = 3;
        let mut init: Vec<f64> = (0..12).map(|i| (i as f64 * 0.7).sin()).collect();
        init[4] = f64::NAN;
        run.init = Init::Array {
            values: init,
            rows: 6,
        };
        let a = run_compiled(&plain, None, &cfg, &run).unwrap();
        let b = run_compiled(&windowed, None, &cfg, &run).unwrap();
        let name = cfg.method.name();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.x), bits(&b.x), "{name}: draws");
        assert_eq!(bits(&a.energy), bits(&b.energy), "{name}: energies");
        assert_eq!(bits(&a.accept), bits(&b.accept), "{name}: acceptances");
        assert_eq!(a.divergent, b.divergent, "{name}: divergence flags");
        assert_eq!(bits(&a.hamiltonian), bits(&b.hamiltonian), "{name}: H₀");
        assert_eq!(a.n_leapfrog, b.n_leapfrog, "{name}: leapfrog steps");
        let (mut sa, mut sb) = (a.summary.unwrap(), b.summary.unwrap());
        assert!(sa.divergences > 0, "{name}: some proposals diverge");
        assert_eq!(sa.frozen_chains, 1, "{name}: the NaN start");
        (sa.elapsed_s, sa.chain_steps_per_s) = (0.0, 0.0);
        (sb.elapsed_s, sb.chain_steps_per_s) = (0.0, 0.0);
        assert_eq!(sa, sb, "{name}: summaries");
    }
    // A scalar x: the per-chain step, jitter and sums take rank 0.
    let program = Program::from_source("energy q(x: []) = 0.5 * x^2 + 0.1 * x^4").unwrap();
    let plain = program
        .energy_with("q", Arc::new(Interp), DType::F64)
        .unwrap();
    let windowed = program
        .energy_with("q", Arc::new(Windowed(Arc::new(Interp))), DType::F64)
        .unwrap();
    for cfg in [
        SamplerConfig::mala(0.6),
        SamplerConfig::rwmh(1.5),
        SamplerConfig::hmc(0.4, 3),
    ] {
        let run = RunConfig::new(3, 20, 600, 5);
        let a = run_compiled(&plain, None, &cfg, &run).unwrap();
        let b = run_compiled(&windowed, None, &cfg, &run).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a.x),
            bits(&b.x),
            "{}: scalar draws",
            cfg.method.name()
        );
    }
}

/// [`Windowed`], counting its kernels' single calls and step loops.
struct Counted {
    inner: Windowed,
    calls: Arc<std::sync::atomic::AtomicUsize>,
    loops: Arc<std::sync::atomic::AtomicUsize>,
}

/// A kernel of [`Counted`].
struct CountedKernel {
    inner: Arc<dyn ebm::backend::Kernel>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
    loops: Arc<std::sync::atomic::AtomicUsize>,
}

impl ebm::backend::Backend for Counted {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn compile(
        &self,
        graph: &ebm::ir::Graph,
        dtype: DType,
    ) -> Result<Arc<dyn ebm::backend::Kernel>, ebm::backend::BackendError> {
        Ok(Arc::new(CountedKernel {
            inner: self.inner.compile(graph, dtype)?,
            calls: self.calls.clone(),
            loops: self.loops.clone(),
        }))
    }
    fn metropolis_windows(&self) -> bool {
        true
    }
}

impl ebm::backend::Kernel for CountedKernel {
    fn graph(&self) -> &ebm::ir::Graph {
        self.inner.graph()
    }
    fn dtype(&self) -> DType {
        self.inner.dtype()
    }
    fn run_f64(
        &self,
        inputs: &[&[f64]],
        outputs: &mut [&mut [f64]],
        batch: usize,
    ) -> Result<(), ebm::backend::BackendError> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.run_f64(inputs, outputs, batch)
    }
    fn run_f32(
        &self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        batch: usize,
    ) -> Result<(), ebm::backend::BackendError> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.run_f32(inputs, outputs, batch)
    }
    fn run_steps(
        &self,
        lp: &ebm::backend::StepLoop<'_>,
        fixed: &[&ebm::backend::Buffer],
        state: &mut [ebm::backend::Buffer],
        batch: usize,
        frozen: &mut [Option<u64>],
    ) -> Result<(), ebm::backend::BackendError> {
        self.loops
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.run_steps(lp, fixed, state, batch, frozen)
    }
}

/// A per-chain warm-up runs in windows (one step loop per stretch between
/// the host's adaptation events, no call per proposal): a 500-iteration
/// warm-up of MALA or HMC (diagonal metric) on a backend with Metropolis
/// windows is six step loops — up to the first metric window, each of its
/// four windows, the last 50 iterations — and the random walk's (unit
/// metric) one; the sampling phase one more; and only the few single calls
/// of the start (energies, gradients and the curvature estimate at the
/// initial points). A shared step keeps one call per proposal in warm-up.
#[test]
fn a_per_chain_warm_up_runs_in_windows() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let program = Program::from_source(CLIFFED).unwrap();
    for (cfg, windows) in [
        (SamplerConfig::mala(0.6), 7),
        (SamplerConfig::rwmh(1.5), 2),
        (SamplerConfig::hmc(0.4, 3), 7),
    ] {
        for shared in [false, true] {
            let (calls, loops) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let backend = Counted {
                inner: Windowed(Arc::new(Interp)),
                calls: calls.clone(),
                loops: loops.clone(),
            };
            let energy = program
                .energy_with("cliffed", Arc::new(backend), DType::F64)
                .unwrap();
            let mut cfg = cfg.clone();
            if shared {
                cfg.adapt_scope = AdaptScope::Shared;
            }
            let mut run = RunConfig::new(4, 500, 100, 3);
            run.threads = 1;
            run_compiled(&energy, None, &cfg, &run).unwrap();
            let (calls, loops) = (calls.load(Ordering::Relaxed), loops.load(Ordering::Relaxed));
            let name = cfg.method.name();
            if shared {
                assert!(calls >= 500, "{name}, shared step: {calls} single calls");
                assert_eq!(loops, 1, "{name}, shared step: the sampling window");
            } else {
                assert!(calls <= 10, "{name}: {calls} single calls");
                assert_eq!(loops, windows, "{name}: step loops");
            }
        }
    }
}
