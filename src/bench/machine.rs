//! Reading the machine's load from `/proc`, as the peer scripts do: whether it
//! is idle before a measurement, how much CPU other processes took during it,
//! and this process's peak resident memory.

use std::time::{Duration, Instant};

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: f64 = v.iter().sum();
    Some((total - v.get(3)? - v.get(4)?, total))
}

/// This process's user + system jiffies.
fn own_jiffies() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
}

fn idle_fraction(interval: Duration) -> Option<f64> {
    let (b0, t0) = machine_jiffies()?;
    std::thread::sleep(interval);
    let (b1, t1) = machine_jiffies()?;
    Some(1.0 - (b1 - b0) / (t1 - t0).max(1.0))
}

/// Waits (up to `EBM_BENCH_MAX_WAIT` seconds, default 300) for an idle machine;
/// returns the idle fraction seen last.
pub fn wait_quiet() -> Option<f64> {
    let max_wait: u64 = std::env::var("EBM_BENCH_MAX_WAIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let deadline = Instant::now() + Duration::from_secs(max_wait);
    let mut idle = idle_fraction(Duration::from_millis(500));
    let mut said = false;
    while idle.is_some_and(|i| i < 0.9) && Instant::now() < deadline {
        if !said {
            // On stderr: stdout holds the JSON lines.
            eprintln!(
                "ebm bench: waiting up to {max_wait} s for the CPUs to be at least 90% idle (now {:.0}%; EBM_BENCH_MAX_WAIT=0 skips the wait)",
                idle.unwrap_or(0.0) * 100.0
            );
            said = true;
        }
        std::thread::sleep(Duration::from_secs(2));
        idle = idle_fraction(Duration::from_millis(500));
    }
    idle
}

/// Measures the CPU share of other processes between `start` and `share`.
pub struct ForeignMeter {
    machine: Option<(f64, f64)>,
    own: Option<f64>,
}

impl ForeignMeter {
    pub fn start() -> ForeignMeter {
        ForeignMeter {
            machine: machine_jiffies(),
            own: own_jiffies(),
        }
    }

    pub fn share(&self) -> Option<f64> {
        let (b0, t0) = self.machine?;
        let (b1, t1) = machine_jiffies()?;
        let own = own_jiffies()? - self.own?;
        (t1 > t0).then(|| ((b1 - b0 - own) / (t1 - t0)).max(0.0))
    }
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}
