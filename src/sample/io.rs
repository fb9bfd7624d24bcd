//! Sample files: Stan-CSV-style text and NPY (through `data::npy`), written
//! atomically.
//!
//! CSV layout ([`Format::Ebm`], the default): `# key = value` comment lines
//! holding the configuration and the run summary, then a header row
//! `chain__,draw__,energy__,accept__,divergent__,x.0,x.1,…` and one row per
//! kept draw, chain-major. Numbers use Rust's shortest round-trip format, so
//! reading a file back gives bitwise the same values. [`Format::CmdStan`]
//! writes one file per chain in CmdStan's layout ([`super::cmdstan`]); the
//! readers take either, from one file, several, or the `NAME.csv` base of
//! `NAME_1.csv …`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::cmdstan;
use super::run::Draws;
pub use super::spill::{Columns, Row};

/// The CSV layouts ebm writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// One file, every chain, with `chain__` and `draw__` columns.
    #[default]
    Ebm,
    /// CmdStan's: one file per chain, `NAME_1.csv …`.
    CmdStan,
}

impl Format {
    /// The names `--format` and `save(.., format = ..)` take.
    pub const NAMES: [&'static str; 2] = ["ebm", "cmdstan"];
    pub fn named(name: &str) -> Option<Format> {
        match name {
            "ebm" => Some(Format::Ebm),
            "cmdstan" => Some(Format::CmdStan),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Format::Ebm => "ebm",
            Format::CmdStan => "cmdstan",
        }
    }
}

/// The most per-chain files one sample is read from.
pub const MAX_CHAIN_FILES: usize = 100_000;

/// The largest `chain__`/`draw__` a sample file may hold (2^53: every
/// index an f64 column represents exactly).
const MAX_INDEX: f64 = 9_007_199_254_740_992.0;

pub use crate::data::atomic::write_atomic;

pub const SAMPLER_COLUMNS: [&str; 5] = ["chain__", "draw__", "energy__", "accept__", "divergent__"];

/// The CSV text of `d`.
pub fn to_csv(d: &Draws) -> String {
    let mut out = Vec::with_capacity(64 + d.x.len() * 20);
    // invariant: writing into a Vec cannot fail, and every piece is UTF-8.
    write_csv_to(&mut out, d).expect("writing to memory");
    String::from_utf8(out).expect("CSV text is UTF-8")
}

/// Streams the CSV text of `d` (every stored draw, from memory or the
/// spill) into `w`.
fn write_csv_to(w: &mut dyn Write, d: &Draws) -> Result<(), String> {
    let failed = |e: std::io::Error| format!("cannot write the draws: {e}");
    let mut head = String::from("# ebm sample\n");
    for (k, v) in &d.header {
        let _ = writeln!(head, "# {k} = {v}");
    }
    if let Some(sum) = &d.summary {
        for (k, v) in sum.describe() {
            let _ = writeln!(head, "# {k} = {v}");
        }
    }
    head.push_str(&SAMPLER_COLUMNS.join(","));
    for n in d.coord_names() {
        head.push(',');
        head.push_str(&n);
    }
    head.push('\n');
    w.write_all(head.as_bytes()).map_err(failed)?;
    each_row(d, 0..d.chains, |c, k, r| {
        let cols = r.cols;
        write!(
            w,
            "{c},{k},{},{},{}",
            cols.energy, cols.accept, cols.divergent as u8
        )
        .map_err(failed)?;
        for v in r.x {
            write!(w, ",{v}").map_err(failed)?;
        }
        w.write_all(b"\n").map_err(failed)
    })
}

/// Visits every stored draw of `chains`, chain-major: from memory, or for a
/// streamed run from its spill files.
pub fn each_row(
    d: &Draws,
    chains: std::ops::Range<usize>,
    mut f: impl FnMut(usize, usize, Row<'_>) -> Result<(), String>,
) -> Result<(), String> {
    if let Some(spill) = &d.spill {
        return spill.each_row(chains, f);
    }
    for c in chains {
        for k in 0..d.draws {
            let o = c * d.draws + k;
            let cols = Columns {
                energy: d.energy[o],
                accept: d.accept[o],
                divergent: d.divergent[o],
                hamiltonian: d.hamiltonian.get(o).copied(),
                n_leapfrog: d.n_leapfrog.get(o).copied(),
                tree_depth: d.tree_depth.get(o).copied(),
            };
            f(
                c,
                k,
                Row {
                    x: d.point(c, k),
                    cols,
                },
            )?;
        }
    }
    Ok(())
}

pub fn write_csv(path: &Path, d: &Draws) -> Result<(), String> {
    crate::data::atomic::write_streamed(path, |w| write_csv_to(w, d))
}

/// The files a CSV sample of `chains` chains is written to: `path` itself,
/// or for CmdStan its per-chain files (an error when `path` is no `.csv`).
pub fn csv_paths(path: &Path, chains: usize, format: Format) -> Result<Vec<PathBuf>, String> {
    match format {
        Format::Ebm => Ok(vec![path.to_path_buf()]),
        Format::CmdStan => cmdstan::chain_paths(path, chains),
    }
}

/// Writes `d` as CSV in `format`; returns the files written.
pub fn write_csv_as(path: &Path, d: &Draws, format: Format) -> Result<Vec<PathBuf>, String> {
    match format {
        Format::Ebm => write_csv(path, d).map(|()| vec![path.to_path_buf()]),
        Format::CmdStan => cmdstan::write_cmdstan(path, d),
    }
}

/// "a.csv", or "a_1.csv … a_4.csv (4 files, one per chain)".
pub fn describe_files(paths: &[PathBuf]) -> String {
    match paths {
        [] => "no files".into(),
        [one] => one.display().to_string(),
        [first, .., last] => format!(
            "{} … {} ({} files, one per chain)",
            first.display(),
            last.display(),
            paths.len()
        ),
    }
}

/// Parse the CSV text written by [`to_csv`] (header comments are kept in
/// `Draws::header`; the run summary is not reconstructed).
pub fn parse_csv(text: &str) -> Result<Draws, String> {
    let mut header = Vec::new();
    let mut lines = text.lines().enumerate();
    let cols: Vec<&str> = loop {
        let (_, line) = lines.next().ok_or("no header row")?;
        if let Some(c) = line.strip_prefix('#') {
            if let Some((k, v)) = c.split_once('=') {
                header.push((k.trim().to_string(), v.trim().to_string()));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        break line.split(',').map(str::trim).collect();
    };
    let find = |n: &str| cols.iter().position(|c| *c == n);
    let ci = find("chain__").ok_or("missing column chain__")?;
    let di = find("draw__");
    let ei = find("energy__");
    let ai = find("accept__");
    let vi = find("divergent__");
    let coords: Vec<usize> = (0..cols.len())
        .filter(|&i| !cols[i].ends_with("__"))
        .collect();
    let dim = coords.len();
    // Rows grouped by chain, in order of appearance.
    struct Row {
        chain: usize,
        draw: usize,
        e: f64,
        a: f64,
        div: bool,
        x: Vec<f64>,
    }
    let mut rows = Vec::new();
    for (ln, line) in lines {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != cols.len() {
            return Err(format!(
                "line {}: expected {} fields, found {}",
                ln + 1,
                cols.len(),
                f.len()
            ));
        }
        let num = |i: usize| -> Result<f64, String> {
            f[i].trim()
                .parse::<f64>()
                .map_err(|_| format!("line {}: `{}` is not a number", ln + 1, f[i]))
        };
        // chain__ and draw__ are indices: whole numbers ≥ 0, never cast
        // from whatever float the file holds.
        let index = |i: usize, name: &str| -> Result<usize, String> {
            let v = num(i)?;
            if v >= 0.0 && v.fract() == 0.0 && v <= MAX_INDEX {
                Ok(v as usize)
            } else {
                Err(format!(
                    "line {}: {name} must be a whole number from 0 to {MAX_INDEX}, found `{}`",
                    ln + 1,
                    f[i].trim()
                ))
            }
        };
        let chain = index(ci, "chain__")?;
        rows.push(Row {
            chain,
            draw: match di {
                Some(i) => index(i, "draw__")?,
                None => rows.len(),
            },
            e: ei.map_or(Ok(f64::NAN), num)?,
            a: ai.map_or(Ok(f64::NAN), num)?,
            div: vi.map_or(Ok(0.0), num)? != 0.0,
            x: coords.iter().map(|&i| num(i)).collect::<Result<_, _>>()?,
        });
    }
    let chains = rows.iter().map(|r| r.chain + 1).max().unwrap_or(0);
    if chains > rows.len() {
        return Err(format!(
            "chain__ goes up to {} but the file has {} draws: chains are numbered 0, 1, … and each has at least one draw",
            chains - 1,
            rows.len()
        ));
    }
    let mut per = vec![0usize; chains];
    for r in &rows {
        per[r.chain] += 1;
    }
    let draws = per.iter().copied().min().unwrap_or(0);
    if per.iter().any(|&n| n != draws) {
        return Err("chains have different numbers of draws".into());
    }
    rows.sort_by_key(|r| (r.chain, r.draw));
    let mut d = Draws::empty(chains, draws, dim);
    for (o, r) in rows.into_iter().enumerate() {
        d.x[o * dim..(o + 1) * dim].copy_from_slice(&r.x);
        d.energy[o] = r.e;
        d.accept[o] = r.a;
        d.divergent[o] = r.div;
    }
    if let Some((_, v)) = header.iter().find(|(k, _)| k == "image_shape") {
        let s: Result<Vec<usize>, _> = v.split('x').map(|p| p.trim().parse()).collect();
        d.image_shape = s.ok();
    }
    d.header = header;
    Ok(d)
}

/// Reads a sample CSV: a file of ebm's format, one CmdStan file (one
/// chain), or for `DIR/NAME.csv` that does not exist, the CmdStan files
/// `DIR/NAME_1.csv …` (as many as the first states in `num_chains`, else
/// every consecutive one).
pub fn read_csv(path: &Path) -> Result<Draws, String> {
    read_csv_files(&[path.to_path_buf()])
}

/// Reads a sample from `paths`: one path as [`read_csv`] does, or several
/// CmdStan files, one chain each in the order given.
pub fn read_csv_files(paths: &[PathBuf]) -> Result<Draws, String> {
    let (paths, from_base) = match paths {
        [one] => chain_files(one),
        _ => (paths.to_vec(), false),
    };
    if paths.len() > MAX_CHAIN_FILES {
        return Err(format!(
            "a sample is read from at most {MAX_CHAIN_FILES} files, found {}",
            paths.len()
        ));
    }
    let mut total = 0u64;
    let mut chains = Vec::new();
    let mut limit = paths.len();
    for (i, p) in paths.iter().enumerate() {
        if i >= limit {
            break;
        }
        let text = read_text(p, &mut total)?;
        let at = |e: String| format!("{}: {e}", p.display());
        if !is_cmdstan(&text) {
            if paths.len() == 1 {
                return parse_csv(&text).map_err(at);
            }
            return Err(at(
                "not a CmdStan file (it has no lp__ column first, or a chain__ column): only CmdStan files, one chain each, are read together".into(),
            ));
        }
        let chain = cmdstan::parse_cmdstan(&text).map_err(at)?;
        if from_base && i == 0 {
            limit = stated_chains(p, &chain, paths.len())?;
        }
        chains.push((p.display().to_string(), chain));
    }
    cmdstan::combine(chains)
}

/// The files of `path`: itself when it exists (or names no CmdStan chain
/// file), else `NAME_1.csv`, `NAME_2.csv`, … while they exist. The flag
/// says whether the list came from the base name.
fn chain_files(path: &Path) -> (Vec<PathBuf>, bool) {
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let first = cmdstan::chain_paths(path, 1)
        .ok()
        .and_then(|v| v.into_iter().next());
    match first {
        Some(f) if !exists(path) && exists(&f) => {
            let found = (1..=MAX_CHAIN_FILES)
                .map_while(|c| {
                    let p = cmdstan::chain_paths(path, c).ok()?.pop()?;
                    exists(&p).then_some(p)
                })
                .collect();
            (found, true)
        }
        _ => (vec![path.to_path_buf()], false),
    }
}

/// How many of the `found` chain files belong to the run: the first file's
/// `num_chains` where it states one (files left by an earlier, larger run
/// are not read), else all of them.
fn stated_chains(first: &Path, chain: &cmdstan::Chain, found: usize) -> Result<usize, String> {
    let Some(v) = chain.get("num_chains") else {
        return Ok(found);
    };
    match v.parse::<usize>() {
        Ok(n) if (1..=found).contains(&n) => Ok(n),
        Ok(n) if n > found => Err(format!(
            "{}: states num_chains = {n}, but only {found} chain files follow its name",
            first.display()
        )),
        _ => Err(format!(
            "{}: num_chains must be a whole number ≥ 1, found `{v}`",
            first.display()
        )),
    }
}

/// A text file, counted against the limit on the bytes of one sample.
fn read_text(path: &Path, total: &mut u64) -> Result<String, String> {
    let max = crate::data::MAX_DATA_BYTES;
    let bytes = crate::data::read_regular(path, max).map_err(|e| e.to_string())?;
    *total += bytes.len() as u64;
    if *total > max {
        return Err(format!(
            "{}: the files of this sample hold more than the limit of {max} bytes together",
            path.display()
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| format!("{}: not a text file (invalid UTF-8)", path.display()))
}

/// Whether `text` is a CmdStan file (by its column header).
fn is_cmdstan(text: &str) -> bool {
    text.lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .is_some_and(cmdstan::is_cmdstan_header)
}

/// Write the positions as NPY, shape `(chains, draws, dim)` or
/// `(chains, draws, *image_shape)`, streamed (a spilled run's draws are read
/// back chain by chain).
pub fn write_npy(path: &Path, d: &Draws) -> Result<(), String> {
    let mut shape = vec![d.chains, d.stored_draws()];
    match &d.image_shape {
        Some(s) if s.iter().product::<usize>() == d.dim => shape.extend(s),
        _ => shape.push(d.dim),
    }
    let failed = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    crate::data::atomic::write_streamed(path, |w| {
        w.write_all(&crate::data::npy::header("<f8", &shape))
            .map_err(failed)?;
        let mut bytes = Vec::with_capacity(d.dim * 8);
        each_row(d, 0..d.chains, |_, _, r| {
            bytes.clear();
            for v in r.x {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&bytes).map_err(failed)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn toy() -> Draws {
        let mut d = Draws::empty(2, 3, 2);
        for (i, v) in d.x.iter_mut().enumerate() {
            *v = (i as f64 * 0.37).sin() / 3.0;
        }
        d.energy = vec![0.1, 0.2, 0.3, 1e-300, -2.5, 7.0];
        d.accept = vec![1.0, 0.5, 0.25, 0.0, 1.0, 0.125];
        d.divergent[3] = true;
        d.header = vec![("sampler".into(), "mala".into())];
        d
    }

    #[test]
    fn csv_round_trip_is_exact() {
        let d = toy();
        let text = to_csv(&d);
        assert!(text.contains("chain__,draw__,energy__,accept__,divergent__,x.0,x.1\n"));
        let back = parse_csv(&text).unwrap();
        assert_eq!(back.x, d.x);
        assert_eq!(back.energy, d.energy);
        assert_eq!(back.accept, d.accept);
        assert_eq!(back.divergent, d.divergent);
        assert_eq!(back.header, d.header);
    }

    /// Sample files whose index columns are no indices are errors naming
    /// the line, never a panic or a huge allocation.
    #[test]
    fn bad_chain_and_draw_indices_are_errors() {
        let head = "chain__,draw__,energy__,accept__,divergent__,x.0\n";
        for (rows, expect) in [
            (
                "1e300,0,0,1,0,1\n",
                "line 2: chain__ must be a whole number",
            ),
            ("-3,0,0,1,0,1\n", "line 2: chain__ must be a whole number"),
            ("1.7,0,0,1,0,1\n", "line 2: chain__ must be a whole number"),
            ("0,nan,0,1,0,1\n", "line 2: draw__ must be a whole number"),
            (
                "0,0,0,1,0,1\n10000000000,0,0,1,0,1\n",
                "chain__ goes up to 10000000000 but the file has 2 draws",
            ),
        ] {
            let err = parse_csv(&format!("{head}{rows}")).unwrap_err();
            assert!(err.starts_with(expect), "{rows}: {err}");
        }
    }

    #[test]
    fn npy_reads_back_with_image_shape() {
        let mut d = toy();
        d.image_shape = Some(vec![1, 2]);
        let dir = std::env::temp_dir().join(format!("ebm-npy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.npy");
        write_npy(&p, &d).unwrap();
        let a = crate::data::npy::read(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(a.shape, vec![2, 3, 1, 2]);
        assert_eq!(a.data, d.x);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ebm-io-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// ebm's file → CmdStan files → ebm's file gives the same bytes, and the
    /// CmdStan files read back by their base name, by the list, or one chain.
    #[test]
    fn single_file_and_cmdstan_files_round_trip() {
        let dir = scratch("cmdstan");
        let mut d = toy();
        d.image_shape = Some(vec![2, 1]);
        d.header.push(("image_shape".into(), "2x1".into()));
        let one = dir.join("one.csv");
        write_csv(&one, &d).unwrap();
        let read = read_csv(&one).unwrap();
        let base = dir.join("cs.csv");
        let written = write_csv_as(&base, &read, Format::CmdStan).unwrap();
        assert_eq!(written, csv_paths(&base, 2, Format::CmdStan).unwrap());
        assert!(describe_files(&written).ends_with("cs_2.csv (2 files, one per chain)"));
        assert!(!base.exists());
        let back = read_csv(&base).unwrap();
        assert_eq!(to_csv(&back), fs::read_to_string(&one).unwrap());
        assert_eq!(back.image_shape, Some(vec![2, 1]));
        assert_eq!(to_csv(&read_csv_files(&written).unwrap()), to_csv(&back));
        let first = read_csv(&written[0]).unwrap();
        assert_eq!((first.chains, first.draws), (1, 3));
        assert_eq!(first.x, d.x[..6]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The base name reads as many chains as the first file states, and
    /// refuses a set that is missing some; several files must all be CmdStan's.
    #[test]
    fn chain_files_are_checked() {
        let dir = scratch("chains");
        let d = toy();
        let base = dir.join("a.csv");
        write_csv_as(&base, &d, Format::CmdStan).unwrap();
        // A leftover third chain of an earlier run is not read.
        fs::copy(dir.join("a_2.csv"), dir.join("a_3.csv")).unwrap();
        assert_eq!(read_csv(&base).unwrap().chains, 2);
        fs::remove_file(dir.join("a_2.csv")).unwrap();
        let err = read_csv(&base).unwrap_err();
        assert!(
            err.contains("a_1.csv: states num_chains = 2, but only 1 chain files follow its name"),
            "{err}"
        );
        let single = dir.join("s.csv");
        write_csv(&single, &d).unwrap();
        let err = read_csv_files(&[dir.join("a_1.csv"), single.clone()]).unwrap_err();
        assert!(err.contains("s.csv: not a CmdStan file"), "{err}");
        let err = read_csv_files(&[dir.join("a_1.csv"), dir.join("missing.csv")]).unwrap_err();
        assert!(err.contains("no such file"), "{err}");
        fs::create_dir(dir.join("f_1.csv")).unwrap();
        let err = read_csv(&dir.join("f.csv")).unwrap_err();
        assert!(err.contains("f_1.csv is a folder"), "{err}");
        let err = read_csv(&dir.join("nothing.csv")).unwrap_err();
        assert!(
            err.contains("no such file") && err.contains("nothing.csv"),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = std::env::temp_dir().join(format!("ebm-io-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.csv");
        write_csv(&p, &toy()).unwrap();
        write_csv(&p, &toy()).unwrap();
        let back = read_csv(&p).unwrap();
        assert_eq!(back.chains, 2);
        let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary files left");
        fs::remove_dir_all(&dir).unwrap();
    }
}
