//! The safetensors files of the training runner: `params.safetensors`
//! (trained parameters under their ebm names, loadable by PyTorch, NumPy and
//! anything else that reads safetensors) and `checkpoint.safetensors`
//! (parameters, optimiser state, replay buffer, RNG counters and iteration,
//! with the run's configuration as string metadata). This module owns the
//! typed form of such a file (`TensorFile`: named `Tensor`s of F32, F64, I64
//! or U64 values plus a string map) and its encoding; it knows nothing about
//! what the names mean.
//!
//! The layout is the one the `safetensors` crate (the reference
//! implementation, which Python's `safetensors` package wraps) writes: an
//! 8-byte little-endian header length, a JSON header (`__metadata__` first,
//! then each tensor's `dtype`, `shape` and `data_offsets`) padded with spaces
//! to a multiple of 8 bytes, then the tensors' little-endian values back to
//! back, ordered by descending dtype (as the crate orders them) and then by
//! name. The writer builds the header itself so that equal files encode to
//! equal bytes: the crate keeps metadata in a `HashMap`, whose order changes
//! from run to run.
//!
//! The reader checks the header itself first, so that every problem is a
//! sentence naming the tensor and the byte ranges involved (the crate's
//! errors name neither), then hands the bytes to the crate, whose verdict is
//! final: a file is read only if the reference implementation accepts it too.
//! Stricter than the crate, it refuses duplicate tensor names (JSON would keep
//! the last) and empty names. Every failure is a `DataError`, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::Path;

use ::safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::DataError;

/// The largest file `read` accepts (4 GiB); larger files are refused before
/// any byte is read.
pub const MAX_TENSOR_FILE_BYTES: u64 = 4 << 30;

/// The largest header the reference implementation reads (its limit).
const MAX_HEADER_BYTES: usize = 100_000_000;

/// The header key that holds the string metadata.
const METADATA_KEY: &str = "__metadata__";

/// The values of one tensor, row-major, in the dtype stored in the file.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U64(Vec<u64>),
}

impl TensorData {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::U64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The safetensors name of the dtype (`F32`, `F64`, `I64`, `U64`).
    pub fn dtype_name(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "F32",
            TensorData::F64(_) => "F64",
            TensorData::I64(_) => "I64",
            TensorData::U64(_) => "U64",
        }
    }

    fn dtype(&self) -> Dtype {
        match self {
            TensorData::F32(_) => Dtype::F32,
            TensorData::F64(_) => Dtype::F64,
            TensorData::I64(_) => Dtype::I64,
            TensorData::U64(_) => Dtype::U64,
        }
    }

    fn append_le(&self, out: &mut Vec<u8>) {
        match self {
            TensorData::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            TensorData::F64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            TensorData::I64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            TensorData::U64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        }
    }
}

/// A named array of a file: its shape (`[]` for a scalar) and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::F32(data),
        }
    }

    pub fn f64(shape: Vec<usize>, data: Vec<f64>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::F64(data),
        }
    }

    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::I64(data),
        }
    }

    pub fn u64(shape: Vec<usize>, data: Vec<u64>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::U64(data),
        }
    }

    /// A scalar (shape `[]`) U64 tensor, e.g. an iteration counter.
    pub fn scalar_u64(value: u64) -> Tensor {
        Tensor::u64(Vec::new(), vec![value])
    }
}

/// A whole safetensors file: tensors and string metadata, both by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    pub fn new() -> TensorFile {
        TensorFile::default()
    }

    /// Adds (or replaces) a tensor; returns `self` for chaining.
    pub fn with_tensor(mut self, name: impl Into<String>, tensor: Tensor) -> TensorFile {
        self.tensors.insert(name.into(), tensor);
        self
    }

    /// Adds (or replaces) a metadata entry; returns `self` for chaining.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> TensorFile {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The tensor `name`, or `NoKey` listing the names the file has.
    pub fn get(&self, name: &str) -> Result<&Tensor, DataError> {
        self.tensors.get(name).ok_or_else(|| DataError::NoKey {
            key: name.to_string(),
            available: self.tensors.keys().cloned().collect(),
        })
    }

    /// The shape and values of a floating-point tensor as f64 (F32 values
    /// convert exactly). Integer tensors are an error.
    pub fn get_f64(&self, name: &str) -> Result<(Vec<usize>, Vec<f64>), DataError> {
        let t = self.get(name)?;
        let data = match &t.data {
            TensorData::F64(v) => v.clone(),
            TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            other => return Err(wrong_kind(name, other, "floating-point (F32 or F64)")),
        };
        Ok((t.shape.clone(), data))
    }

    /// The shape and values of an unsigned integer tensor: U64, or I64 whose
    /// values are all non-negative (files written from PyTorch hold I64).
    pub fn get_u64(&self, name: &str) -> Result<(Vec<usize>, Vec<u64>), DataError> {
        let t = self.get(name)?;
        let data = match &t.data {
            TensorData::U64(v) => v.clone(),
            TensorData::I64(v) => v
                .iter()
                .map(|&x| u64::try_from(x))
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    DataError::Malformed(format!(
                        "tensor `{name}` holds negative I64 values where counts (U64) are expected"
                    ))
                })?,
            other => return Err(wrong_kind(name, other, "integer (U64 or I64)")),
        };
        Ok((t.shape.clone(), data))
    }

    /// The shape and values of a signed integer tensor: I64, or U64 whose
    /// values all fit in an i64.
    pub fn get_i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>), DataError> {
        let t = self.get(name)?;
        let data = match &t.data {
            TensorData::I64(v) => v.clone(),
            TensorData::U64(v) => v
                .iter()
                .map(|&x| i64::try_from(x))
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    DataError::Malformed(format!(
                        "tensor `{name}` holds U64 values too large for I64"
                    ))
                })?,
            other => return Err(wrong_kind(name, other, "integer (I64 or U64)")),
        };
        Ok((t.shape.clone(), data))
    }
}

