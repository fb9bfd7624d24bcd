//! The model file (`.ebmc`): compiled energies and models that outlive the
//! process that built them. One file holds, for each definition, its
//! verified IR graph (the `ir::serial` encoding) and signature; the values
//! of every parameter those graphs read (a safetensors blob under the ebm
//! names); the source text it came from with its hash; the compiler
//! version; provenance; and a checksum over everything.
//!
//! This module owns the format and its consistency rules, nothing more: it
//! sits beside `data`, below the runtime, so that `sema` can import
//! definitions from a model file and the runtime, the API, the C ABI and the
//! CLI can all load one. Binding a file's parameters to a `ParamStore` and
//! compiling its graphs is `api::Artifact`'s business.
//!
//! Byte layout (integers little-endian):
//!
//! ```text
//! magic     8 bytes   89 'E' 'B' 'M' 'C' 0D 0A 1A   (PNG-style: text-mode mangling shows)
//! version   u32       FORMAT_VERSION
//! sections  u32 n, then n × { tag: u8, len: u64, len bytes }, in this order:
//!             'H' header (JSON, `Header`)
//!             'S' source text (UTF-8)
//!             'P' parameters (safetensors, F64 tensors under ebm names)
//!             'G' one graph per header definition, in the header's order
//! checksum  u64       FNV-1a-64 of every byte before it
//! ```
//!
//! Every byte is covered by the checksum, and FNV-1a maps each input byte
//! through a bijection of its state, so any single changed byte is caught.
//! The reader never panics, never allocates more than the file's size
//! warrants, and refuses anything the writer cannot produce. Version policy:
//! the reader accepts every version from 1 to its own; a newer file is
//! refused with both numbers named.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::safetensors::{self as st, Tensor, TensorData, TensorFile};
use crate::ir::serial::{self, SerialError, fnv1a64};
use crate::ir::{BatchReduce, Graph, InputKind, numel};

/// The file signature.
pub const MAGIC: &[u8; 8] = b"\x89EBMC\r\n\x1a";
/// The layout version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;
/// The largest model file read.
pub const MAX_MODEL_BYTES: u64 = 4 << 30;
/// The extension `ebm build` suggests (files are recognised by magic, not name).
pub const EXTENSION: &str = "ebmc";

const SECTION_HEADER: u8 = b'H';
const SECTION_SOURCE: u8 = b'S';
const SECTION_PARAMS: u8 = b'P';
const SECTION_GRAPH: u8 = b'G';

/// Why a model file could not be written or read.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ArtifactError {
    #[error("{0}")]
    Io(String),
    #[error("this is not an ebm model file: it does not start with the ebm model signature")]
    NotAModel,
    #[error(
        "this model file has format version {found}; this build of ebm ({compiler}) reads versions 1 to {supported}: use a newer ebm"
    )]
    NewerVersion {
        found: u32,
        supported: u32,
        compiler: String,
    },
    #[error("the model file is truncated: it ends at byte {len}, but more bytes were needed")]
    Truncated { len: usize },
    #[error(
        "the model file is corrupt: its checksum does not match its contents (a changed or damaged byte)"
    )]
    Checksum,
    #[error("the model file is malformed: {0}")]
    Malformed(String),
    #[error("the graph of `{name}` in the model file is unreadable: {error}")]
    Graph { name: String, error: SerialError },
    #[error("the model file is inconsistent: {0}")]
    Inconsistent(String),
    #[error("{0}")]
    Request(String),
}

/// Energy (a scalar per sample) or model (a tensor per sample).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Energy,
    Model,
}

/// A definition's signature, as the header records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefSig {
    pub name: String,
    pub kind: Kind,
    /// The shape of `x`.
    pub x: Vec<usize>,
    /// The shape of `c`, for conditional definitions.
    pub c: Option<Vec<usize>>,
    /// `[]` for energies; the model's output shape.
    pub output: Vec<usize>,
    /// The parameters the graph reads, in its input order.
    pub params: Vec<String>,
}

/// The scaling the parameters were trained under (x' = (x − shift)·mul),
/// kept for information: the graphs already apply it, so every definition
/// in a model file takes points in the data's own coordinates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    pub shift: Vec<f64>,
    pub mul: Vec<f64>,
}

