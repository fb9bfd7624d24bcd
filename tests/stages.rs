//! Golden files for every printable compiler stage: for each program below and
//! each stage, `ebm dump` output must equal `tests/golden/NAME.STAGE`. A diff
//! shows which stage changed. Re-bless with `EBM_BLESS=1 cargo test --test stages`.
//! The derivative stages also get structural checks: no multiplication by a
//! literal zero and no two identical nodes.

use std::path::Path;

use ebm::backend::DType;
use ebm::pipeline::{DumpKernel, SourceFile, Stage, dump, dump_kernel_named, kernel_named};

const PROGRAMS: &[&str] = &[
    "tests/golden/gaussian.ebm",
    "tests/golden/mlp2.ebm",
    "tests/golden/conv.ebm",
    "tests/golden/scan.ebm",
    "examples/gmm8.ebm",
    "examples/ring.ebm",
    "examples/banana.ebm",
    "examples/composed.ebm",
    "examples/mlp.ebm",
];

const STAGES: &[(&str, Stage, &str)] = &[
    ("ast", Stage::Ast, "grad"),
    ("ir", Stage::Ir, "grad"),
    ("grad", Stage::Grad, "grad"),
    ("opt", Stage::Opt, "grad"),
    ("opt-all", Stage::Opt, "all"),
    // The engine's fused sampler steps, optimised as it compiles them.
    ("opt-ula", Stage::Opt, "ula"),
    ("opt-mala", Stage::Opt, "mala"),
    ("opt-rwmh", Stage::Opt, "rwmh"),
    ("opt-leapfrog", Stage::Opt, "leapfrog"),
    // The CPU backend's schedule and Cranelift IR of the gradient kernel
    // (f64: no AVX-512 array steps or panel GEMMs, whose use depends on the
    // CPU, so the text is the same on every x86-64 machine).
    ("clif", Stage::Clif, "grad"),
    // The GPU backend's WGSL of the gradient kernel (a program it cannot
    // run yet — a scan — has its error as the golden text).
    ("wgsl", Stage::Wgsl, "grad"),
];

fn golden_path(program: &str, stage: &str) -> String {
    let stem = Path::new(program).file_stem().unwrap().to_str().unwrap();
    format!("tests/golden/{stem}.{stage}")
}

fn check(program: &str, stage_name: &str, stage: Stage, want: DumpKernel) {
    let file = SourceFile::read(Path::new(program)).unwrap();
    let text = match dump(&file, stage, None, want, DType::F64) {
        Ok(text) => text,
        Err(e) if stage == Stage::Wgsl => format!("error: {e}\n"),
        Err(e) => panic!("{program} {stage_name}: {e}"),
    };
    let path = golden_path(program, stage_name);
    if std::env::var_os("EBM_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expect = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {path}; run with EBM_BLESS=1 to create it"));
    assert!(
        text == expect,
        "{path} changed:\n--- expected\n{expect}\n--- got\n{text}"
    );
}

#[test]
fn every_stage_matches_its_golden_file() {
    for program in PROGRAMS {
        for (name, stage, kernel) in STAGES {
            check(program, name, *stage, dump_kernel_named(kernel).unwrap());
        }
    }
}

/// The simplified derivative graphs of each program multiply by no literal
/// zero and hold no two identical nodes (zeros appear only as whole outputs).
#[test]
fn simplified_gradients_are_small() {
    use ebm::autodiff::derived::{derive, is_zero};
    use ebm::ir::{BinaryOp, Op};
    for program in PROGRAMS {
        let file = SourceFile::read(Path::new(program)).unwrap();
        let module = ebm::pipeline::analyze(&file).unwrap();
        for def in module
            .defs
            .iter()
            .filter(|d| d.kind == ebm::sema::DefKind::Energy)
        {
            let energy = ebm::lower::lower(&module, &def.name).unwrap();
            let full = derive(&energy, kernel_named("all").unwrap()).unwrap();
            let g = ebm::opt::optimize(&full, ebm::opt::Config::default());
            let live = g.live(&[]);
            let mut seen = std::collections::HashSet::new();
            for id in g.ids().filter(|id| live[id.index()]) {
                let node = g.node(id);
                if node.op == Op::Binary(BinaryOp::Mul) || node.op == Op::MatMul {
                    assert!(
                        !node.args.iter().any(|&a| is_zero(&g, a)),
                        "{program}: 0*x at {id}"
                    );
                }
                assert!(seen.insert(node.clone()), "{program}: duplicate node {id}");
            }
        }
    }
}
