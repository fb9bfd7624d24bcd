//! CmdStan's output CSV: one file per chain, as `cmdstan` writes it and
//! ArviZ (`from_cmdstan`), cmdstanpy (`from_csv`) and `stansummary` read it.
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
    (0..n)
        .map(|k| {
            let (mut rest, mut offset, mut name) = (k, 0, String::from("x"));
            let mut idx = Vec::with_capacity(shape.len());
            for &s in shape {
                idx.push(rest % s);
                rest /= s;
            }
            for (a, &i) in idx.iter().enumerate() {
                let stride: usize = shape[a + 1..].iter().product();
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
    let steps = steps
        .filter(|s| s.div_ceil(thin) == d.draws)
        .unwrap_or(d.draws.saturating_mul(thin));
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
        _ if header(d, "adapt_mass") == Some("true") => Metric::DiagUnknown,
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

/// The draws of chain `chain`, one row each.
fn draw_rows(d: &Draws, chain: usize, step: f64, s: &mut String) {
    let cols = coord_columns(&point_shape(d));
    let leapfrog = default_leapfrog(&d.header);
    for k in 0..d.draws {
        let o = chain * d.draws + k;
        let e = d.energy[o];
        let _ = write!(
            s,
            "{},{},{step},{},{},{},{}",
            -e,
            d.accept[o],
            d.tree_depth.get(o).copied().unwrap_or(0),
            d.n_leapfrog.get(o).copied().unwrap_or(leapfrog),
            d.divergent[o] as u8,
            d.hamiltonian.get(o).copied().unwrap_or(e)
        );
        let p = d.point(chain, k);
        for (_, off) in &cols {
            let _ = write!(s, ",{}", p[*off]);
        }
        s.push('\n');
    }
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
    let mut s = String::with_capacity(2048 + d.draws * (d.dim + 7) * 20);
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
    draw_rows(d, chain, step, &mut s);
    timing_lines(d, &mut s);
    s
}

/// Writes every chain of `d` as `DIR/NAME_c.csv` (each file atomically);
/// returns the files written.
pub fn write_cmdstan(out: &Path, d: &Draws) -> Result<Vec<PathBuf>, String> {
    let paths = chain_paths(out, d.chains)?;
    for (c, p) in paths.iter().enumerate() {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let text = to_cmdstan(d, c, name.as_deref().unwrap_or_default());
        super::io::write_atomic(p, text.as_bytes())?;
    }
    Ok(paths)
}

// ----- reading -----

/// Whether the column header `line` is CmdStan's (sampler columns ending in
/// `__`, starting with `lp__`, no `chain__`) rather than ebm's own.
pub fn is_cmdstan_header(line: &str) -> bool {
    let cols: Vec<&str> = line.split(',').map(str::trim).collect();
    cols.first() == Some(&"lp__") && !cols.contains(&"chain__")
}

/// The 0-based multi-index of a coordinate column `x.i.j…` (1-based).
fn coord_index(name: &str) -> Option<Vec<usize>> {
    let rest = name.strip_prefix("x.")?;
    rest.split('.')
        .map(|p| match p.parse::<usize>() {
            Ok(i) if i >= 1 && p.bytes().all(|b| b.is_ascii_digit()) => Some(i - 1),
            _ => None,
        })
        .collect()
}

/// Where each column of a CmdStan header goes.
#[derive(Debug)]
struct Layout {
    names: Vec<String>,
    lp: usize,
    accept: Option<usize>,
    divergent: Option<usize>,
    hamiltonian: Option<usize>,
    leapfrog: Option<usize>,
    depth: Option<usize>,
    /// (column, row-major offset in the point) per coordinate.
    coords: Vec<(usize, usize)>,
    shape: Vec<usize>,
}

fn layout(line: &str) -> Result<Layout, String> {
    let names: Vec<String> = line.split(',').map(|c| c.trim().to_string()).collect();
    let find = |n: &str| names.iter().position(|c| c == n);
    let lp = find("lp__").ok_or("the header has no lp__ column")?;
    let mut idx = Vec::new();
    for (i, n) in names.iter().enumerate().filter(|(_, n)| !n.ends_with("__")) {
        let ix = coord_index(n).ok_or_else(|| {
            format!(
                "column `{n}` is not a coordinate of x (expected x.1, x.2, … or x.1.1, x.2.1, …)"
            )
        })?;
        idx.push((i, ix));
    }
    let (shape, coords) = coord_layout(&idx)?;
    Ok(Layout {
        lp,
        accept: find("accept_stat__"),
        divergent: find("divergent__"),
        hamiltonian: find("energy__"),
        leapfrog: find("n_leapfrog__"),
        depth: find("treedepth__"),
        coords,
        shape,
        names,
    })
}

/// The point's shape from the coordinate columns' indices, and each
/// column's row-major offset; every index of the shape must appear once.
fn coord_layout(idx: &[(usize, Vec<usize>)]) -> Result<(Vec<usize>, Vec<(usize, usize)>), String> {
    let n = idx.len();
    let Some((_, first)) = idx.first() else {
        return Err("the header has no coordinate columns x.1, x.2, …".into());
    };
    let mut shape = vec![0usize; first.len()];
    for (_, ix) in idx {
        if ix.len() != shape.len() {
            return Err("the coordinate columns have different numbers of indices".into());
        }
        for (s, &i) in shape.iter_mut().zip(ix) {
            // An index past the column count cannot belong to a full array
            // (and is refused before any product could overflow).
            if i >= n {
                return Err(format!(
                    "{n} coordinate columns cannot hold index {}",
                    i + 1
                ));
            }
            *s = (*s).max(i + 1);
        }
    }
    let total = shape.iter().try_fold(1usize, |a, &s| a.checked_mul(s));
    if total != Some(n) {
        return Err(format!(
            "the coordinate columns do not form a full array: {n} columns for shape {shape:?}"
        ));
    }
    let mut seen = vec![false; n];
    let mut coords = Vec::with_capacity(n);
    for (col, ix) in idx {
        let off = ix
            .iter()
            .enumerate()
            .map(|(a, &i)| i * shape[a + 1..].iter().product::<usize>())
            .sum::<usize>();
        if std::mem::replace(&mut seen[off], true) {
            return Err(format!("coordinate {} appears twice", coord_name(ix)));
        }
        coords.push((*col, off));
    }
    Ok((shape, coords))
}

fn coord_name(ix: &[usize]) -> String {
    let parts: Vec<String> = ix.iter().map(|i| (i + 1).to_string()).collect();
    format!("x.{}", parts.join("."))
}

/// One chain read from a CmdStan file.
#[derive(Debug)]
pub struct Chain {
    /// The column names, in order.
    pub columns: Vec<String>,
    pub shape: Vec<usize>,
    /// CmdStan's `key = value` configuration (`(Default)` removed).
    pub config: Vec<(String, String)>,
    pub draws: usize,
    x: Vec<f64>,
    energy: Vec<f64>,
    accept: Vec<f64>,
    divergent: Vec<bool>,
    hamiltonian: Vec<f64>,
    n_leapfrog: Vec<u32>,
    tree_depth: Vec<u32>,
}

impl Chain {
    /// A configuration value (the first with that key).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.config
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// ebm's own configuration (`# ebm.KEY = VALUE`), or for a file another
    /// program wrote, the sampler CmdStan names.
    fn ebm_header(&self) -> Vec<(String, String)> {
        let own: Vec<(String, String)> = self
            .config
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("ebm.")?.to_string(), v.clone())))
            .collect();
        if !own.is_empty() {
            return own;
        }
        let sampler = self.get("engine").or(self.get("algorithm"));
        sampler
            .map(|s| vec![("sampler".to_string(), s.to_string())])
            .unwrap_or_default()
    }
}

