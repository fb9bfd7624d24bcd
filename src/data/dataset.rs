//! `Dataset`: the rows a training run learns from — an f64 matrix (rows ×
//! columns, row-major) with its column names, optional integer labels and a
//! line saying where it came from. This module owns reading one from a CSV
//! or NPY file (which columns, which label column, every cell checked), the
//! per-column scaling (`Scale`, fitted into a `Scaler`), and seeded
//! shuffling and train/held-out splits. The toy generators in `data::toy`
//! build `Dataset`s too.
//!
//! **Files.** A CSV file needs a header line naming the columns; a column is
//! chosen by its name. An NPY file holds one 2-D array (rows × columns, any
//! dtype `data::npy` reads); a column is chosen by its 0-based index written
//! as a string (`"0"`, `"3"`), and the data set's column names are those
//! strings. Without a column list every column but the label column is a
//! feature. The label column must hold integers. Every feature cell must be
//! a finite number; an error names the line (CSV, 1-based, counting every
//! line of the file) or the row (NPY, 0-based) and the column. Files are read
//! through `data::read_regular` (regular files of at most `MAX_DATA_BYTES`).
//!
//! **Scaling.** `x' = (x − shift)·mul` per column. `Standardize` uses the
//! column's mean and population standard deviation; `MinMax(a, b)` maps the
//! column's minimum to `a` and maximum to `b`. A constant column gets
//! `mul = 1` (standardized to 0, min-maxed to `(a + b)/2`), never a division
//! by zero.
//!
//! **Shuffling.** Fisher–Yates: for `i` from `rows − 1` down to 1, swap row
//! `i` with row `j`, uniform in `0..=i` (Lemire's multiply-and-reject on
//! 64-bit draws), the draws being SM64 (`data::rng::sm64_at`) outputs
//! 1, 2, … for the stream seed `seed ^ fnv1a("shuffle")`. Labels move with
//! their rows.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::rng::{fnv1a, sm64_at};
use super::{DataError, Format, MAX_DATA_BYTES, csv, format_of, npy, read_regular};

/// Training rows: `x` is `rows × dim`, row-major; `columns` names the `dim`
/// columns; `labels`, when present, has one entry per row; `source` says
/// where the rows came from (a path, or a toy set's name and arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Vec<f64>,
    pub rows: usize,
    pub dim: usize,
    pub columns: Vec<String>,
    pub labels: Option<Vec<i64>>,
    pub source: String,
}

/// A per-column scaling, as a user names it (`FromStr`): `none`,
/// `standardize`, `minmax:A,B` (finite `A < B`), `range:A,B`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    None,
    Standardize,
    /// Each column's own [min, max] onto [A, B].
    MinMax(f64, f64),
    /// The whole data's [min, max] onto [A, B], one map for every column
    /// (images: every pixel scaled alike).
    Range(f64, f64),
}

/// A fitted scaling: `x' = (x − shift[c])·mul[c]` for column `c`.
#[derive(Clone, Debug, PartialEq)]
pub struct Scaler {
    pub shift: Vec<f64>,
    pub mul: Vec<f64>,
}

fn malformed_csv(msg: String) -> DataError {
    DataError::Malformed(format!("bad CSV file: {msg}"))
}

fn malformed_npy(msg: String) -> DataError {
    DataError::Malformed(format!("bad NPY file: {msg}"))
}

/// `v` as a label, if it is an integer f64 represents exactly.
fn integer(v: f64) -> Option<i64> {
    const LIMIT: f64 = (1u64 << 53) as f64;
    (v.fract() == 0.0 && v.abs() <= LIMIT).then_some(v as i64)
}