fn wrong_kind(name: &str, data: &TensorData, expected: &str) -> DataError {
    DataError::Malformed(format!(
        "tensor `{name}` holds {} values where {expected} values are expected",
        data.dtype_name()
    ))
}

// ---------------------------------------------------------------- writing --

/// Writes `file` to `path` atomically (a temporary file in the same folder,
/// then a rename): on any error no file is created and an existing one is
/// left as it was.
pub fn write(path: &Path, file: &TensorFile) -> Result<(), DataError> {
    let bytes = to_bytes(file)
        .map_err(|e| DataError::Malformed(format!("cannot write {}: {e}", path.display())))?;
    super::atomic::write_atomic(path, &bytes).map_err(DataError::Io)
}

/// Encodes `file`. Equal files give equal bytes.
pub fn to_bytes(file: &TensorFile) -> Result<Vec<u8>, DataError> {
    // The reference order: descending dtype (8-byte values before 4-byte
    // ones, so every tensor stays aligned), then name.
    let mut order: Vec<(&String, &Tensor)> = file.tensors.iter().collect();
    order.sort_by(|(ln, lt), (rn, rt)| rt.data.dtype().cmp(&lt.data.dtype()).then(ln.cmp(rn)));

    let json = |s: &str| serde_json::to_string(s).map_err(|e| bad_encode(e.to_string()));
    let mut header = String::from("{");
    if !file.metadata.is_empty() {
        let map = serde_json::to_string(&file.metadata).map_err(|e| bad_encode(e.to_string()))?;
        header.push_str(&format!("{}:{map}", json(METADATA_KEY)?));
    }
    let mut offset = 0usize;
    for (name, tensor) in &order {
        if name.is_empty() {
            return Err(bad_encode("a tensor name must not be empty".into()));
        }
        if name.as_str() == METADATA_KEY {
            return Err(bad_encode(format!(
                "the name `{METADATA_KEY}` is reserved for the file's metadata"
            )));
        }
        let n = count(&tensor.shape).ok_or_else(|| {
            bad_encode(format!(
                "tensor `{name}` has shape {}, too many values to store",
                dims(&tensor.shape)
            ))
        })?;
        if n != tensor.data.len() {
            return Err(bad_encode(format!(
                "tensor `{name}` has shape {} ({n} values) but holds {} values",
                dims(&tensor.shape),
                tensor.data.len()
            )));
        }
        let end = n
            .checked_mul(width(tensor.data.dtype()))
            .and_then(|b| b.checked_add(offset))
            .ok_or_else(|| bad_encode(format!("tensor `{name}` is too large to store")))?;
        if header.len() > 1 {
            header.push(',');
        }
        let shape: Vec<String> = tensor.shape.iter().map(|d| d.to_string()).collect();
        header.push_str(&format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json(name)?,
            tensor.data.dtype_name(),
            shape.join(",")
        ));
        offset = end;
    }
    header.push('}');
    let padded = header.len().next_multiple_of(8);
    if padded > MAX_HEADER_BYTES {
        return Err(bad_encode(format!(
            "the header (names, shapes and metadata) would take {}, over the safetensors limit of {}",
            size(padded as u64),
            size(MAX_HEADER_BYTES as u64)
        )));
    }
    header.extend(std::iter::repeat_n(' ', padded - header.len()));

    let mut out = Vec::with_capacity(8 + padded + offset);
    out.extend((padded as u64).to_le_bytes());
    out.extend(header.as_bytes());
    for (_, tensor) in &order {
        tensor.data.append_le(&mut out);
    }
    Ok(out)
}