/// A `# key = value` comment, `(Default)` removed.
fn comment_pair(c: &str) -> Option<(String, String)> {
    let (k, v) = c.split_once('=')?;
    let v = v.trim();
    let v = v.strip_suffix("(Default)").unwrap_or(v).trim();
    Some((k.trim().to_string(), v.to_string()))
}

/// Parses one CmdStan CSV file (one chain). Draws written before
/// `# Adaptation terminated` (CmdStan's `save_warmup`) are warm-up and left out.
pub fn parse_cmdstan(text: &str) -> Result<Chain, String> {
    let mut config = Vec::new();
    let mut lines = text.lines().enumerate();
    let lay = loop {
        let (ln, line) = lines.next().ok_or("no header row")?;
        if let Some(c) = line.strip_prefix('#') {
            config.extend(comment_pair(c));
        } else if !line.trim().is_empty() {
            break layout(line).map_err(|e| format!("line {}: {e}", ln + 1))?;
        }
    };
    let mut ch = Chain {
        columns: lay.names.clone(),
        shape: lay.shape.clone(),
        config,
        draws: 0,
        x: Vec::new(),
        energy: Vec::new(),
        accept: Vec::new(),
        divergent: Vec::new(),
        hamiltonian: Vec::new(),
        n_leapfrog: Vec::new(),
        tree_depth: Vec::new(),
    };
    for (ln, line) in lines {
        match line.strip_prefix('#') {
            Some(c) if c.trim() == "Adaptation terminated" => ch.clear_draws(),
            Some(_) => {}
            None if line.trim().is_empty() => {}
            None => ch
                .push_row(&lay, line)
                .map_err(|e| format!("line {}: {e}", ln + 1))?,
        }
    }
    Ok(ch)
}

