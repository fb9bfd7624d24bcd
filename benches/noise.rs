//! Throughput of the Gaussian noise generator (normals per second, one thread).
//! Run: `cargo bench --bench noise`.

use std::time::Instant;

use ebm::backend::noise::fill_normal_f32;

fn main() {
    let mut buf = vec![0f32; 1 << 20];
    let mut best = f64::INFINITY;
    for rep in 0..30 {
        let t = Instant::now();
        fill_normal_f32(1234, (rep as u64) << 21, &mut buf);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let checksum: f64 = buf.iter().map(|&v| v as f64).sum();
    println!(
        "{{\"bench\": \"noise_f32\", \"normals_per_s\": {:.0}, \"checksum\": {checksum:.3}}}",
        buf.len() as f64 / best
    );
}