fn bad_encode(msg: String) -> DataError {
    DataError::Malformed(msg)
}

// ---------------------------------------------------------------- reading --

/// Reads the safetensors file at `path`. Only regular files are read (a pipe
/// or device is refused before it is opened, so reading never blocks), and
/// files over `MAX_TENSOR_FILE_BYTES` are refused before any byte is read.
pub fn read(path: &Path) -> Result<TensorFile, DataError> {
    let shown = path.display();
    let io = |e: std::io::Error| {
        DataError::Io(match e.kind() {
            std::io::ErrorKind::NotFound => format!("no such file {shown}"),
            _ => format!("cannot read {shown}: {e}"),
        })
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(DataError::Io(format!("{shown} is a folder")));
    }
    if !meta.file_type().is_file() {
        return Err(DataError::Io(format!(
            "{shown} is not a regular file (a pipe, socket or device); tensor files are read only from regular files"
        )));
    }
    let too_big = |len: u64| {
        DataError::Io(format!(
            "{shown} is {}, over the 4 GiB limit for tensor files",
            size(len)
        ))
    };
    if meta.len() > MAX_TENSOR_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    // The length may have changed since the check; read at most one byte
    // past the limit to notice.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_TENSOR_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_TENSOR_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    parse(&bytes, &shown.to_string())
}

/// Decodes the bytes of a safetensors file.
pub fn from_bytes(bytes: &[u8]) -> Result<TensorFile, DataError> {
    parse(bytes, "the data")
}

/// One tensor's header entry, as checked before the crate sees the file.
struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

fn parse(bytes: &[u8], subject: &str) -> Result<TensorFile, DataError> {
    let not_st =
        |msg: String| DataError::Malformed(format!("{subject} is not a safetensors file: {msg}"));
    let len = bytes.len();
    let Some((len_bytes, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(not_st(if len == 0 {
            "it is empty".into()
        } else {
            format!("it has {len} bytes, fewer than the 8 that give the header length")
        }));
    };
    let n = u64::from_le_bytes(*len_bytes);
    if n > len as u64 {
        return Err(not_st(format!(
            "the header length {} exceeds the file size {}",
            size(n),
            size(len as u64)
        )));
    }
    if n > rest.len() as u64 {
        return Err(not_st(format!(
            "the header length {} exceeds the {} that follow it",
            size(n),
            size(rest.len() as u64)
        )));
    }
    // n <= rest.len(), a usize, so the conversion is lossless.
    let n = n as usize;
    if n > MAX_HEADER_BYTES {
        return Err(not_st(format!(
            "the header length {} exceeds the safetensors limit of {}",
            size(n as u64),
            size(MAX_HEADER_BYTES as u64)
        )));
    }
    let (header, data) = rest.split_at(n);
    let header = std::str::from_utf8(header)
        .map_err(|e| not_st(format!("the header is not UTF-8 text ({e})")))?;
    let Entries(entries) = serde_json::from_str(header).map_err(|e| {
        not_st(match e.classify() {
            serde_json::error::Category::Data => format!("the header is not a JSON object ({e})"),
            _ => format!("the header is not JSON ({e})"),
        })
    })?;

    let mut seen = BTreeSet::new();
    let mut metadata = BTreeMap::new();
    let mut infos = Vec::new();
    for (name, value) in entries {
        if !seen.insert(name.clone()) {
            return Err(not_st(format!("the header names `{name}` twice")));
        }
        if name == METADATA_KEY {
            metadata = read_metadata(value).map_err(not_st)?;
        } else if name.is_empty() {
            return Err(not_st("the header has a tensor with an empty name".into()));
        } else {
            infos.push(read_entry(name, &value).map_err(not_st)?);
        }
    }

    // A file of other dtypes (BF16 from PyTorch, say) is a safetensors file
    // all the same, just not one ebm reads.
    if let Some(e) = infos.iter().find(|e| !ebm_reads(e.dtype)) {
        return Err(unsupported(subject, &e.name, e.dtype));
    }

    // Offsets: back to back from 0, in offset order, covering the data.
    infos.sort_by_key(|e| (e.start, e.end));
    let mut at = 0usize;
    let mut prev: Option<&str> = None;
    for e in &infos {
        let name = &e.name;
        if e.end < e.start {
            return Err(not_st(format!(
                "tensor `{name}` has data offsets {}..{}, which end before they start",
                e.start, e.end
            )));
        }
        if e.start < at {
            return Err(not_st(match prev {
                Some(p) => format!(
                    "tensor `{name}` (data bytes {}..{}) overlaps tensor `{p}`, which ends at byte {at}",
                    e.start, e.end
                ),
                None => format!("tensor `{name}` overlaps another tensor"),
            }));
        }
        if e.start > at {
            return Err(not_st(format!(
                "data bytes {at}..{} belong to no tensor (they come before tensor `{name}`)",
                e.start
            )));
        }
        let needed = count(&e.shape)
            .and_then(|c| c.checked_mul(width(e.dtype)))
            .ok_or_else(|| {
                not_st(format!(
                    "tensor `{name}` has shape {}, too many values to address",
                    dims(&e.shape)
                ))
            })?;
        if needed != e.end - e.start {
            return Err(not_st(format!(
                "tensor `{name}` has shape {} of {}, which takes {needed} bytes, but its data offsets {}..{} span {}",
                dims(&e.shape),
                e.dtype,
                e.start,
                e.end,
                e.end - e.start
            )));
        }
        if e.end > data.len() {
            return Err(DataError::Malformed(format!(
                "{subject} is truncated: tensor `{name}` needs data bytes {}..{} but only {} follow the header",
                e.start,
                e.end,
                data.len()
            )));
        }
        at = e.end;
        prev = Some(name);
    }
    if at < data.len() {
        return Err(not_st(format!(
            "{} follow the last tensor's data",
            size((data.len() - at) as u64)
        )));
    }

    // The reference implementation has the last word, and gives the values.
    let st = SafeTensors::deserialize(bytes).map_err(|e| not_st(crate_error(e)))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => TensorData::F32(le(raw).map(f32::from_le_bytes).collect()),
            Dtype::F64 => TensorData::F64(le(raw).map(f64::from_le_bytes).collect()),
            Dtype::I64 => TensorData::I64(le(raw).map(i64::from_le_bytes).collect()),
            Dtype::U64 => TensorData::U64(le(raw).map(u64::from_le_bytes).collect()),
            other => return Err(unsupported(subject, name, other)),
        };
        let shape = view.shape().to_vec();
        tensors.insert(name.to_string(), Tensor { shape, data });
    }
    Ok(TensorFile { tensors, metadata })
}