/// The feature and label column indices for the request, `find` turning a
/// requested name into an index.
fn choose(
    columns: Option<&[String]>,
    label: Option<&str>,
    width: usize,
    find: impl Fn(&str) -> Result<usize, DataError>,
    name_of: impl Fn(usize) -> String,
) -> Result<(Vec<usize>, Option<usize>), DataError> {
    let label = label.map(&find).transpose()?;
    let features = match columns {
        Some(names) => {
            let mut picked: Vec<usize> = Vec::with_capacity(names.len());
            for name in names {
                let c = find(name)?;
                if Some(c) == label {
                    return Err(DataError::Invalid(format!(
                        "column `{name}` is the label column; it cannot also be a feature"
                    )));
                }
                if picked.contains(&c) {
                    return Err(DataError::Invalid(format!(
                        "column `{name}` is chosen twice"
                    )));
                }
                picked.push(c);
            }
            picked
        }
        None => (0..width).filter(|&c| Some(c) != label).collect(),
    };
    if features.is_empty() {
        return Err(DataError::Invalid(match (columns, label) {
            (Some(_), _) => "expected at least one column, found an empty list".into(),
            (None, Some(l)) => format!(
                "expected a column besides the label column `{}`, found none",
                name_of(l)
            ),
            (None, None) => "expected at least one column, found none".into(),
        }));
    }
    Ok((features, label))
}