impl Chain {
    fn clear_draws(&mut self) {
        self.draws = 0;
        self.x.clear();
        self.energy.clear();
        self.accept.clear();
        self.divergent.clear();
        self.hamiltonian.clear();
        self.n_leapfrog.clear();
        self.tree_depth.clear();
    }

    fn push_row(&mut self, lay: &Layout, line: &str) -> Result<(), String> {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != lay.names.len() {
            return Err(format!(
                "expected {} fields, found {}",
                lay.names.len(),
                f.len()
            ));
        }
        let num = |i: usize| -> Result<f64, String> {
            f[i].parse::<f64>()
                .map_err(|_| format!("`{}` is not a number", f[i]))
        };
        let count = |i: usize| -> Result<u32, String> {
            let v = num(i)?;
            if v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
                Ok(v as u32)
            } else {
                Err(format!(
                    "{} must be a whole number ≥ 0, found `{}`",
                    lay.names[i], f[i]
                ))
            }
        };
        let e = -num(lay.lp)?;
        let mut point = vec![0.0; lay.coords.len()];
        for &(col, off) in &lay.coords {
            point[off] = num(col)?;
        }
        self.x.extend_from_slice(&point);
        self.energy.push(e);
        self.accept.push(lay.accept.map_or(Ok(f64::NAN), num)?);
        self.divergent
            .push(lay.divergent.map_or(Ok(0.0), num)? != 0.0);
        // Absent Hamiltonian columns stay empty (unrecorded).
        if let Some(i) = lay.hamiltonian {
            self.hamiltonian.push(num(i)?);
        }
        if let Some(i) = lay.leapfrog {
            self.n_leapfrog.push(count(i)?);
        }
        if let Some(i) = lay.depth {
            self.tree_depth.push(count(i)?);
        }
        self.draws += 1;
        Ok(())
    }
}

/// Chains read from CmdStan files (`(file name, chain)`, in chain order) as
/// one set of draws. Every file must have the same columns and draw count;
/// an error names the first file that differs.
pub fn combine(files: Vec<(String, Chain)>) -> Result<Draws, String> {
    let Some((first_name, first)) = files.first() else {
        return Err("no sample files".into());
    };
    for (name, ch) in &files[1..] {
        check_same(first_name, first, name, ch)?;
    }
    let (draws, shape) = (first.draws, first.shape.clone());
    let header = first.ebm_header();
    let mut d = Draws::empty(0, draws, shape.iter().product());
    d.chains = files.len();
    for (_, ch) in files {
        d.x.extend(ch.x);
        d.energy.extend(ch.energy);
        d.accept.extend(ch.accept);
        d.divergent.extend(ch.divergent);
        d.hamiltonian.extend(ch.hamiltonian);
        d.n_leapfrog.extend(ch.n_leapfrog);
        d.tree_depth.extend(ch.tree_depth);
    }
    drop_unrecorded(&mut d, &header);
    d.image_shape = match shape.len() {
        1 => None,
        _ => Some(shape),
    };
    d.header = header;
    Ok(d)
}

