//! Reading CmdStan's CSV: one file is one chain; [`combine`] makes one
//! sample of several, refusing files whose columns or draw counts differ.
//! Every malformed input is an error naming the line, never a panic, and no
//! allocation is sized by a number the file states.

use super::default_leapfrog;
use crate::sample::run::Draws;

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
    coords: Coords,
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
/// (column, row-major offset in the point) per coordinate.
type Coords = Vec<(usize, usize)>;

fn coord_layout(idx: &[(usize, Vec<usize>)]) -> Result<(Vec<usize>, Coords), String> {
    let shape = shape_of(idx)?;
    let n = idx.len();
    // Row-major strides, computed once: the work stays linear in the header.
    let mut strides = vec![1usize; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let mut seen = vec![false; n];
    let mut coords = Vec::with_capacity(n);
    for (col, ix) in idx {
        let off: usize = ix.iter().zip(&strides).map(|(i, s)| i * s).sum();
        if std::mem::replace(&mut seen[off], true) {
            return Err(format!("coordinate {} appears twice", coord_name(ix)));
        }
        coords.push((*col, off));
    }
    Ok((shape, coords))
}

/// The most indices a coordinate column may have.
const MAX_RANK: usize = 32;

/// The point's shape: the largest index on each axis, which must give
/// exactly as many entries as there are coordinate columns.
fn shape_of(idx: &[(usize, Vec<usize>)]) -> Result<Vec<usize>, String> {
    let n = idx.len();
    let Some((_, first)) = idx.first() else {
        return Err("the header has no coordinate columns x.1, x.2, …".into());
    };
    if first.len() > MAX_RANK {
        return Err(format!(
            "coordinate columns have at most {MAX_RANK} indices"
        ));
    }
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
    Ok(shape)
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