/// "a, b, c", or the first six, "…" and the last when there are more than 8.
fn list(names: &[String]) -> String {
    match names {
        [first @ .., last] if names.len() > 8 => {
            format!("{}, …, {last}", first[..6].join(", "))
        }
        _ => names.join(", "),
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl Dataset {
    /// Reads a data set from a `.csv` or `.npy` file (see the module doc).
    /// `columns` chooses the features (CSV: names; NPY: indices as strings),
    /// `label` the label column; `source` becomes the path.
    pub fn from_file(
        path: &Path,
        columns: Option<&[String]>,
        label: Option<&str>,
    ) -> Result<Dataset, DataError> {
        let format = match format_of(path)? {
            Format::Json => return Err(DataError::UnknownFormat(".json".into())),
            f => f,
        };
        let bytes = read_regular(path, MAX_DATA_BYTES)?;
        let source = path.display().to_string();
        match format {
            Format::Npy => Dataset::from_npy(&bytes, columns, label, source),
            _ => Dataset::from_csv(&bytes, columns, label, source),
        }
    }

    /// Reads a data set from the bytes of a CSV file (header required).
    pub fn from_csv(
        bytes: &[u8],
        columns: Option<&[String]>,
        label: Option<&str>,
        source: String,
    ) -> Result<Dataset, DataError> {
        let (header, records) = csv::records(bytes)?;
        if header.iter().all(|h| h.parse::<f64>().is_ok()) {
            return Err(malformed_csv(format!(
                "expected a header line naming the columns, found `{}`",
                header.join(",")
            )));
        }
        let find = |name: &str| {
            let mut at = header.iter().enumerate().filter(|(_, h)| *h == name);
            match (at.next(), at.next()) {
                (Some((c, _)), None) => Ok(c),
                (Some(_), Some(_)) => Err(DataError::Invalid(format!(
                    "column `{name}` appears twice in the header"
                ))),
                (None, _) => Err(DataError::NoKey {
                    key: name.to_string(),
                    available: header.clone(),
                }),
            }
        };
        let (features, label) = choose(columns, label, header.len(), find, |c| header[c].clone())?;
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for record in records {
            let (line, fields) = record?;
            for &c in &features {
                let v = csv::number(&fields[c], line, &header[c])?;
                if !v.is_finite() {
                    return Err(malformed_csv(format!(
                        "line {line}, column `{}`: expected a finite number, found `{}`",
                        header[c], fields[c]
                    )));
                }
                x.push(v);
            }
            if let Some(c) = label {
                let l = fields[c].parse::<f64>().ok().and_then(integer);
                labels.push(l.ok_or_else(|| {
                    malformed_csv(format!(
                        "line {line}, label column `{}`: expected an integer, found `{}`",
                        header[c], fields[c]
                    ))
                })?);
            }
        }
        let rows = x.len() / features.len();
        if rows == 0 {
            return Err(malformed_csv(
                "expected rows after the header, found none".into(),
            ));
        }
        Ok(Dataset {
            x,
            rows,
            dim: features.len(),
            columns: features.iter().map(|&c| header[c].clone()).collect(),
            labels: label.map(|_| labels),
            source,
        })
    }

    /// Reads a data set from the bytes of an NPY file holding a 2-D array.
    pub fn from_npy(
        bytes: &[u8],
        columns: Option<&[String]>,
        label: Option<&str>,
        source: String,
    ) -> Result<Dataset, DataError> {
        let array = npy::read(bytes)?;
        let (rows, width) = match array.shape[..] {
            [r, c] => (r, c),
            _ => {
                let dims: Vec<String> = array.shape.iter().map(|d| d.to_string()).collect();
                return Err(malformed_npy(format!(
                    "expected a 2-D array (rows × columns), found shape ({}{})",
                    dims.join(", "),
                    if dims.len() == 1 { "," } else { "" }
                )));
            }
        };
        let find = |name: &str| match name.trim().parse::<usize>() {
            Ok(c) if c < width => Ok(c),
            _ => Err(DataError::Invalid(format!(
                "expected a column index from 0 to {} (the NPY array has {}), found `{name}`",
                width.saturating_sub(1),
                plural(width, "column")
            ))),
        };
        let (features, label) = choose(columns, label, width, find, |c| c.to_string())?;
        if rows == 0 {
            return Err(malformed_npy("expected rows, found none".into()));
        }
        let mut x = Vec::with_capacity(rows * features.len());
        let mut labels = Vec::with_capacity(if label.is_some() { rows } else { 0 });
        for (r, row) in array.data.chunks_exact(width).enumerate() {
            for &c in &features {
                if !row[c].is_finite() {
                    return Err(malformed_npy(format!(
                        "row {r} (counting from 0), column {c}: expected a finite number, found {}",
                        row[c]
                    )));
                }
                x.push(row[c]);
            }
            if let Some(c) = label {
                labels.push(integer(row[c]).ok_or_else(|| {
                    malformed_npy(format!(
                        "row {r} (counting from 0), label column {c}: expected an integer, found {}",
                        row[c]
                    ))
                })?);
            }
        }
        Ok(Dataset {
            x,
            rows,
            dim: features.len(),
            columns: features.iter().map(|c| c.to_string()).collect(),
            labels: label.map(|_| labels),
            source,
        })
    }

    /// Row `i` (`i < rows`).
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// Checks that a row fits an energy whose `x` has `dim` values.
    pub fn check_width(&self, dim: usize) -> Result<(), DataError> {
        if self.dim == dim {
            return Ok(());
        }
        Err(DataError::Invalid(format!(
            "the data has {} ({}) but the energy's x has {} per sample: choose {}",
            plural(self.dim, "column"),
            list(&self.columns),
            plural(dim, "value"),
            plural(dim, "column")
        )))
    }

    /// Fits `scale` to the columns (see the module doc).
    pub fn fit_scale(&self, scale: Scale) -> Scaler {
        let mut scaler = Scaler::identity(self.dim);
        if self.rows == 0 || self.dim == 0 {
            return scaler;
        }
        let column = |c: usize| self.x.iter().skip(c).step_by(self.dim);
        if let Scale::Range(a, b) = scale {
            let lo = self.x.iter().fold(f64::INFINITY, |m, &v| m.min(v));
            let hi = self.x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let (shift, mul) = affine(lo, hi, a, b);
            scaler.shift.fill(shift);
            scaler.mul.fill(mul);
            return scaler;
        }
        for c in 0..self.dim {
            match scale {
                Scale::None => {}
                Scale::Standardize => {
                    let n = self.rows as f64;
                    let mean = column(c).sum::<f64>() / n;
                    let var = column(c).map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    let mul = 1.0 / var.sqrt();
                    scaler.shift[c] = mean;
                    if var > 0.0 && mul.is_finite() {
                        scaler.mul[c] = mul;
                    }
                }
                Scale::MinMax(a, b) => {
                    let lo = column(c).fold(f64::INFINITY, |m, &v| m.min(v));
                    let hi = column(c).fold(f64::NEG_INFINITY, |m, &v| m.max(v));
                    (scaler.shift[c], scaler.mul[c]) = affine(lo, hi, a, b);
                }
                Scale::Range(..) => {}
            }
        }
        scaler
    }

    /// The rows in a seeded random order (see the module doc).
    pub fn shuffled(&self, seed: u64) -> Dataset {
        let stream = seed ^ fnv1a("shuffle");
        let mut counter = 0u64;
        let mut next = || {
            counter += 1;
            sm64_at(stream, counter)
        };
        let mut order: Vec<usize> = (0..self.rows).collect();
        for i in (1..self.rows).rev() {
            let bound = i as u64 + 1;
            let threshold = bound.wrapping_neg() % bound;
            let j = loop {
                let m = next() as u128 * bound as u128;
                if m as u64 >= threshold {
                    break (m >> 64) as usize;
                }
            };
            order.swap(i, j);
        }
        self.gather(&order)
    }

    /// Shuffles with `seed`, then splits into (training, held-out) rows: the
    /// held-out part has `round(held_out · rows)` rows, at most `rows − 1`
    /// (at least one training row); `held_out` is meant to be in `[0, 1)`,
    /// and a value outside (or NaN) is clamped to that.
    pub fn split(&self, held_out: f64, seed: u64) -> (Dataset, Dataset) {
        let all = self.shuffled(seed);
        let want = if held_out > 0.0 {
            (held_out.min(1.0) * self.rows as f64).round() as usize
        } else {
            0
        };
        let held = want.min(self.rows.saturating_sub(1));
        let train = self.rows - held;
        let order: Vec<usize> = (0..self.rows).collect();
        (all.gather(&order[..train]), all.gather(&order[train..]))
    }

    /// The rows `order`, in that order.
    fn gather(&self, order: &[usize]) -> Dataset {
        let mut x = Vec::with_capacity(order.len() * self.dim);
        for &i in order {
            x.extend_from_slice(self.row(i));
        }
        Dataset {
            x,
            rows: order.len(),
            dim: self.dim,
            columns: self.columns.clone(),
            labels: self
                .labels
                .as_ref()
                .map(|l| order.iter().map(|&i| l[i]).collect()),
            source: self.source.clone(),
        }
    }
}

/// (shift, mul) mapping [lo, hi] onto [a, b]; a constant (lo = hi) goes to
/// the middle of [a, b].
fn affine(lo: f64, hi: f64, a: f64, b: f64) -> (f64, f64) {
    let mul = (b - a) / (hi - lo);
    if hi > lo && mul.is_finite() && mul > 0.0 {
        (lo - a / mul, mul)
    } else {
        (lo - 0.5 * (a + b), 1.0)
    }
}

impl FromStr for Scale {
    type Err = DataError;

    fn from_str(text: &str) -> Result<Scale, DataError> {
        let bad = || {
            DataError::Invalid(format!(
                "expected a scaling `none`, `standardize`, `minmax:A,B` or `range:A,B` (finite A < B), found `{text}`"
            ))
        };
        match text.trim() {
            "none" => Ok(Scale::None),
            "standardize" => Ok(Scale::Standardize),
            t => {
                let (kind, rest) = t.split_once(':').ok_or_else(bad)?;
                let (a, b) = rest.split_once(',').ok_or_else(bad)?;
                let a: f64 = a.trim().parse().map_err(|_| bad())?;
                let b: f64 = b.trim().parse().map_err(|_| bad())?;
                if !(a.is_finite() && b.is_finite() && a < b) {
                    return Err(bad());
                }
                match kind {
                    "minmax" => Ok(Scale::MinMax(a, b)),
                    "range" => Ok(Scale::Range(a, b)),
                    _ => Err(bad()),
                }
            }
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scale::None => f.write_str("none"),
            Scale::Standardize => f.write_str("standardize"),
            Scale::MinMax(a, b) => write!(f, "minmax:{a},{b}"),
            Scale::Range(a, b) => write!(f, "range:{a},{b}"),
        }
    }
}

impl Scaler {
    /// The scaling that changes nothing, for `dim` columns.
    pub fn identity(dim: usize) -> Scaler {
        Scaler {
            shift: vec![0.0; dim],
            mul: vec![1.0; dim],
        }
    }

    /// Scales row-major rows of `shift.len()` values in place.
    pub fn apply(&self, x: &mut [f64]) {
        if self.shift.is_empty() {
            return;
        }
        for row in x.chunks_mut(self.shift.len()) {
            for ((v, s), m) in row.iter_mut().zip(&self.shift).zip(&self.mul) {
                *v = (*v - s) * m;
            }
        }
    }

    /// Undoes `apply` (up to rounding).
    pub fn invert(&self, x: &mut [f64]) {
        if self.shift.is_empty() {
            return;
        }
        for row in x.chunks_mut(self.shift.len()) {
            for ((v, s), m) in row.iter_mut().zip(&self.shift).zip(&self.mul) {
                *v = *v / m + s;
            }
        }
    }

    /// Whether `apply` leaves every value as it is.
    pub fn is_identity(&self) -> bool {
        self.shift.iter().all(|&s| s == 0.0) && self.mul.iter().all(|&m| m == 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn csv(text: &str, columns: Option<&[&str]>, label: Option<&str>) -> Result<Dataset, String> {
        let columns = columns.map(names);
        Dataset::from_csv(text.as_bytes(), columns.as_deref(), label, "t.csv".into())
            .map_err(|e| e.to_string())
    }

    /// A CSV text, the columns asked for and the label column.
    type Input<'a> = (&'a str, Option<&'a [&'a str]>, Option<&'a str>);

    /// Reading `text` with `columns` and `label` gives `expect`: `Ok((x,
    /// labels))` or `Err(substring of the message)`.
    fn check((text, columns, label): Input, expect: Result<(&[f64], Option<&[i64]>), &str>) {
        let got = csv(text, columns, label);
        match (got, expect) {
            (Ok(d), Ok((x, labels))) => {
                assert_eq!(d.x, x, "{text:?}");
                assert_eq!(d.labels.as_deref(), labels, "{text:?}");
                assert_eq!(d.rows * d.dim, d.x.len());
            }
            (Err(e), Err(want)) => assert!(e.contains(want), "{e:?} lacks {want:?}"),
            (got, want) => panic!("{text:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn csv_columns_and_labels() {
        let t = "a,b,l\n1,2,0\n\n3,4.5,7\n";
        check((t, None, None), Ok((&[1.0, 2.0, 0.0, 3.0, 4.5, 7.0], None)));
        check(
            (t, None, Some("l")),
            Ok((&[1.0, 2.0, 3.0, 4.5], Some(&[0, 7]))),
        );
        check(
            (t, Some(&["b"]), Some("l")),
            Ok((&[2.0, 4.5], Some(&[0, 7]))),
        );
        check(
            (t, Some(&["l", "a"]), None),
            Ok((&[0.0, 1.0, 7.0, 3.0], None)),
        );
        // Cells of columns not chosen are never read.
        check(("a,name\n1,x\n", Some(&["a"]), None), Ok((&[1.0], None)));
        let d = csv(t, Some(&["b", "a"]), Some("l")).unwrap();
        assert_eq!(
            (d.rows, d.dim, d.columns.clone()),
            (2, 2, names(&["b", "a"]))
        );
        assert_eq!(d.row(1), &[4.5, 3.0]);
        assert_eq!(d.source, "t.csv");
    }

    #[test]
    fn csv_errors() {
        let cases: &[(Input, &str)] = &[
            (
                ("a,b\n1,2\n3\n", None, None),
                "bad CSV file: line 3 has 1 fields, expected 2 like the header",
            ),
            (
                ("a,b\n1,NaN\n", None, None),
                "bad CSV file: line 2, column `b`: expected a finite number, found `NaN`",
            ),
            (
                ("a,b\n1,2\n-inf,2\n", None, None),
                "line 3, column `a`: expected a finite number, found `-inf`",
            ),
            (
                ("a,b\n1,1e999\n", None, None),
                "line 2, column `b`: expected a finite number, found `1e999`",
            ),
            (
                ("a,b\n1,x\n", None, None),
                "bad CSV file: line 2, column `b`: expected a number, found `x`",
            ),
            (
                ("a,b\n1,2\n", Some(&["a", "c"]), None),
                "no key `c`; the keys are a, b",
            ),
            (
                ("a,b\n1,2\n", None, Some("z")),
                "no key `z`; the keys are a, b",
            ),
            (("", None, None), "bad CSV file: it is empty"),
            (
                ("a,b\n\n", None, None),
                "bad CSV file: expected rows after the header, found none",
            ),
            (
                ("1,2\n3,4\n", None, None),
                "expected a header line naming the columns, found `1,2`",
            ),
            (
                ("a,l\n1,2.5\n", None, Some("l")),
                "bad CSV file: line 2, label column `l`: expected an integer, found `2.5`",
            ),
            (
                ("a,l\n1,cat\n", None, Some("l")),
                "line 2, label column `l`: expected an integer, found `cat`",
            ),
            (
                ("a,l\n1,2\n", Some(&["a", "l"]), Some("l")),
                "column `l` is the label column; it cannot also be a feature",
            ),
            (
                ("a,l\n1,2\n", Some(&["a", "a"]), None),
                "column `a` is chosen twice",
            ),
            (
                ("a,l\n1,2\n", Some(&[]), None),
                "expected at least one column, found an empty list",
            ),
            (
                ("l\n1\n", None, Some("l")),
                "expected a column besides the label column `l`, found none",
            ),
            (
                ("a,a\n1,2\n", Some(&["a"]), None),
                "column `a` appears twice in the header",
            ),
        ];
        for &(input, want) in cases {
            check(input, Err(want));
        }
    }

    fn npy(
        shape: &[usize],
        data: &[f64],
        columns: Option<&[&str]>,
        label: Option<&str>,
    ) -> Result<Dataset, String> {
        let bytes = npy::to_bytes_f64(shape, data);
        let columns = columns.map(names);
        Dataset::from_npy(&bytes, columns.as_deref(), label, "a.npy".into())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn npy_column_selection() {
        let data: Vec<f64> = (0..12).map(f64::from).collect(); // 3 × 4
        let d = npy(&[3, 4], &data, Some(&["3", "0"]), Some("1")).unwrap();
        assert_eq!(d.x, vec![3.0, 0.0, 7.0, 4.0, 11.0, 8.0]);
        assert_eq!(d.labels, Some(vec![1, 5, 9]));
        assert_eq!(d.columns, names(&["3", "0"]));
        let all = npy(&[3, 4], &data, None, Some("2")).unwrap();
        assert_eq!((all.dim, all.columns.clone()), (3, names(&["0", "1", "3"])));
        assert_eq!(npy(&[3, 4], &data, None, None).unwrap().x, data);
        let err = |r: Result<Dataset, String>, want: &str| {
            let e = r.unwrap_err();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        };
        err(
            npy(&[3, 4], &data, Some(&["4"]), None),
            "expected a column index from 0 to 3 (the NPY array has 4 columns), found `4`",
        );
        err(npy(&[3, 4], &data, Some(&["x"]), None), "found `x`");
        err(
            npy(&[12], &data, None, None),
            "expected a 2-D array (rows × columns), found shape (12,)",
        );
        err(
            npy(&[0, 4], &[], None, None),
            "bad NPY file: expected rows, found none",
        );
        let mut nan = data.clone();
        nan[6] = f64::NAN;
        err(
            npy(&[3, 4], &nan, None, None),
            "bad NPY file: row 1 (counting from 0), column 2: expected a finite number, found NaN",
        );
        err(
            npy(&[2, 2], &[1.0, 0.5, 2.0, 1.0], None, Some("1")),
            "row 0 (counting from 0), label column 1: expected an integer, found 0.5",
        );
    }

    fn table() -> Dataset {
        let x: Vec<f64> = (0..10)
            .flat_map(|i| [i as f64 * 0.5 - 1.0, 3.0, (i * i) as f64])
            .collect();
        Dataset {
            x,
            rows: 10,
            dim: 3,
            columns: names(&["a", "b", "c"]),
            labels: Some((0..10).collect()),
            source: "table".into(),
        }
    }

    #[test]
    fn scaling_round_trips() {
        let d = table();
        for scale in [
            "none",
            "standardize",
            "minmax:-1,1",
            "minmax: 0 , 2",
            "range:-1,1",
        ] {
            let scale: Scale = scale.parse().unwrap();
            let s = d.fit_scale(scale);
            assert_eq!(s.is_identity(), scale == Scale::None);
            let mut x = d.x.clone();
            s.apply(&mut x);
            assert!(x.iter().all(|v| v.is_finite()));
            match scale {
                Scale::Standardize => {
                    let a: Vec<f64> = x.iter().step_by(3).copied().collect();
                    let mean = a.iter().sum::<f64>() / 10.0;
                    let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 10.0;
                    assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
                    assert_eq!(x[1], 0.0); // the constant column
                }
                Scale::MinMax(lo, hi) => {
                    let c: Vec<f64> = x.iter().skip(2).step_by(3).copied().collect();
                    assert!((c[0] - lo).abs() < 1e-12 && (c[9] - hi).abs() < 1e-12);
                    assert_eq!(x[1], 0.5 * (lo + hi));
                }
                Scale::Range(lo, hi) => {
                    let (a, b) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |m, &v| {
                        (m.0.min(v), m.1.max(v))
                    });
                    assert!((a - lo).abs() < 1e-12 && (b - hi).abs() < 1e-12);
                    assert!(s.mul.iter().all(|&m| m == s.mul[0]));
                }
                Scale::None => assert_eq!(x, d.x),
            }
            s.invert(&mut x);
            for (a, b) in x.iter().zip(&d.x) {
                assert!((a - b).abs() < 1e-12, "{scale}: {a} vs {b}");
            }
        }
        assert_eq!("minmax:-1,1".parse::<Scale>(), Ok(Scale::MinMax(-1.0, 1.0)));
        assert_eq!(Scale::MinMax(-1.0, 1.0).to_string(), "minmax:-1,1");
        assert_eq!("range:0,1".parse::<Scale>(), Ok(Scale::Range(0.0, 1.0)));
        assert_eq!(Scale::Range(-1.0, 1.0).to_string(), "range:-1,1");
        for bad in [
            "",
            "Standardize",
            "minmax",
            "minmax:1",
            "minmax:1,1",
            "minmax:0,inf",
            "minmax:a,b",
            "range:2,1",
            "scale:0,1",
        ] {
            let e = bad.parse::<Scale>().unwrap_err().to_string();
            assert!(
                e.starts_with(
                    "expected a scaling `none`, `standardize`, `minmax:A,B` or `range:A,B`"
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn shuffle_and_split() {
        let d = table();
        let a = d.shuffled(5);
        assert_eq!(a, d.shuffled(5));
        assert_ne!(a.x, d.shuffled(6).x);
        assert_ne!(a.x, d.x);
        // A permutation, labels moving with their rows.
        let mut seen: Vec<i64> = a.labels.clone().unwrap();
        for (i, &l) in seen.iter().enumerate() {
            assert_eq!(a.row(i), d.row(l as usize));
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        for (held_out, sizes) in [
            (0.0, (10, 0)),
            (0.25, (7, 3)),
            (0.999, (1, 9)),
            (f64::NAN, (10, 0)),
            (5.0, (1, 9)),
        ] {
            let (train, held) = d.split(held_out, 9);
            assert_eq!((train.rows, held.rows), sizes, "{held_out}");
            assert_eq!((train.x.len(), held.x.len()), (3 * sizes.0, 3 * sizes.1));
            let mut all: Vec<i64> = train.labels.unwrap();
            all.extend(held.labels.unwrap());
            all.sort();
            assert_eq!(all, (0..10).collect::<Vec<_>>(), "disjoint and covering");
        }
    }

    #[test]
    fn width_message() {
        let d = table();
        assert!(d.check_width(3).is_ok());
        assert_eq!(
            d.check_width(2).unwrap_err().to_string(),
            "the data has 3 columns (a, b, c) but the energy's x has 2 values per sample: choose 2 columns"
        );
        let mut wide = table();
        wide.columns = (0..64).map(|i| format!("p{i}")).collect();
        wide.dim = 64;
        assert_eq!(
            wide.check_width(1).unwrap_err().to_string(),
            "the data has 64 columns (p0, p1, p2, p3, p4, p5, …, p63) but the energy's x has 1 value per sample: choose 1 column"
        );
    }
}
