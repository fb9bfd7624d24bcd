//! A short, fixed-seed run of the front-end fuzzer (see
//! `examples/fuzz_frontend.rs` for long runs): no input may panic or be slow.

#[path = "support/fuzz_gen.rs"]
mod fuzz_gen;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

#[test]
fn front_end_survives_random_and_mutated_programs() {
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
