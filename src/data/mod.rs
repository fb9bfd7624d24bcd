//! Data files: numeric arrays read from JSON, CSV and NPY files (for `load`
//! in `.ebm` scripts), training data sets (`dataset::Dataset`, read from CSV
//! or NPY files, or drawn from the seeded 2-D generators of `toy`), an NPY
//! writer for the runners, the safetensors parameter and checkpoint files of
//! the training runner (`safetensors`), and the portable generator `rng`
//! ("SM64") behind every seeded tensor.
//!
//! | format | selected by | key |
//! | --- | --- | --- |
//! | JSON | `.json` | object member holding a number or nested arrays; `""` = the whole document |
//! | CSV  | `.csv`  | a column name (→ `[rows]`), a list of names (→ `[rows, k]`), `""` = every column (→ `[rows, cols]`) |
//! | NPY  | `.npy`  | must be `""` (or omitted): a file holds one array |
//!
//! Every failure is a `DataError` value, never a panic; `sema` turns it into a
//! diagnostic pointing at the path or key in the script. Every file is read
//! through `read_regular`: only regular files (a folder, FIFO or device is
//! refused before it is opened, so a FIFO never blocks the reader) of at most
//! `MAX_DATA_BYTES` bytes.

pub mod atomic;
pub mod csv;
pub mod dataset;
pub mod json;
pub mod npy;
pub mod rng;
pub mod safetensors;
pub mod toy;

pub use dataset::{Dataset, Scale, Scaler};
pub use toy::{TOY_NAMES, toy};

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
    /// The file holds more than `limit` values (`load` stops reading there).
    TooLarge { limit: usize },
    /// A request that cannot be met: a toy data set's name, size or noise,
    /// a column choice, a width that does not fit the energy. The text is a
    /// whole sentence.
    Invalid(String),
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io(m)
            | DataError::Malformed(m)
            | DataError::BadKey(m)
            | DataError::Invalid(m) => f.write_str(m),
            DataError::UnknownFormat(ext) => write!(f, "unsupported data format `{ext}`"),
            DataError::TooLarge { limit } => write!(f, "more than {limit} values"),
            DataError::NoKey { key, available } if available.is_empty() => {
                write!(f, "no key `{key}`")
            }
            DataError::NoKey { key, available } => {
                write!(f, "no key `{key}`; the keys are {}", available.join(", "))
            }
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

/// The largest data file `load` and `Dataset::from_file` read (1 GiB).
pub const MAX_DATA_BYTES: u64 = 1 << 30;

/// What a path that is not a regular file is, in words.
fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Reads the regular file at `path`, of at most `max` bytes. The kind and
/// size are checked from the metadata before the file is opened, so a
/// folder, FIFO, socket or device is refused without blocking, and a file
/// over the limit without reading it; a file that grows past `max` while it
/// is read is refused too.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let io = |e: std::io::Error| {
        DataError::Io(match e.kind() {
            std::io::ErrorKind::NotFound => format!("no such file {}", path.display()),
            _ => format!("cannot read {}: {e}", path.display()),
        })
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        return Err(DataError::Io(format!("{} is a folder", path.display())));
    }
    if !file_type.is_file() {
        return Err(DataError::Io(format!(
            "cannot read {}: it is {}, not a regular file",
            path.display(),
            kind_of(&file_type)
        )));
    }
    let too_large = |size: u64| {
        DataError::Io(format!(
            "cannot read {}: it has {size} bytes, more than the limit of {max} bytes",
            path.display()
        ))
    };
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Reads `key` of the data file at `path` (format chosen by extension) as
/// `load` does: at most `max_values` values (the readers stop there, so a
/// large file costs no more than the limit), all finite, and at least one
/// (an empty CSV table, JSON array or NPY array is refused alike).
pub fn load(path: &Path, key: &Key, max_values: usize) -> Result<Array, DataError> {
    let format = format_of(path)?;
    let bytes = read_regular(path, MAX_DATA_BYTES)?;
    match format {
        Format::Json => json::read(&bytes, key, max_values),
        Format::Csv => csv::read(&bytes, key, max_values),
        Format::Npy => match key {
            Key::All => npy::read_limited(&bytes, max_values).and_then(npy::finite),
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