/// The `__metadata__` entry: a map of strings (or `null`).
fn read_metadata(value: Value) -> Result<BTreeMap<String, String>, String> {
    let map = match value {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(map) => map,
        other => {
            return Err(format!(
                "its `{METADATA_KEY}` entry must map names to strings, found {}",
                kind(&other)
            ));
        }
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            other => Err(format!(
                "metadata entry `{k}` must be a string, found {}",
                kind(&other)
            )),
        })
        .collect()
}

/// One tensor's `{"dtype", "shape", "data_offsets"}`.
fn read_entry(name: String, value: &Value) -> Result<Entry, String> {
    let field = |key: &str| {
        value
            .get(key)
            .ok_or_else(|| format!("tensor `{name}` has no `{key}` in the header"))
    };
    let whole = |v: &Value| v.as_u64().and_then(|x| usize::try_from(x).ok());
    if !value.is_object() {
        return Err(format!(
            "tensor `{name}` must be described by an object with `dtype`, `shape` and `data_offsets`, found {}",
            kind(value)
        ));
    }
    let dtype_name = field("dtype")?
        .as_str()
        .ok_or_else(|| format!("tensor `{name}` has a `dtype` that is not a string"))?;
    let dtype: Dtype = serde_json::from_value(Value::String(dtype_name.to_string()))
        .map_err(|_| format!("tensor `{name}` has the unknown dtype `{dtype_name}`"))?;
    let shape = field("shape")?
        .as_array()
        .and_then(|a| a.iter().map(whole).collect::<Option<Vec<usize>>>())
        .ok_or_else(|| format!("tensor `{name}` has a `shape` that is not a list of sizes"))?;
    let offsets = field("data_offsets")?
        .as_array()
        .and_then(|a| a.iter().map(whole).collect::<Option<Vec<usize>>>());
    let Some(&[start, end]) = offsets.as_deref() else {
        return Err(format!(
            "tensor `{name}` has `data_offsets` that are not two byte offsets [start, end]"
        ));
    };
    Ok(Entry {
        name,
        dtype,
        shape,
        start,
        end,
    })
}

fn ebm_reads(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F64 | Dtype::I64 | Dtype::U64)
}

fn unsupported(subject: &str, name: &str, dtype: Dtype) -> DataError {
    DataError::Malformed(format!(
        "{subject}: tensor `{name}` holds {dtype} values; ebm reads F32, F64, I64, U64"
    ))
}

