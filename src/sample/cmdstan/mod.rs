//! CmdStan's output CSV: one file per chain, as `cmdstan` writes it and
//! ArviZ (`from_cmdstan`) and cmdstanpy (`from_csv`) read it (checked by
//! `bench/cmdstan_check.py`).
//!
//! `--out DIR/NAME.csv` becomes `DIR/NAME_1.csv … DIR/NAME_C.csv`. Each file
//! holds CmdStan's configuration comments (`# model = …`, `# method =
//! sample (Default)`, num_samples, num_warmup, thin, `# id = chain`, the
//! seed), ebm's own configuration as `# ebm.KEY = VALUE` lines, the header
//! `lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,
//! energy__,x.1,…` with 1-based coordinate names in column-major order
//! (`x.1.1, x.2.1, …` for a matrix-shaped point), the adaptation block
//! (step size, inverse mass matrix), the draws, and the timing block.
//! Numbers use Rust's shortest round-trip format, so the values read back
//! are bitwise those of the run.
//!
//! Column mapping: `lp__` = −E, `accept_stat__` = the acceptance
//! probability, `stepsize__` = the chain's adapted step, `treedepth__`,
//! `n_leapfrog__` and `energy__` (the Hamiltonian) as recorded, or where
//! the sampler records none 0, the gradient evaluations per transition and
//! E. The reader maps them back and leaves a column unrecorded when every
//! value equals what the writer puts in an unrecorded one, so a file
//! written from ebm's own format reads back as the same draws.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::run::Draws;

/// The sampler columns CmdStan writes before the model's variables.
pub const COLUMNS: [&str; 7] = [
    "lp__",
    "accept_stat__",
    "stepsize__",
    "treedepth__",
    "n_leapfrog__",
    "divergent__",
    "energy__",
];

/// Stan's default tree-depth limit, stated where the sampler builds no trees
/// (cmdstanpy requires the key; a tree depth of 0 never reaches it).
const DEFAULT_MAX_DEPTH: u32 = 10;

/// The per-chain files of `out` = `DIR/NAME.csv`: `DIR/NAME_1.csv` …
/// `DIR/NAME_{chains}.csv`, as CmdStan names them.
pub fn chain_paths(out: &Path, chains: usize) -> Result<Vec<PathBuf>, String> {
    let ext = out.extension().map(|e| e.to_string_lossy().into_owned());
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned());
    match (ext, stem) {
        (Some(ext), Some(stem)) if ext.eq_ignore_ascii_case("csv") => Ok((1..=chains)
            .map(|c| out.with_file_name(format!("{stem}_{c}.{ext}")))
            .collect()),
        _ => Err(format!(
            "the CmdStan format writes one .csv file per chain: expected DIR/NAME.csv (written as DIR/NAME_1.csv, DIR/NAME_2.csv, …), found `{}`",
            out.display()
        )),
    }
}

/// The shape of one point of `d`: its image shape when that matches `dim`.
fn point_shape(d: &Draws) -> Vec<usize> {
    match &d.image_shape {
        Some(s) if !s.is_empty() && s.iter().product::<usize>() == d.dim => s.clone(),
        _ => vec![d.dim],
    }
}

/// The coordinate columns of a point of `shape`, in CmdStan's order (the
/// first index fastest): each column's name and its row-major offset.
pub fn coord_columns(shape: &[usize]) -> Vec<(String, usize)> {
    let n: usize = shape.iter().product();
    let mut strides = vec![1usize; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    (0..n)
        .map(|k| {
            let (mut rest, mut offset, mut name) = (k, 0, String::from("x"));
            for (&s, &stride) in shape.iter().zip(&strides) {
                let i = rest % s;
                rest /= s;
                offset += i * stride;
                let _ = write!(name, ".{}", i + 1);
            }
            (name, offset)
        })
        .collect()
}

/// A header value of `d` (`key = value` of its configuration).
fn header<'a>(d: &'a Draws, key: &str) -> Option<&'a str> {
    d.header
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The run's settings as CmdStan states them, from the run summary or
/// (for draws read back from a file) the configuration header.
struct Facts {
    sampler: String,
    steps: usize,
    warmup: usize,
    thin: usize,
    seed: Option<String>,
    elapsed: Option<f64>,
}

fn facts(d: &Draws) -> Facts {
    let num = |k: &str| header(d, k).and_then(|v| v.parse::<usize>().ok());
    let (sampler, steps, warmup, thin, seed, elapsed) = match &d.summary {
        Some(s) => (
            s.sampler.clone(),
            Some(s.steps),
            s.warmup,
            s.thin.max(1),
            Some(s.seed.to_string()),
            Some(s.elapsed_s),
        ),
        None => (
            header(d, "sampler").unwrap_or("unknown").to_string(),
            num("steps"),
            num("warmup").unwrap_or(0),
            num("thin").unwrap_or(1).max(1),
            header(d, "seed").map(str::to_string),
            None,
        ),
    };
    // cmdstanpy checks that ⌈num_samples / thin⌉ is the number of draws.
    let draws = d.stored_draws();
    let steps = steps
        .filter(|s| s.div_ceil(thin) == draws)
        .unwrap_or(draws.saturating_mul(thin));
    Facts {
        sampler,
        steps,
        warmup,
        thin,
        seed,
        elapsed,
    }
}