fn check_same(first_name: &str, first: &Chain, name: &str, ch: &Chain) -> Result<(), String> {
    if ch.columns != first.columns {
        let at = first
            .columns
            .iter()
            .zip(&ch.columns)
            .position(|(a, b)| a != b);
        let why = match at {
            Some(i) => format!(
                "column {} is `{}` where {first_name} has `{}`",
                i + 1,
                ch.columns[i],
                first.columns[i]
            ),
            None => format!(
                "{} columns where {first_name} has {}",
                ch.columns.len(),
                first.columns.len()
            ),
        };
        return Err(format!(
            "{name}: its columns differ from {first_name}'s ({why})"
        ));
    }
    if ch.draws != first.draws {
        return Err(format!(
            "{name}: {} draws, but {first_name} has {}: the chains of one sample have equal lengths",
            ch.draws, first.draws
        ));
    }
    Ok(())
}

/// Empties the Hamiltonian columns that hold exactly what the writer puts
/// where the sampler recorded none (E, the default evaluation count, 0).
fn drop_unrecorded(d: &mut Draws, header: &[(String, String)]) {
    let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
    if d.hamiltonian
        .iter()
        .zip(&d.energy)
        .all(|(h, e)| same(*h, *e))
    {
        d.hamiltonian.clear();
    }
    let leapfrog = default_leapfrog(header);
    if d.n_leapfrog.iter().all(|n| *n == leapfrog) {
        d.n_leapfrog.clear();
    }
    if d.tree_depth.iter().all(|t| *t == 0) {
        d.tree_depth.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(shape: &[usize]) -> Draws {
        let dim = shape.iter().product();
        let mut d = Draws::empty(2, 3, dim);
        for (i, v) in d.x.iter_mut().enumerate() {
            *v = (i as f64 * 0.37).sin() / 3.0;
        }
        d.energy = vec![0.1, 0.2, 0.3, 1e-300, -2.5, 7.0];
        d.accept = vec![1.0, 0.5, 0.25, 0.0, 1.0, 0.125];
        d.divergent[3] = true;
        d.header = vec![("sampler".into(), "mala".into())];
        d.image_shape = (shape.len() > 1).then(|| shape.to_vec());
        d
    }

    /// The summary of a short two-chain run.
    fn summary_of_a_run() -> crate::sample::RunSummary {
        let g = crate::sample::targets::Gaussian::iid(2, 1.0);
        let run = crate::sample::RunConfig::new(2, 10, 3, 1);
        let cfg = crate::sample::SamplerConfig::mala(0.1);
        crate::sample::run_chains(&g, &cfg, &run)
            .unwrap()
            .summary
            .unwrap()
    }

    /// Every chain's file, parsed and combined back.
    fn round_trip(d: &Draws) -> Draws {
        let files = (0..d.chains)
            .map(|c| {
                let text = to_cmdstan(d, c, "t.csv");
                (format!("t_{}.csv", c + 1), parse_cmdstan(&text).unwrap())
            })
            .collect();
        combine(files).unwrap()
    }

    fn same_draws(a: &Draws, b: &Draws) {
        assert_eq!((a.chains, a.draws, a.dim), (b.chains, b.draws, b.dim));
        assert_eq!(a.x, b.x);
        assert_eq!(a.energy, b.energy);
        assert_eq!(a.accept, b.accept);
        assert_eq!(a.divergent, b.divergent);
        assert_eq!(a.hamiltonian, b.hamiltonian);
        assert_eq!(a.n_leapfrog, b.n_leapfrog);
        assert_eq!(a.tree_depth, b.tree_depth);
        assert_eq!(a.image_shape, b.image_shape);
        assert_eq!(a.header, b.header);
    }

    #[test]
    fn round_trip_is_exact_with_one_based_names() {
        let d = toy(&[2]);
        let text = to_cmdstan(&d, 1, "t_2.csv");
        let head =
            "lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__,x.1,x.2\n";
        assert!(text.contains(head), "{text}");
        // Chain 2's first draw: lp__ = −E, no tree, one evaluation, divergent, energy__ = E.
        let row = format!(
            "\n{},0,NaN,0,1,1,{},{},{}\n",
            -1e-300, 1e-300, d.x[6], d.x[7]
        );
        assert!(text.contains(&row), "{text}");
        assert!(text.contains("# id = 2\n") && text.contains("#     num_chains = 2\n"));
        assert!(text.contains("# ebm.sampler = mala\n"));
        same_draws(&round_trip(&d), &d);
    }

    /// A matrix-shaped point is written column-major (first index fastest),
    /// as CmdStan writes a matrix, and read back row-major.
    #[test]
    fn matrix_points_are_column_major() {
        let d = toy(&[2, 3]);
        let text = to_cmdstan(&d, 0, "t_1.csv");
        assert!(text.contains("energy__,x.1.1,x.2.1,x.1.2,x.2.2,x.1.3,x.2.3\n"));
        let cols = coord_columns(&[2, 3]);
        assert_eq!(cols[1], ("x.2.1".to_string(), 3));
        assert_eq!(cols[2], ("x.1.2".to_string(), 1));
        let back = round_trip(&d);
        assert_eq!(back.image_shape, Some(vec![2, 3]));
        same_draws(&back, &d);
        let c3 = coord_columns(&[2, 1, 2]);
        let names: Vec<&str> = c3.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["x.1.1.1", "x.2.1.1", "x.1.1.2", "x.2.1.2"]);
        assert_eq!(c3.iter().map(|c| c.1).collect::<Vec<_>>(), [0, 2, 1, 3]);
    }

    /// Recorded Hamiltonian columns come back; unrecorded ones stay empty.
    #[test]
    fn hamiltonian_columns_round_trip() {
        let mut d = toy(&[2]);
        d.header = vec![
            ("sampler".into(), "hmc".into()),
            ("leapfrog".into(), "7".into()),
        ];
        assert!(
            to_cmdstan(&d, 0, "t").contains(",0,7,0,"),
            "HMC writes its leapfrog count"
        );
        same_draws(&round_trip(&d), &d);
        d.hamiltonian = vec![1.5, 2.5, 3.5, 4.5, 5.5, 6.5];
        d.n_leapfrog = vec![3, 7, 15, 1, 2, 31];
        d.tree_depth = vec![2, 3, 4, 1, 1, 5];
        same_draws(&round_trip(&d), &d);
    }

    #[test]
    fn inverse_metric_blocks() {
        let mut d = toy(&[2]);
        d.header.push(("adapt_mass".into(), "true".into()));
        let text = to_cmdstan(&d, 0, "t");
        assert!(text.contains("metric = diag_e\n") && !text.contains("Diagonal elements"));
        let base = summary_of_a_run();
        d.summary = Some(base.clone());
        d.summary.as_mut().unwrap().chain_inv_metric = vec![vec![0.5, 2.0]; 2];
        let text = to_cmdstan(&d, 1, "t");
        assert!(text.contains("metric = diag_e\n"), "{text}");
        assert!(text.contains("# Diagonal elements of inverse mass matrix:\n# 0.5, 2\n"));
        d.summary.as_mut().unwrap().chain_inv_metric = vec![vec![1.0, 0.25, 0.25, 3.0]; 2];
        let text = to_cmdstan(&d, 0, "t");
        assert!(text.contains("metric = dense_e\n"));
        assert!(text.contains("# Elements of inverse mass matrix:\n# 1, 0.25\n# 0.25, 3\n"));
        d.summary = Some(base);
        d.header.pop();
        let text = to_cmdstan(&d, 0, "t");
        assert!(
            text.contains("metric = unit_e\n")
                && text.contains("# No free parameters for unit metric\n")
        );
    }

    /// Malformed files are errors naming the line, never a panic.
    #[test]
    fn malformed_files_are_errors() {
        let head = "lp__,accept_stat__,n_leapfrog__";
        for (text, expect) in [
            ("", "no header row"),
            ("# only comments\n", "no header row"),
            ("accept_stat__,x.1\n", "line 1: the header has no lp__"),
            (
                "lp__,theta\n",
                "line 1: column `theta` is not a coordinate of x",
            ),
            ("lp__,x.0\n", "line 1: column `x.0` is not a coordinate"),
            ("lp__,x\n", "line 1: column `x` is not a coordinate"),
            (
                "lp__,x.1.+1\n",
                "line 1: column `x.1.+1` is not a coordinate",
            ),
            ("lp__\n", "line 1: the header has no coordinate columns"),
            (
                "#c\nlp__,x.1,x.3\n",
                "line 2: 2 coordinate columns cannot hold index 3",
            ),
            (
                "lp__,x.1,x.99999999999999999999999\n",
                "line 1: column `x.99999999999999999999999`",
            ),
            (
                "lp__,x.1.1,x.1.1,x.2.1,x.2.2\n",
                "line 1: coordinate x.1.1 appears twice",
            ),
            (
                "lp__,x.1,x.1.2\n",
                "line 1: the coordinate columns have different numbers",
            ),
            (
                "lp__,x.1.1,x.2.2\n",
                "line 1: the coordinate columns do not form a full array",
            ),
            ("lp__,x.1\n1,2,3\n", "line 2: expected 2 fields, found 3"),
            ("lp__,x.1\n1,two\n", "line 2: `two` is not a number"),
            (
                &format!("{head},x.1\n1,1,-1,0\n"),
                "line 2: n_leapfrog__ must be a whole number",
            ),
            (
                &format!("{head},x.1\n1,1,1.5,0\n"),
                "line 2: n_leapfrog__ must be a whole number",
            ),
            (
                &format!("{head},x.1\n1,1,1e300,0\n"),
                "line 2: n_leapfrog__ must be a whole number",
            ),
        ] {
            let err = parse_cmdstan(text).unwrap_err();
            assert!(err.starts_with(expect), "{text:?}: {err}");
        }
    }

    /// Warm-up draws (before `# Adaptation terminated`) are left out; a
    /// file another program wrote names its sampler.
    #[test]
    fn saved_warmup_is_skipped() {
        let text = "# algorithm = hmc (Default)\n# engine = nuts (Default)\nlp__,x.1\n-1,5\n-2,6\n# Adaptation terminated\n# Step size = 0.5\n-3,7\n# \n#  Elapsed Time: 0.1 seconds (Total)\n";
        let ch = parse_cmdstan(text).unwrap();
        assert_eq!(ch.get("algorithm"), Some("hmc"));
        let d = combine(vec![("a.csv".into(), ch)]).unwrap();
        assert_eq!((d.chains, d.draws, d.dim), (1, 1, 1));
        assert_eq!((d.x[0], d.energy[0]), (7.0, 3.0));
        assert!(d.accept[0].is_nan());
        assert_eq!(d.header, vec![("sampler".to_string(), "nuts".to_string())]);
    }

    #[test]
    fn mismatched_files_are_refused_by_name() {
        let a = "lp__,x.1,x.2\n1,2,3\n";
        let parse = |t: &str| parse_cmdstan(t).unwrap();
        let err = combine(vec![
            ("a_1.csv".into(), parse(a)),
            ("a_2.csv".into(), parse("lp__,x.1,x.3,x.2\n1,2,3,4\n")),
        ])
        .unwrap_err();
        assert!(
            err.starts_with("a_2.csv: its columns differ from a_1.csv's (column 3 is `x.3`"),
            "{err}"
        );
        let err = combine(vec![
            ("a_1.csv".into(), parse(a)),
            ("a_2.csv".into(), parse("lp__,x.1\n1,2\n")),
        ])
        .unwrap_err();
        assert!(err.contains("(2 columns where a_1.csv has 3)"), "{err}");
        let err = combine(vec![
            ("a_1.csv".into(), parse(a)),
            ("a_2.csv".into(), parse("lp__,x.1,x.2\n1,2,3\n4,5,6\n")),
        ])
        .unwrap_err();
        assert!(
            err.starts_with("a_2.csv: 2 draws, but a_1.csv has 1"),
            "{err}"
        );
    }

    #[test]
    fn chain_paths_follow_cmdstan() {
        let p = chain_paths(Path::new("out/draws.csv"), 3).unwrap();
        assert_eq!(p[2], Path::new("out/draws_3.csv"));
        assert!(
            chain_paths(Path::new("out/draws.npy"), 3)
                .unwrap_err()
                .contains("expected DIR/NAME.csv")
        );
        assert!(chain_paths(Path::new("out/draws"), 3).is_err());
    }
}
