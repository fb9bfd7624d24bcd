//! Data files: numeric arrays read from JSON, CSV and NPY files (for `load`
//! in `.ebm` scripts), an NPY writer for the runners, the safetensors
//! parameter and checkpoint files of the training runner (`safetensors`), and
//! the portable generator `rng` ("SM64") behind every seeded tensor.
//!
//! | format | selected by | key |
//! | --- | --- | --- |
//! | JSON | `.json` | object member holding a number or nested arrays; `""` = the whole document |
//! | CSV  | `.csv`  | a column name (→ `[rows]`), a list of names (→ `[rows, k]`), `""` = every column (→ `[rows, cols]`) |
//! | NPY  | `.npy`  | must be `""` (or omitted): a file holds one array |
//!
//! Every failure is a `DataError` value, never a panic; `sema` turns it into a
//! diagnostic pointing at the path or key in the script.

pub mod atomic;
pub mod csv;
pub mod json;
pub mod npy;
pub mod rng;
pub mod safetensors;

use std::fmt;
use std::path::Path;

/// A dense row-major f64 array.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Array {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Array { shape, data }
    }
}

/// Which part of a file to read.
#[derive(Clone, Debug, PartialEq)]
pub enum Key {
    /// The whole file (`""`).
    All,
    /// One named member / column.
    One(String),
    /// Several CSV columns, stacked as the columns of a matrix.
    Many(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum DataError {
    /// The file cannot be read (missing, a folder, no permission).
    Io(String),
    /// The extension names no supported format.
    UnknownFormat(String),
    /// The file is not valid in its format.
    Malformed(String),
    /// The key names nothing in the file; `available` lists what does.
    NoKey { key: String, available: Vec<String> },
    /// The key kind does not fit the format (e.g. a key for an NPY file);
    /// the text is a whole "expected X, found Y" sentence.
    BadKey(String),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io(m) | DataError::Malformed(m) | DataError::BadKey(m) => f.write_str(m),
            DataError::UnknownFormat(ext) => write!(f, "unsupported data format `{ext}`"),
            DataError::NoKey { key, .. } => write!(f, "no key `{key}`"),
        }
    }
}

/// The formats `load` understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Npy,
}

pub fn format_of(path: &Path) -> Result<Format, DataError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "json" => Ok(Format::Json),
        "csv" => Ok(Format::Csv),
        "npy" => Ok(Format::Npy),
        _ => Err(DataError::UnknownFormat(if ext.is_empty() {
            "(no extension)".into()
        } else {
            format!(".{ext}")
        })),
    }
}

/// Reads `key` of the data file at `path` (format chosen by extension).
pub fn load(path: &Path, key: &Key) -> Result<Array, DataError> {
    let format = format_of(path)?;
    if path.is_dir() {
        return Err(DataError::Io(format!("{} is a folder", path.display())));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        DataError::Io(match e.kind() {
            std::io::ErrorKind::NotFound => format!("no such file {}", path.display()),
            _ => format!("cannot read {}: {e}", path.display()),
        })
    })?;
    match format {
        Format::Json => json::read(&bytes, key),
        Format::Csv => csv::read(&bytes, key),
        Format::Npy => match key {
            Key::All => npy::read(&bytes),
            Key::One(k) => Err(DataError::BadKey(format!(
                "expected no key (or \"\") for an NPY file, which holds one array, found \"{k}\""
            ))),
            Key::Many(_) => Err(DataError::BadKey(
                "expected no key (or \"\") for an NPY file, which holds one array, found a list"
                    .into(),
            )),
        },
    }
}