/// The gradient (or energy) evaluations of one transition, written as
/// `n_leapfrog__` where the sampler records none: the leapfrog steps of
/// HMC, one per replica for parallel tempering, one otherwise.
fn default_leapfrog(h: &[(String, String)]) -> u32 {
    let get = |k: &str| h.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    match get("sampler") {
        Some("hmc") => get("leapfrog").and_then(|v| v.parse().ok()).unwrap_or(1),
        Some("pt") => get("ladder").map_or(1, |l| l.split_whitespace().count() as u32),
        _ => 1,
    }
}

/// The tree-depth limit: ebm's own setting where the sampler has one.
fn max_depth(d: &Draws) -> u32 {
    ["max_depth", "max_tree_depth"]
        .iter()
        .find_map(|k| header(d, k).and_then(|v| v.parse().ok()))
        .unwrap_or(DEFAULT_MAX_DEPTH)
}

/// One chain's inverse metric, when the run recorded one of a known layout.
enum Metric<'a> {
    Unit,
    /// Adapted, but the run did not record the values.
    DiagUnknown,
    Diag(&'a [f64]),
    Dense(&'a [f64]),
}

impl Metric<'_> {
    fn name(&self) -> &'static str {
        match self {
            Metric::Unit => "unit_e",
            Metric::Diag(_) | Metric::DiagUnknown => "diag_e",
            Metric::Dense(_) => "dense_e",
        }
    }
}

fn metric(d: &Draws, chain: usize) -> Metric<'_> {
    let recorded = d
        .summary
        .as_ref()
        .and_then(|s| s.chain_inv_metric.get(chain))
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    match recorded.len() {
        n if n == d.dim && n > 0 => Metric::Diag(recorded),
        n if n > 0 && Some(n) == d.dim.checked_mul(d.dim) => Metric::Dense(recorded),
        _ if matches!(header(d, "metric_kind"), Some("diag" | "dense")) => Metric::DiagUnknown,
        _ => Metric::Unit,
    }
}

/// A configuration value on one comment line.
fn one_line(v: &str) -> String {
    v.replace(['\n', '\r'], " ")
}

/// CmdStan's configuration comments for chain `chain` (0-based).
fn config_lines(d: &Draws, chain: usize, file: &str, s: &mut String) {
    let f = facts(d);
    let (algorithm, engine) = match f.sampler.as_str() {
        "hmc" => ("hmc", Some("static")),
        "nuts" => ("hmc", Some("nuts")),
        other => (other, None),
    };
    let model = header(d, "energy").unwrap_or("ebm");
    let engaged = f.warmup > 0 && header(d, "adapt_step") != Some("false");
    let _ = writeln!(s, "# model = {}", one_line(model));
    s.push_str("# method = sample (Default)\n#   sample\n");
    let _ = writeln!(s, "#     num_samples = {}", f.steps);
    let _ = writeln!(s, "#     num_warmup = {}", f.warmup);
    s.push_str("#     save_warmup = false\n");
    let _ = writeln!(s, "#     thin = {}", f.thin);
    let _ = writeln!(s, "#     adapt\n#       engaged = {}", engaged as u8);
    if let Some(t) = header(d, "target_accept") {
        let _ = writeln!(s, "#       delta = {t}");
    }
    let _ = writeln!(s, "#     algorithm = {}", one_line(algorithm));
    let _ = writeln!(s, "#       {}", one_line(algorithm));
    match engine {
        Some("nuts") => {
            let depth = max_depth(d);
            let _ = writeln!(
                s,
                "#         engine = nuts\n#           nuts\n#             max_depth = {depth}"
            );
        }
        Some(e) => {
            let _ = writeln!(
                s,
                "#         engine = {e}\n#         max_depth = {}",
                max_depth(d)
            );
        }
        None => {
            let _ = writeln!(s, "#         max_depth = {}", max_depth(d));
        }
    }
    let _ = writeln!(s, "#         metric = {}", metric(d, chain).name());
    if let Some(step) = header(d, "step") {
        let _ = writeln!(s, "#         stepsize = {step}");
    }
    let _ = writeln!(s, "#     num_chains = {}", d.chains);
    let _ = writeln!(s, "# id = {}", chain + 1);
    if let Some(seed) = &f.seed {
        let _ = writeln!(s, "# random\n#   seed = {seed}");
    }
    let _ = writeln!(s, "# output\n#   file = {}", one_line(file));
}