/// The crate's verdict as a clause; the checks above catch these first, so
/// this is what a file gets only if the two disagree.
fn crate_error(e: SafeTensorError) -> String {
    match e {
        SafeTensorError::InvalidHeader(e) => format!("the header is not UTF-8 text ({e})"),
        SafeTensorError::InvalidHeaderDeserialization(e) | SafeTensorError::JsonError(e) => {
            format!("the header is not a valid safetensors header ({e})")
        }
        SafeTensorError::HeaderTooLarge => format!(
            "the header is larger than the safetensors limit of {}",
            size(MAX_HEADER_BYTES as u64)
        ),
        SafeTensorError::HeaderTooSmall => "it is shorter than the 8-byte header length".into(),
        SafeTensorError::InvalidHeaderLength => {
            "the header length exceeds the size of the file".into()
        }
        SafeTensorError::TensorNotFound(name) => format!("tensor `{name}` is missing"),
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's shape and dtype do not match its data offsets".into()
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor `{name}` has data offsets that overlap another tensor or leave a gap")
        }
        SafeTensorError::IoError(e) => format!("it cannot be read ({e})"),
        SafeTensorError::InvalidTensorView(dtype, shape, n) => format!(
            "a tensor of {dtype} values and shape {} cannot be made of {n} bytes",
            dims(&shape)
        ),
        SafeTensorError::MetadataIncompleteBuffer => {
            "the tensors' data does not exactly fill the file after the header".into()
        }
        SafeTensorError::ValidationOverflow => {
            "a tensor's shape has too many values to address".into()
        }
        SafeTensorError::MisalignedSlice => "a tensor's values do not fill whole bytes".into(),
    }
}

/// A JSON object's entries in file order, duplicates kept (a `serde_json`
/// map would keep only the last of two equal keys).
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(Object)
    }
}

// ---------------------------------------------------------------- helpers --

/// Little-endian words of `N` bytes (the data's length is a multiple of `N`,
/// checked against shape and dtype before this runs).
fn le<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| {
        let mut word = [0u8; N];
        word.copy_from_slice(c);
        word
    })
}

/// The number of values of a shape (`None` on overflow).
fn count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Bytes per value of the dtypes ebm reads and writes.
fn width(dtype: Dtype) -> usize {
    dtype.bitsize() / 8
}