/// The JSON header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// `ebm 0.1.0`: the compiler that wrote the file.
    pub compiler: String,
    /// The source file's path as it was given to the builder.
    pub source_path: String,
    /// `fnv1a64:` and 16 hex digits, of the source text.
    pub source_hash: String,
    pub defs: Vec<DefSig>,
    pub scale: Option<Scale>,
    /// Free-form facts: where the parameters came from, the training run.
    pub provenance: BTreeMap<String, String>,
}

/// One parameter's values.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamValue {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// A model file in memory: always consistent (every constructor checks).
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The format version it was read with (`FORMAT_VERSION` when built).
    version: u32,
    header: Header,
    source: String,
    params: Vec<ParamValue>,
    graphs: Vec<Graph>,
}

/// The compiler's name and version, as headers record it.
pub fn compiler_version() -> String {
    format!("ebm {}", env!("CARGO_PKG_VERSION"))
}

/// The hash recorded for a source text.
pub fn source_hash(text: &str) -> String {
    format!("fnv1a64:{:016x}", fnv1a64(text.as_bytes()))
}

impl Artifact {
    /// Assembles a model file from definition graphs (as `lower` builds
    /// them: inputs `x`, optionally `c`, then parameters; one output
    /// `energy` or `out`) and the parameter values they read. Checks that
    /// everything fits together; `params` may hold more than the graphs
    /// read (those are dropped).
    pub fn new(
        source_path: &str,
        source: &str,
        graphs: Vec<Graph>,
        params: &[ParamValue],
        scale: Option<Scale>,
        provenance: BTreeMap<String, String>,
    ) -> Result<Artifact, ArtifactError> {
        let mut defs = Vec::with_capacity(graphs.len());
        for g in &graphs {
            defs.push(signature_of(g).map_err(ArtifactError::Request)?);
        }
        let mut kept: Vec<ParamValue> = Vec::new();
        for sig in &defs {
            for name in &sig.params {
                if kept.iter().any(|p| &p.name == name) {
                    continue;
                }
                let p = params.iter().find(|p| &p.name == name).ok_or_else(|| {
                    ArtifactError::Request(format!(
                        "`{}` reads parameter `{name}`, which has no value",
                        sig.name
                    ))
                })?;
                kept.push(p.clone());
            }
        }
        let artifact = Artifact {
            version: FORMAT_VERSION,
            header: Header {
                compiler: compiler_version(),
                source_path: source_path.to_string(),
                source_hash: source_hash(source),
                defs,
                scale,
                provenance,
            },
            source: source.to_string(),
            params: kept,
            graphs,
        };
        artifact.check().map_err(|e| match e {
            ArtifactError::Inconsistent(m) => ArtifactError::Request(m),
            other => other,
        })?;
        Ok(artifact)
    }

    /// The format version the file was written in.
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn params(&self) -> &[ParamValue] {
        &self.params
    }
    /// The definitions' signatures, in file order.
    pub fn defs(&self) -> &[DefSig] {
        &self.header.defs
    }

    /// The signature and graph of the definition `name`, or an error naming
    /// the ones there are.
    pub fn def(&self, name: &str) -> Result<(&DefSig, &Graph), ArtifactError> {
        match self.header.defs.iter().position(|d| d.name == name) {
            Some(i) => Ok((&self.header.defs[i], &self.graphs[i])),
            None => {
                let names: Vec<&str> = self.header.defs.iter().map(|d| d.name.as_str()).collect();
                let mut msg = format!("the model file has no definition `{name}`");
                match crate::diag::suggest(name, names.iter().copied()) {
                    Some(s) => msg.push_str(&format!("; did you mean `{s}`?")),
                    None => msg.push_str(&format!("; it holds: {}", names.join(", "))),
                }
                Err(ArtifactError::Request(msg))
            }
        }
    }