/// ebm's configuration and run diagnostics as `# ebm.KEY = VALUE` lines
/// (the keys of its own CSV format, read back into `Draws::header`).
fn ebm_lines(d: &Draws, s: &mut String) {
    let summary = d.summary.as_ref().map(|r| r.describe()).unwrap_or_default();
    for (k, v) in d.header.iter().chain(&summary) {
        let _ = writeln!(s, "# ebm.{} = {}", one_line(k), one_line(v));
    }
}

/// `# Adaptation terminated`, the step size and the inverse metric.
fn adaptation_lines(d: &Draws, chain: usize, step: f64, s: &mut String) {
    let _ = writeln!(s, "# Adaptation terminated\n# Step size = {step}");
    let join = |v: &[f64]| {
        let t: Vec<String> = v.iter().map(|x| format!("{x}")).collect();
        t.join(", ")
    };
    match metric(d, chain) {
        Metric::Unit => s.push_str("# No free parameters for unit metric\n"),
        Metric::DiagUnknown => {}
        Metric::Diag(v) => {
            let _ = writeln!(
                s,
                "# Diagonal elements of inverse mass matrix:\n# {}",
                join(v)
            );
        }
        Metric::Dense(v) => {
            s.push_str("# Elements of inverse mass matrix:\n");
            for row in v.chunks(d.dim) {
                let _ = writeln!(s, "# {}", join(row));
            }
        }
    }
}

/// The adapted step size of chain `chain`: the run summary's, or the
/// `step_sizes` list of a header read back from a file.
fn chain_step(d: &Draws, chain: usize) -> f64 {
    match &d.summary {
        Some(s) => s.chain_step.get(chain).copied(),
        None => header(d, "step_sizes")
            .and_then(|v| v.split_whitespace().nth(chain))
            .and_then(|v| v.parse().ok()),
    }
    .unwrap_or(f64::NAN)
}

/// The draws of chain `chain`, one row each (from memory or the spill).
fn draw_rows(d: &Draws, chain: usize, step: f64, w: &mut dyn std::io::Write) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot write the draws: {e}");
    let cols = coord_columns(&point_shape(d));
    let leapfrog = default_leapfrog(&d.header);
    super::io::each_row(d, chain..chain + 1, |_, _, r| {
        let c = r.cols;
        let h = c.hamiltonian.unwrap_or(c.energy);
        let n = c.n_leapfrog.unwrap_or(leapfrog);
        let depth = c.tree_depth.unwrap_or(0);
        write!(
            w,
            "{},{},{step},{depth},{n},{},{h}",
            -c.energy, c.accept, c.divergent as u8
        )
        .map_err(failed)?;
        for (_, off) in &cols {
            write!(w, ",{}", r.x[*off]).map_err(failed)?;
        }
        w.write_all(b"\n").map_err(failed)
    })
}

/// The timing block: the run's wall time (its chains run in parallel, and
/// warm-up is not timed apart from sampling).
fn timing_lines(d: &Draws, s: &mut String) {
    s.push_str("# \n");
    if let Some(t) = facts(d).elapsed {
        let _ = writeln!(s, "#  Elapsed Time: {t:.3} seconds (Total)\n# ");
    }
}

/// The CmdStan CSV text of chain `chain` (0-based) of `d`, to be written as
/// the file named `file`.
pub fn to_cmdstan(d: &Draws, chain: usize, file: &str) -> String {
    let mut out = Vec::new();
    // invariant: writing into a Vec cannot fail, and every piece is UTF-8.
    write_cmdstan_to(&mut out, d, chain, file).expect("writing to memory");
    String::from_utf8(out).expect("CSV text is UTF-8")
}

/// Streams chain `chain`'s CmdStan CSV text into `w`.
fn write_cmdstan_to(
    w: &mut dyn std::io::Write,
    d: &Draws,
    chain: usize,
    file: &str,
) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot write the draws: {e}");
    let mut s = String::with_capacity(2048);
    config_lines(d, chain, file, &mut s);
    ebm_lines(d, &mut s);
    s.push_str(&COLUMNS.join(","));
    for (name, _) in coord_columns(&point_shape(d)) {
        s.push(',');
        s.push_str(&name);
    }
    s.push('\n');
    let step = chain_step(d, chain);
    adaptation_lines(d, chain, step, &mut s);
    w.write_all(s.as_bytes()).map_err(failed)?;
    draw_rows(d, chain, step, w)?;
    let mut tail = String::new();
    timing_lines(d, &mut tail);
    w.write_all(tail.as_bytes()).map_err(failed)
}

/// Writes every chain of `d` as `DIR/NAME_c.csv` (each file atomically,
/// streamed); returns the files written.
pub fn write_cmdstan(out: &Path, d: &Draws) -> Result<Vec<PathBuf>, String> {
    let paths = chain_paths(out, d.chains)?;
    for (c, p) in paths.iter().enumerate() {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.as_deref().unwrap_or_default();
        crate::data::atomic::write_streamed(p, |w| write_cmdstan_to(w, d, c, name))?;
    }
    Ok(paths)
}

mod read;
pub use read::{Chain, combine, is_cmdstan_header, parse_cmdstan};

#[cfg(test)]
mod tests;
