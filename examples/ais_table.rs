//! The AIS-against-truth table of docs/objectives.md (issue 11): every case
//! of `examples/ais/cases.rs` at 20 runs × 128 chains × 1000 temperatures,
//! and a longer 10-d run.
//!
//! cargo run --release --example ais_table

#[path = "ais/cases.rs"]
mod cases;

fn main() {
    let (runs, chains) = (20, 128);
    println!("{runs} runs × {chains} chains, 1000 temperatures (sigmoid), seed 0\n");
    println!("{}", cases::HEADER);
    for case in cases::cases() {
        let row = cases::run(&case, runs, chains, 1000, 0);
        println!("{}", row.markdown(chains));
    }
}
