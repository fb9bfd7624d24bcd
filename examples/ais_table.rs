//! The AIS-against-truth table of docs/objectives.md (issue 11): every case
//! of `examples/ais/cases.rs` at 20 runs × 128 chains × 1000 temperatures,
//! then the banana from a standard-normal base instead of a fitted one (the
//! case where AIS misses mass: its far tail, x₁ ≈ x₀² with x₀ ≈ 3, is where
//! neither the base nor one move per temperature reaches).
//!
//! cargo run --release --example ais_table

#[path = "ais/cases.rs"]
mod cases;

use ebm::sample::ais::Transition;

fn main() {
    let (runs, chains) = (20, 128);
    println!("{runs} runs × {chains} chains, 1000 temperatures (sigmoid), seed 0\n");
    println!("{}", cases::HEADER);
    for case in cases::cases() {
        let row = cases::run(&case, runs, chains, 1000, 0);
        println!("{}", row.markdown(chains));
    }
    println!("\nThe banana from a standard-normal base:\n");
    println!("{}", cases::HEADER);
    for (name, transition) in [
        ("banana, N(0, I) base, MALA", Transition::Mala),
        (
            "banana, N(0, I) base, HMC(10)",
            Transition::Hmc { leapfrog: 10 },
        ),
    ] {
        let mut case = cases::cases().remove(0);
        case.name = name;
        case.base = cases::Base::Standard;
        case.transition = transition;
        let row = cases::run(&case, runs, chains, 1000, 0);
        println!("{}", row.markdown(chains));
    }
    println!("\nReverse AIS (from rows, β from 1 to 0): the upper side of the bracket\n");
    println!("{}", cases::HEADER);
    let all = cases::cases();
    let moons = ebm::data::toy("two_moons", 4000, None, 2).expect("toy set");
    let exact = cases::gauss10_draws(runs * chains, 3);
    for (case, rows, label) in [
        (&all[4], &moons.x, "two moons MLP, reverse from data"),
        (&all[5], &exact, "10-d Gaussian, reverse from exact draws"),
    ] {
        let mut row = cases::run_with(case, runs, chains, 1000, 0, Some(rows));
        row.name = label;
        println!("{}", row.markdown(chains));
    }
}