    /// The number of parameter values stored.
    pub fn param_count(&self) -> usize {
        self.params.iter().map(|p| p.data.len()).sum()
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        let mut sections: Vec<(u8, Vec<u8>)> = vec![
            (SECTION_HEADER, header),
            (SECTION_SOURCE, self.source.as_bytes().to_vec()),
            (SECTION_PARAMS, params_bytes(&self.params)),
        ];
        sections.extend(
            self.graphs
                .iter()
                .map(|g| (SECTION_GRAPH, serial::encode(g))),
        );
        out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
        for (tag, bytes) in sections {
            out.push(tag);
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        let sum = fnv1a64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Writes the file atomically (a temporary file, then a rename).
    pub fn write(&self, path: &Path) -> Result<(), ArtifactError> {
        crate::data::atomic::write_atomic(path, &self.to_bytes()).map_err(ArtifactError::Io)
    }

    /// Reads a model file (a regular file of at most [`MAX_MODEL_BYTES`]).
    pub fn read(path: &Path) -> Result<Artifact, ArtifactError> {
        let bytes = crate::data::read_regular(path, MAX_MODEL_BYTES)
            .map_err(|e| ArtifactError::Io(e.to_string()))?;
        Artifact::from_bytes(&bytes)
    }

    /// Decodes a model file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        let head = &bytes[..bytes.len().min(MAGIC.len())];
        if head != &MAGIC[..head.len()] || bytes.is_empty() {
            return Err(ArtifactError::NotAModel);
        }
        let truncated = || ArtifactError::Truncated { len: bytes.len() };
        let version = bytes
            .get(MAGIC.len()..MAGIC.len() + 4)
            .ok_or_else(truncated)?;
        let version = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
        if version == 0 {
            return Err(ArtifactError::Malformed("its format version is 0".into()));
        }
        if version > FORMAT_VERSION {
            return Err(ArtifactError::NewerVersion {
                found: version,
                supported: FORMAT_VERSION,
                compiler: compiler_version(),
            });
        }
        let body_len = bytes
            .len()
            .checked_sub(8)
            .filter(|&n| n >= MAGIC.len() + 8)
            .ok_or_else(truncated)?;
        let (body, sum) = bytes.split_at(body_len);
        let sum = u64::from_le_bytes(sum.try_into().map_err(|_| truncated())?);
        if sum != fnv1a64(body) {
            // A file cut short also fails here; say so when its sections
            // promise more bytes than there are.
            return Err(match split_sections(body) {
                Err(e @ ArtifactError::Truncated { .. }) => e,
                _ => ArtifactError::Checksum,
            });
        }
        let sections = split_sections(body)?;
        Artifact::from_sections(version, sections)
    }

    fn from_sections(version: u32, sections: Vec<(u8, &[u8])>) -> Result<Artifact, ArtifactError> {
        let malformed = |m: String| ArtifactError::Malformed(m);
        let tags: Vec<u8> = sections.iter().map(|s| s.0).collect();
        let fixed = [SECTION_HEADER, SECTION_SOURCE, SECTION_PARAMS];
        if tags.len() < fixed.len()
            || tags[..fixed.len()] != fixed
            || tags[fixed.len()..].iter().any(|&t| t != SECTION_GRAPH)
        {
            return Err(malformed(
                "its sections are not header, source, parameters, then graphs".into(),
            ));
        }
        let header: Header = serde_json::from_slice(sections[0].1)
            .map_err(|e| malformed(format!("its header is not valid: {e}")))?;
        let source = std::str::from_utf8(sections[1].1)
            .map_err(|_| malformed("its source text is not UTF-8".into()))?
            .to_string();
        let params = params_of(sections[2].1)?;
        let graph_bytes = &sections[fixed.len()..];
        if graph_bytes.len() != header.defs.len() {
            return Err(ArtifactError::Inconsistent(format!(
                "the header lists {} definitions but the file holds {} graphs",
                header.defs.len(),
                graph_bytes.len()
            )));
        }
        let mut graphs = Vec::with_capacity(graph_bytes.len());
        for (sig, (_, bytes)) in header.defs.iter().zip(graph_bytes) {
            let g = serial::decode(bytes).map_err(|error| ArtifactError::Graph {
                name: sig.name.clone(),
                error,
            })?;
            graphs.push(g);
        }
        let artifact = Artifact {
            version,
            header,
            source,
            params,
            graphs,
        };
        artifact.check()?;
        Ok(artifact)
    }

    /// The rules every model file obeys: names unique; each graph named as
    /// its definition, with the signature the header gives; every parameter
    /// a graph reads stored once, with its shape; no other parameters.
    fn check(&self) -> Result<(), ArtifactError> {
        let bad = |m: String| Err(ArtifactError::Inconsistent(m));
        if self.header.defs.is_empty() {
            return bad("it holds no definitions".into());
        }
        for (i, (sig, g)) in self.header.defs.iter().zip(&self.graphs).enumerate() {
            if self.header.defs[..i].iter().any(|d| d.name == sig.name) {
                return bad(format!("`{}` is defined twice", sig.name));
            }
            let found = signature_of(g).map_err(ArtifactError::Inconsistent)?;
            if &found != sig {
                return bad(format!(
                    "the graph of `{}` does not have the signature its header gives",
                    sig.name
                ));
            }
        }
        for (i, p) in self.params.iter().enumerate() {
            if self.params[..i].iter().any(|q| q.name == p.name) {
                return bad(format!("parameter `{}` is stored twice", p.name));
            }
            let used = self.graphs.iter().find_map(|g| {
                g.inputs()
                    .iter()
                    .find(|d| d.kind == InputKind::Shared && d.name == p.name)
            });
            match used {
                None => return bad(format!("parameter `{}` is read by no graph", p.name)),
                Some(d) if d.shape != p.shape => {
                    return bad(format!(
                        "parameter `{}` is stored with shape {:?}, but a graph reads it with shape {:?}",
                        p.name, p.shape, d.shape
                    ));
                }
                Some(_) => {}
            }
        }
        for (sig, g) in self.header.defs.iter().zip(&self.graphs) {
            for d in g.inputs().iter().filter(|d| d.kind == InputKind::Shared) {
                if !self.params.iter().any(|p| p.name == d.name) {
                    return bad(format!(
                        "`{}` reads parameter `{}`, which is not stored",
                        sig.name, d.name
                    ));
                }
            }
        }
        if let Some(s) = &self.header.scale
            && s.shift.len() != s.mul.len()
        {
            return bad("the scaling's shift and multiplier differ in length".into());
        }
        Ok(())
    }
}

/// `graph` reading x' = (x − shift)·mul where it read x: the scaling a
/// trained run's parameters expect, moved inside the definition so that
/// the model file's definitions take points in the data's coordinates.
pub fn scaled_input(graph: &Graph, s: &Scale) -> Result<Graph, String> {
    let shape = graph
        .inputs()
        .iter()
        .find(|d| d.kind == InputKind::Sample && d.name == "x")
        .map(|d| d.shape.clone())
        .ok_or_else(|| format!("`{}` has no input `x`", graph.name))?;
    if numel(&shape) != s.shift.len() || s.mul.len() != s.shift.len() {
        return Err(format!(
            "the parameters were trained on data of {} columns, but `{}` takes x of shape {shape:?}",
            s.shift.len(),
            graph.name
        ));
    }
    let mut g = Graph::new(graph.name.clone());
    let x = g.input_node("x", shape.clone(), InputKind::Sample);
    let shift = g.constant_tensor(shape.clone(), s.shift.clone());
    let mul = g.constant_tensor(shape.clone(), s.mul.clone());
    let centred = g.sub(x, shift);
    let scaled = g.mul(centred, mul);
    let outs = crate::ir::inline(&mut g, graph, |g, d| match (d.kind, d.name.as_str()) {
        (InputKind::Sample, "x") => scaled,
        _ => g.input_node(d.name.clone(), d.shape.clone(), d.kind),
    });
    for (o, node) in graph.outputs.iter().zip(outs) {
        g.add_output(o.name.clone(), node, o.reduce);
    }
    Ok(g)
}

/// Whether the file at `path` starts with the model-file signature. Only a
/// regular file is opened (a FIFO would block); anything unreadable is
/// "not a model", left for the caller's own reader to report.
pub fn is_model_file(path: &Path) -> bool {
    use std::io::Read;
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == MAGIC)
}