fn dims(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A byte count for people: exact below 10 000, else in decimal units.
fn size(n: u64) -> String {
    if n < 10_000 {
        return format!("{n} byte{}", if n == 1 { "" } else { "s" });
    }
    let units = ["KB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with every dtype, a scalar, empty tensors and metadata.
    fn sample() -> TensorFile {
        TensorFile::new()
            .with_tensor(
                "W",
                Tensor::f32(vec![2, 3], vec![1.0, -2.5, 0.1, 3e38, -0.0, 1e-45]),
            )
            .with_tensor("b", Tensor::f64(vec![3], vec![0.1, f64::INFINITY, -1e-310]))
            .with_tensor("it", Tensor::scalar_u64(u64::MAX))
            .with_tensor(
                "rng.counter",
                Tensor::i64(vec![2], vec![i64::MIN, i64::MAX]),
            )
            .with_tensor("empty", Tensor::f64(vec![0], vec![]))
            .with_tensor("empty2d", Tensor::u64(vec![2, 0], vec![]))
            .with_metadata("config", "{\"lr\": 0.01, \"name\": \"ünï\\\"\"}")
            .with_metadata("ebm_version", "0.1.0")
    }

    fn bits(file: &TensorFile) -> Vec<(String, Vec<usize>, Vec<u64>)> {
        file.tensors
            .iter()
            .map(|(n, t)| {
                let b = match &t.data {
                    TensorData::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
                    TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
                    TensorData::I64(v) => v.iter().map(|&x| x as u64).collect(),
                    TensorData::U64(v) => v.clone(),
                };
                (n.clone(), t.shape.clone(), b)
            })
            .collect()
    }

    #[test]
    fn round_trip_every_dtype_scalar_empty_and_metadata() {
        let file = sample();
        let bytes = to_bytes(&file).unwrap();
        let back = from_bytes(&bytes).unwrap();
        assert_eq!(back, file);
        assert_eq!(bits(&back), bits(&file));
        // NaN payloads survive bit for bit.
        let nan = TensorFile::new()
            .with_tensor("n", Tensor::f32(vec![1], vec![f32::from_bits(0x7fc0_1234)]))
            .with_tensor(
                "m",
                Tensor::f64(vec![1], vec![f64::from_bits(0xfff8_0000_0000_0001)]),
            );
        let back = from_bytes(&to_bytes(&nan).unwrap()).unwrap();
        assert_eq!(bits(&back), bits(&nan));
        // No tensors at all.
        let meta_only = TensorFile::new().with_metadata("k", "v");
        assert_eq!(
            from_bytes(&to_bytes(&meta_only).unwrap()).unwrap(),
            meta_only
        );
        assert_eq!(
            from_bytes(&to_bytes(&TensorFile::new()).unwrap()).unwrap(),
            TensorFile::new()
        );
    }

    #[test]
    fn encoding_is_deterministic_and_aligned() {
        let a = to_bytes(&sample()).unwrap();
        assert_eq!(a, to_bytes(&sample()).unwrap());
        // Insertion order does not matter.
        let mut reversed = TensorFile::new();
        for (k, v) in sample().metadata.into_iter().rev() {
            reversed.metadata.insert(k, v);
        }
        for (k, v) in sample().tensors.into_iter().rev() {
            reversed.tensors.insert(k, v);
        }
        assert_eq!(a, to_bytes(&reversed).unwrap());
        let n = u64::from_le_bytes(a[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header = std::str::from_utf8(&a[8..8 + n]).unwrap();
        assert!(
            header.starts_with("{\"__metadata__\":{\"config\":"),
            "{header}"
        );
        // 8-byte values first (U64, I64, F64), then F32: every tensor aligned.
        let order: Vec<usize> = ["\"it\"", "\"rng.counter\"", "\"b\"", "\"W\""]
            .iter()
            .map(|k| header.find(k).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{header}");
    }

    #[test]
    fn matches_the_reference_writer_and_reader() {
        use ::safetensors::tensor::View;
        use std::borrow::Cow;
        struct Ref(Dtype, Vec<usize>, Vec<u8>);
        impl View for &Ref {
            fn dtype(&self) -> Dtype {
                self.0
            }
            fn shape(&self) -> &[usize] {
                &self.1
            }
            fn data(&self) -> Cow<'_, [u8]> {
                Cow::Borrowed(&self.2)
            }
            fn data_len(&self) -> usize {
                self.2.len()
            }
        }
        // With at most one metadata entry the crate's output is
        // deterministic, and ours is byte-identical to it.
        let mut file = sample();
        file.metadata.remove("config");
        let refs: Vec<(String, Ref)> = file
            .tensors
            .iter()
            .map(|(n, t)| {
                let mut raw = Vec::new();
                t.data.append_le(&mut raw);
                (n.clone(), Ref(t.data.dtype(), t.shape.clone(), raw))
            })
            .collect();
        let meta: std::collections::HashMap<String, String> =
            file.metadata.clone().into_iter().collect();
        let theirs =
            ::safetensors::serialize(refs.iter().map(|(n, r)| (n.as_str(), r)), Some(meta))
                .unwrap();
        assert_eq!(to_bytes(&file).unwrap(), theirs);
        let no_meta = TensorFile {
            metadata: BTreeMap::new(),
            ..file
        };
        let theirs =
            ::safetensors::serialize(refs.iter().map(|(n, r)| (n.as_str(), r)), None).unwrap();
        assert_eq!(to_bytes(&no_meta).unwrap(), theirs);
        // The crate reads what we write, metadata included.
        let ours = to_bytes(&sample()).unwrap();
        let (_, m) = SafeTensors::read_metadata(&ours).unwrap();
        let m: BTreeMap<String, String> = m.metadata().clone().unwrap().into_iter().collect();
        assert_eq!(m, sample().metadata);
    }

    /// A file with a hand-written header (padded to 8 bytes) and data.
    fn handmade(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !h.len().is_multiple_of(8) {
            h.push(' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend(h.as_bytes());
        out.extend(data);
        out
    }

    /// `bytes` must be refused with a message containing `expected`.
    fn check(what: &str, bytes: &[u8], expected: &str) {
        match from_bytes(bytes) {
            Ok(f) => panic!("{what}: accepted as {f:?}"),
            Err(DataError::Malformed(m)) => {
                assert!(m.contains(expected), "{what}: `{m}` lacks `{expected}`");
                assert!(m.starts_with("the data"), "{what}: `{m}`");
            }
            Err(e) => panic!("{what}: {e:?}"),
        }
    }

    #[test]
    fn corrupt_inputs_are_clear_errors() {
        let good = to_bytes(&sample()).unwrap();
        let mut huge = 8_000_000_000u64.to_le_bytes().to_vec();
        huge.resize(120, b' ');
        let mut over = 200u64.to_le_bytes().to_vec();
        over.resize(205, b' ');
        let f32x2 = [0u8; 8];
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "is not a safetensors file: it is empty"),
            ("7 bytes", vec![1; 7], "it has 7 bytes, fewer than the 8"),
            (
                "header length beyond the file",
                huge,
                "the header length 8 GB exceeds the file size 120 bytes",
            ),
            (
                "header length beyond the rest",
                over,
                "the header length 200 bytes exceeds the 197 bytes that follow it",
            ),
            (
                "header not JSON",
                handmade("hello", &[]),
                "the header is not JSON",
            ),
            (
                "header a list",
                handmade("[1, 2]", &[]),
                "the header is not a JSON object",
            ),
            (
                "header not UTF-8",
                b"\x08\0\0\0\0\0\0\0\xff\xfe{}    ".to_vec(),
                "not UTF-8",
            ),
            (
                "truncated data",
                good[..good.len() - 5].to_vec(),
                "is truncated: tensor `W` needs data bytes",
            ),
            (
                "trailing bytes",
                [good.clone(), vec![0; 3]].concat(),
                "3 bytes follow the last",
            ),
            (
                "overlapping offsets",
                handmade(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    &f32x2,
                ),
                "tensor `b` (data bytes 4..8) overlaps tensor `a`, which ends at byte 8",
            ),
            (
                "gap between tensors",
                handmade(
                    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}}"#,
                    &f32x2,
                ),
                "data bytes 4..8 belong to no tensor (they come before tensor `b`)",
            ),
            (
                "offsets out of range",
                handmade(
                    r#"{"a":{"dtype":"F64","shape":[512],"data_offsets":[0,4096]}}"#,
                    &[0; 1200],
                ),
                "is truncated: tensor `a` needs data bytes 0..4096 but only 1200 follow the header",
            ),
            (
                "offsets backwards",
                handmade(
                    r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
                    &[],
                ),
                "data offsets 4..0, which end before they start",
            ),
            (
                "unknown dtype",
                handmade(
                    r#"{"a":{"dtype":"XYZ","shape":[],"data_offsets":[0,4]}}"#,
                    &[0; 4],
                ),
                "tensor `a` has the unknown dtype `XYZ`",
            ),
            (
                "unsupported dtype",
                handmade(
                    r#"{"it":{"dtype":"BF16","shape":[],"data_offsets":[0,2]}}"#,
                    &[0; 2],
                ),
                "the data: tensor `it` holds BF16 values; ebm reads F32, F64, I64, U64",
            ),
            (
                "sub-byte dtype",
                handmade(
                    r#"{"q":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
                    &[0; 2],
                ),
                "the data: tensor `q` holds F4 values",
            ),
            (
                "shape/data mismatch",
                handmade(
                    r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                    &f32x2,
                ),
                "tensor `a` has shape [3] of F32, which takes 12 bytes, but its data offsets 0..8 span 8",
            ),
            (
                "shape overflow",
                handmade(
                    r#"{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                    &f32x2,
                ),
                "too many values to address",
            ),
            (
                "negative dimension",
                handmade(
                    r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
                    &f32x2,
                ),
                "`shape` that is not a list of sizes",
            ),
            (
                "three offsets",
                handmade(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}"#,
                    &f32x2,
                ),
                "not two byte offsets",
            ),
            (
                "missing field",
                handmade(r#"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#, &f32x2),
                "tensor `a` has no `shape`",
            ),
            (
                "tensor not an object",
                handmade(r#"{"a":[1]}"#, &[]),
                "tensor `a` must be described by an object",
            ),
            (
                "duplicate names",
                handmade(
                    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                    &f32x2,
                ),
                "the header names `a` twice",
            ),
            (
                "empty name",
                handmade(
                    r#"{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                    &f32x2,
                ),
                "a tensor with an empty name",
            ),
            (
                "metadata not strings",
                handmade(r#"{"__metadata__":{"lr":0.1}}"#, &[]),
                "metadata entry `lr` must be a string, found a number",
            ),
            (
                "metadata a list",
                handmade(r#"{"__metadata__":["x"]}"#, &[]),
                "must map names to strings, found a list",
            ),
        ];
        for (what, bytes, expected) in &cases {
            check(what, bytes, expected);
        }
        // A header over the format's 100 MB limit is refused unread.
        let mut big = vec![0u8; 100_000_100];
        big[..8].copy_from_slice(&100_000_001u64.to_le_bytes());
        check(
            "huge header",
            &big,
            "exceeds the safetensors limit of 100 MB",
        );
    }

    #[test]
    fn null_metadata_and_extra_fields_are_read() {
        let bytes = handmade(
            r#"{"__metadata__":null,"a":{"dtype":"I64","shape":[],"data_offsets":[0,8],"note":1}}"#,
            &(-3i64).to_le_bytes(),
        );
        let f = from_bytes(&bytes).unwrap();
        assert!(f.metadata.is_empty());
        assert_eq!(f.get_i64("a").unwrap(), (vec![], vec![-3]));
    }

    #[test]
    fn invalid_files_are_refused_before_encoding() {
        let cases: Vec<(TensorFile, &str)> = vec![
            (
                TensorFile::new().with_tensor("W", Tensor::f32(vec![2, 3], vec![0.0; 5])),
                "tensor `W` has shape [2, 3] (6 values) but holds 5 values",
            ),
            (
                TensorFile::new().with_tensor("s", Tensor::f64(vec![], vec![])),
                "tensor `s` has shape [] (1 values) but holds 0 values",
            ),
            (
                TensorFile::new().with_tensor("", Tensor::scalar_u64(1)),
                "a tensor name must not be empty",
            ),
            (
                TensorFile::new().with_tensor("__metadata__", Tensor::scalar_u64(1)),
                "is reserved for the file's metadata",
            ),
            (
                TensorFile::new().with_tensor("x", Tensor::u64(vec![usize::MAX, 3], vec![])),
                "too many values to store",
            ),
        ];
        for (file, expected) in cases {
            match to_bytes(&file) {
                Err(DataError::Malformed(m)) => assert!(m.contains(expected), "`{m}`"),
                other => panic!("{expected}: {other:?}"),
            }
        }
    }

    #[test]
    fn typed_getters() {
        let f = sample();
        let (shape, w) = f.get_f64("W").unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(w[2], f64::from(0.1f32)); // exact widening, not 0.1
        assert_eq!(f.get_u64("it").unwrap(), (vec![], vec![u64::MAX]));
        assert_eq!(
            f.get_i64("rng.counter").unwrap().1,
            vec![i64::MIN, i64::MAX]
        );
        match f.get_f64("w") {
            Err(DataError::NoKey { key, available }) => {
                assert_eq!(key, "w");
                assert_eq!(
                    available,
                    ["W", "b", "empty", "empty2d", "it", "rng.counter"]
                );
            }
            other => panic!("{other:?}"),
        }
        let msg = |e: DataError| e.to_string();
        assert_eq!(
            msg(f.get_f64("it").unwrap_err()),
            "tensor `it` holds U64 values where floating-point (F32 or F64) values are expected"
        );
        assert!(msg(f.get_u64("b").unwrap_err()).contains("holds F64 values"));
        assert!(msg(f.get_i64("W").unwrap_err()).contains("holds F32 values"));
        assert!(msg(f.get_u64("rng.counter").unwrap_err()).contains("negative I64"));
        assert!(msg(f.get_i64("it").unwrap_err()).contains("too large for I64"));
        let small = TensorFile::new()
            .with_tensor("n", Tensor::i64(vec![2], vec![0, 7]))
            .with_tensor("u", Tensor::u64(vec![1], vec![9]));
        assert_eq!(small.get_u64("n").unwrap().1, vec![0, 7]);
        assert_eq!(small.get_i64("u").unwrap().1, vec![9]);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(120), "120 bytes");
        assert_eq!(size(8_000_000_000), "8 GB");
        assert_eq!(size(100_000_000), "100 MB");
        assert_eq!(size(12_345), "12.3 KB");
        assert_eq!(size(u64::MAX), "18.4 EB");
    }

    /// Fixed-seed mutations of a valid file (byte flips, truncations,
    /// insertions, header-length rewrites) never panic, and whatever is
    /// accepted encodes again.
    #[test]
    fn mutated_files_never_panic() {
        let good = to_bytes(&sample()).unwrap();
        let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let mut state = 0x5eed_u64;
        let mut next = move || {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut accepted = 0;
        for round in 0..600 {
            let mut bytes = good.clone();
            let edits = 1 + next() % 4;
            for _ in 0..edits {
                let r = next();
                match round % 5 {
                    // A digit of the header (a shape or offset) changed.
                    1 => {
                        let digits: Vec<usize> = (8..(8 + n).min(bytes.len()))
                            .filter(|&i| bytes[i].is_ascii_digit())
                            .collect();
                        if let Some(&at) = digits.get((r as usize >> 8) % digits.len().max(1)) {
                            bytes[at] = b'0' + (r % 10) as u8;
                        }
                    }
                    // Any byte of the header.
                    0 => {
                        let at = 8 + (r as usize >> 8) % n;
                        if at < bytes.len() {
                            bytes[at] = match r % 3 {
                                0 => bytes[at] ^ (1 << ((r >> 4) % 8)),
                                1 => b"0123456789,[]{}\":"[(r >> 4) as usize % 17],
                                _ => (r >> 16) as u8,
                            };
                        }
                    }
                    2 => {
                        let at = (r as usize >> 8) % bytes.len().max(1);
                        bytes.truncate(at);
                    }
                    3 => {
                        let at = (r as usize >> 8) % (bytes.len() + 1);
                        bytes.insert(at, (r >> 40) as u8);
                    }
                    _ => {
                        let len = (r >> 8) % (bytes.len() as u64 + 16);
                        if bytes.len() >= 8 {
                            bytes[..8].copy_from_slice(&len.to_le_bytes());
                        }
                    }
                }
            }
            if let Ok(f) = from_bytes(&bytes) {
                accepted += 1;
                to_bytes(&f).unwrap();
            }
        }
        assert!(accepted < 600);
    }
}
