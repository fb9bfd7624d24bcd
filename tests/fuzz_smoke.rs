//! A short, fixed-seed run of the front-end fuzzer (see
//! `examples/fuzz_pipeline.rs` for long runs): no input may panic or be slow.

#[path = "support/fuzz_deep.rs"]
mod fuzz_deep;
#[path = "support/fuzz_gen.rs"]
mod fuzz_gen;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

#[test]
fn front_end_survives_random_and_mutated_programs() {
    ebm::budget::set_max_memory(fuzz_deep::FUZZ_MEMORY);
    let mut rng = fuzz_gen::Rng::new(20_240_601);
    let mut valid = 0;
    for i in 0..3000 {
        let text = fuzz_gen::input(&mut rng, &[]);
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            ebm::pipeline::check_source("fuzz.ebm", &text)
        }));
        let took = t.elapsed();
        match result {
            Ok(_) => valid += usize::from(ebm::syntax::parse(&text).is_ok()),
            Err(_) => panic!("input {i} panicked:\n{text}"),
        }
        // Debug build on a shared machine: generous, but catches blow-ups.
        assert!(took < Duration::from_secs(5), "input {i} took {took:?}");
    }
    // The generator must also produce programs that parse, or the later
    // stages are never reached.
    assert!(valid > 250, "only {valid} programs parsed");
}

/// The whole pipeline on programs that check: JIT in both dtypes and a few
/// steps of three samplers, no panic and nothing slow.
#[test]
fn whole_pipeline_survives_random_and_mutated_programs() {
    ebm::budget::set_max_memory(fuzz_deep::FUZZ_MEMORY);
    let corpus = fuzz_gen::corpus();
    let mut rng = fuzz_gen::Rng::new(20_261_201);
    let (mut programs, mut compiled, mut sampled) = (0, 0, 0);
    for i in 0..40_000 {
        let text = fuzz_gen::input(&mut rng, &corpus);
        if ebm::pipeline::check_source("fuzz.ebm", &text).is_err() {
            continue;
        }
        programs += 1;
        let t = Instant::now();
        let reached = catch_unwind(AssertUnwindSafe(|| fuzz_deep::deep(&text)))
            .unwrap_or_else(|_| panic!("input {i} panicked past the front end:\n{text}"));
        let took = t.elapsed();
        assert!(took < Duration::from_secs(20), "input {i} took {took:?}");
        compiled += reached.compiled;
        sampled += reached.sampled;
        if programs == 150 {
            break;
        }
    }
    println!("{programs} programs, {compiled} energies compiled, {sampled} sampler runs");
    // The generator must reach the JIT and the samplers, or they are not
    // fuzzed at all.
    assert!(programs == 150, "only {programs} programs checked");
    assert!(
        compiled > 150 && sampled > 300,
        "{compiled} compiled, {sampled} runs"
    );
}