/// The signature of a definition graph as `lower` builds it, or why it is
/// not one.
fn signature_of(g: &Graph) -> Result<DefSig, String> {
    let name = &g.name;
    let mut x = None;
    let mut c = None;
    let mut params = Vec::new();
    for d in g.inputs() {
        match (d.kind, d.name.as_str()) {
            (InputKind::Sample, "x") if x.is_none() => x = Some(d.shape.to_vec()),
            (InputKind::Sample, "c") if c.is_none() => c = Some(d.shape.to_vec()),
            (InputKind::Sample, other) => {
                return Err(format!(
                    "`{name}` has a sample input `{other}`; definitions take only `x` and `c`"
                ));
            }
            (InputKind::Shared, p) => params.push(p.to_string()),
        }
    }
    let x = x.ok_or_else(|| format!("`{name}` has no input `x`"))?;
    let [out] = &g.outputs[..] else {
        return Err(format!("`{name}` must have exactly one output"));
    };
    if out.reduce != BatchReduce::PerSample {
        return Err(format!("`{name}`'s output is not per sample"));
    }
    let output = g.shape(out.node).to_vec();
    let kind = match out.name.as_str() {
        "energy" if output.is_empty() => Kind::Energy,
        "out" => Kind::Model,
        other => {
            return Err(format!(
                "`{name}`'s output is `{other}`; a definition has `energy` (a scalar) or `out`"
            ));
        }
    };
    Ok(DefSig {
        name: name.clone(),
        kind,
        x,
        c,
        output,
        params,
    })
}

fn params_bytes(params: &[ParamValue]) -> Vec<u8> {
    let mut f = TensorFile::new().with_metadata("ebm.format", "ebm-params-1");
    for p in params {
        f = f.with_tensor(p.name.clone(), Tensor::f64(p.shape.clone(), p.data.clone()));
    }
    // invariant: every tensor is F64 with numel(shape) values (checked by `check`).
    st::to_bytes(&f).unwrap_or_default()
}

fn params_of(bytes: &[u8]) -> Result<Vec<ParamValue>, ArtifactError> {
    let f = st::from_bytes(bytes)
        .map_err(|e| ArtifactError::Malformed(format!("its parameter section: {e}")))?;
    let mut out = Vec::with_capacity(f.tensors.len());
    for (name, t) in &f.tensors {
        let TensorData::F64(data) = &t.data else {
            return Err(ArtifactError::Malformed(format!(
                "parameter `{name}` is stored as {}, not F64",
                t.data.dtype_name()
            )));
        };
        if numel(&t.shape) != data.len() {
            return Err(ArtifactError::Malformed(format!(
                "parameter `{name}` has {} values for shape {:?}",
                data.len(),
                t.shape
            )));
        }
        out.push(ParamValue {
            name: name.clone(),
            shape: t.shape.clone(),
            data: data.clone(),
        });
    }
    Ok(out)
}

/// Splits the body (everything before the checksum) into its sections.
/// Sections that promise more bytes than there are make the file
/// `Truncated`; anything else out of shape is `Malformed`.
fn split_sections(body: &[u8]) -> Result<Vec<(u8, &[u8])>, ArtifactError> {
    let truncated = || ArtifactError::Truncated {
        len: body.len() + 8,
    };
    let mut pos = MAGIC.len() + 4;
    let count = read_u32(body, &mut pos).ok_or_else(truncated)?;
    // Each section takes at least 9 bytes: a count beyond that cannot fit.
    if count as usize > (body.len() - pos) / 9 {
        return Err(truncated());
    }
    let mut sections = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let tag = *body.get(pos).ok_or_else(truncated)?;
        pos += 1;
        let len = read_u64(body, &mut pos).ok_or_else(truncated)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|n| pos.checked_add(n))
            .filter(|&e| e <= body.len())
            .ok_or_else(truncated)?;
        sections.push((tag, &body[pos..end]));
        pos = end;
    }
    if pos != body.len() {
        return Err(ArtifactError::Malformed(format!(
            "{} unexpected bytes after the last section",
            body.len() - pos
        )));
    }
    Ok(sections)
}

fn read_u32(b: &[u8], pos: &mut usize) -> Option<u32> {
    let v = b.get(*pos..*pos + 4)?;
    *pos += 4;
    Some(u32::from_le_bytes(v.try_into().ok()?))
}

fn read_u64(b: &[u8], pos: &mut usize) -> Option<u64> {
    let v = b.get(*pos..*pos + 8)?;
    *pos += 8;
    Some(u64::from_le_bytes(v.try_into().ok()?))
}
