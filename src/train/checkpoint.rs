//! Checkpoints and parameter files, both safetensors.
//!
//! * `params.safetensors`: each trained parameter under its ebm name
//!   (language reference §8), F64, so PyTorch's and NumPy's `safetensors`
//!   load it as it is; the data scaling the energy was trained under is in
//!   the metadata (`ebm.scale.shift`, `ebm.scale.mul`), never a tensor.
//! * `checkpoint.safetensors`: the parameters (`param.NAME`), the optimiser
//!   state (`optim.m.NAME`, `optim.v.NAME`, `ema.NAME`), the replay buffer
//!   (`buffer`, `buffer.seen`), the counters (`state`: iteration, optimiser
//!   step, rollbacks; `lr_scale`) and, in the metadata, the run's own
//!   description (`ebm.run`, opaque here: the caller's configuration, so a
//!   resume needs nothing else). Written atomically; together with the
//!   counter-based randomness of a run, it continues bit for bit.

use std::collections::BTreeMap;
use std::path::Path;

use super::buffer::ReplayBuffer;
use super::optim::OptimState;
use super::{TrainError, TrainState, Trainer};
use crate::data::safetensors::{self as st, Tensor, TensorData, TensorFile};
use crate::data::{DataError, Scaler};
use crate::runtime::ParamStore;

pub const FORMAT: &str = "ebm-checkpoint-1";

fn f64_tensor(shape: Vec<usize>, data: Vec<f64>) -> Tensor {
    Tensor {
        shape,
        data: TensorData::F64(data),
    }
}

/// Parameter names, shapes and values of the trainer's energy.
fn params(t: &Trainer) -> Vec<(String, Vec<usize>, Vec<f64>)> {
    t.param_ids()
        .iter()
        .filter_map(|id| t.energy().store().entry(*id))
        .map(|e| (e.name, e.shape, e.value))
        .collect()
}

/// The trained parameters under their ebm names, with `metadata`.
pub fn params_file(t: &Trainer, metadata: &BTreeMap<String, String>) -> TensorFile {
    let mut tensors = BTreeMap::new();
    for (name, shape, value) in params(t) {
        tensors.insert(name, f64_tensor(shape, value));
    }
    let mut metadata = metadata.clone();
    metadata.insert("ebm.format".into(), "ebm-params-1".into());
    TensorFile { tensors, metadata }
}

/// The exponential moving average of the parameters (when the optimiser
/// keeps one), under the parameters' names: a file `ebm sample --params`
/// reads like `params.safetensors`.
pub fn ema_file(t: &Trainer, metadata: &BTreeMap<String, String>) -> Option<TensorFile> {
    let ema = t.state.optim.ema.as_ref()?;
    let mut tensors = BTreeMap::new();
    for ((name, shape, _), value) in params(t).into_iter().zip(ema) {
        tensors.insert(name, f64_tensor(shape, value.clone()));
    }
    let mut metadata = metadata.clone();
    metadata.insert("ebm.format".into(), "ebm-params-1".into());
    metadata.insert("ebm.ema".into(), "true".into());
    Some(TensorFile { tensors, metadata })
}

/// The whole training state; `run` describes the run for a resume.
pub fn checkpoint_file(t: &Trainer, run: &str, metadata: &BTreeMap<String, String>) -> TensorFile {
    let mut tensors = BTreeMap::new();
    let s = &t.state;
    for (i, (name, shape, value)) in params(t).into_iter().enumerate() {
        let put = |tensors: &mut BTreeMap<String, Tensor>, key: String, v: &[Vec<f64>]| {
            if let Some(v) = v.get(i) {
                tensors.insert(key, f64_tensor(shape.clone(), v.clone()));
            }
        };
        put(&mut tensors, format!("optim.m.{name}"), &s.optim.m);
        put(&mut tensors, format!("optim.v.{name}"), &s.optim.v);
        if let Some(e) = &s.optim.ema {
            put(&mut tensors, format!("ema.{name}"), e);
        }
        tensors.insert(format!("param.{name}"), f64_tensor(shape, value));
    }
    let dim = s.buffer.dim;
    tensors.insert(
        "buffer".into(),
        f64_tensor(vec![s.buffer.rows(), dim], s.buffer.x.clone()),
    );
    tensors.insert(
        "buffer.seen".into(),
        Tensor {
            shape: vec![1],
            data: TensorData::U64(vec![s.buffer.seen]),
        },
    );
    tensors.insert(
        "state".into(),
        Tensor {
            shape: vec![3],
            data: TensorData::U64(vec![s.it as u64, s.optim.t, s.rollbacks]),
        },
    );
    tensors.insert("lr_scale".into(), f64_tensor(vec![1], vec![s.lr_scale]));
    let mut metadata = metadata.clone();
    metadata.insert("ebm.format".into(), FORMAT.into());
    metadata.insert("ebm.run".into(), run.into());
    TensorFile { tensors, metadata }
}

/// Writes a tensor file atomically.
pub fn write(path: &Path, file: &TensorFile) -> Result<(), TrainError> {
    st::write(path, file).map_err(|e| TrainError::Io(e.to_string()))
}

/// A checkpoint read back: its run description and metadata, and the
/// tensors to restore with [`restore`].
pub struct Checkpoint {
    pub run: String,
    pub file: TensorFile,
}

pub fn read(path: &Path) -> Result<Checkpoint, TrainError> {
    let file = st::read(path).map_err(|e| TrainError::Io(e.to_string()))?;
    let bad = |m: String| TrainError::Io(format!("{}: {m}", path.display()));
    match file.metadata.get("ebm.format").map(String::as_str) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(bad(format!(
                "expected an ebm checkpoint ({FORMAT}), found format `{other}`"
            )));
        }
        None => {
            return Err(bad(
                "expected an ebm checkpoint, found a safetensors file without `ebm.format` metadata"
                    .into(),
            ));
        }
    }
    let run = file
        .metadata
        .get("ebm.run")
        .cloned()
        .ok_or_else(|| bad("the checkpoint has no run description (`ebm.run`)".into()))?;
    Ok(Checkpoint { run, file })
}

fn data_err(path: &Path) -> impl Fn(DataError) -> TrainError + '_ {
    move |e| TrainError::Io(format!("{}: {e}", path.display()))
}

/// Puts a checkpoint's parameters into `t`'s store and returns its state.
pub fn restore(path: &Path, c: &Checkpoint, t: &Trainer) -> Result<TrainState, TrainError> {
    let f = &c.file;
    let err = data_err(path);
    let names: Vec<String> = params(t).into_iter().map(|p| p.0).collect();
    let mut m = Vec::new();
    let mut v = Vec::new();
    let mut ema = Vec::new();
    for name in &names {
        let (_, value) = f.get_f64(&format!("param.{name}")).map_err(&err)?;
        t.energy()
            .set_param(name, &value)
            .map_err(|e| TrainError::Io(format!("{}: {e}", path.display())))?;
        m.push(f.get_f64(&format!("optim.m.{name}")).map_err(&err)?.1);
        if !t.state.optim.v.is_empty() {
            v.push(f.get_f64(&format!("optim.v.{name}")).map_err(&err)?.1);
        }
        if t.state.optim.ema.is_some() {
            ema.push(f.get_f64(&format!("ema.{name}")).map_err(&err)?.1);
        }
    }
    let counters = f.get_u64("state").map_err(&err)?.1;
    let [it, step, rollbacks] = counters[..] else {
        return Err(TrainError::Io(format!(
            "{}: `state` must hold 3 counters, found {}",
            path.display(),
            counters.len()
        )));
    };
    let (shape, buffer) = f.get_f64("buffer").map_err(&err)?;
    let dim = t.state.buffer.dim;
    if shape.len() != 2 || shape[1] != dim {
        return Err(TrainError::Io(format!(
            "{}: the buffer has shape {shape:?}, expected [rows, {dim}]",
            path.display()
        )));
    }
    Ok(TrainState {
        it: it as usize,
        optim: OptimState {
            m,
            v,
            t: step,
            ema: t.state.optim.ema.is_some().then_some(ema),
        },
        buffer: ReplayBuffer {
            x: buffer,
            dim,
            seen: f
                .get_u64("buffer.seen")
                .map_err(&err)?
                .1
                .first()
                .copied()
                .unwrap_or(0),
        },
        lr_scale: f
            .get_f64("lr_scale")
            .map_err(&err)?
            .1
            .first()
            .copied()
            .unwrap_or(1.0),
        rollbacks,
    })
}

/// The metadata every file of a run carries: the energy, the compiler
/// version and, for scaled data, the scaling (`ebm.scale.shift`,
/// `ebm.scale.mul` as JSON arrays) that [`load_params`] reads back.
pub fn run_metadata(energy: &str, scale: Option<&Scaler>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("ebm.energy".to_string(), energy.to_string());
    m.insert(
        "ebm.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    if let Some(s) = scale {
        m.insert(SHIFT.to_string(), format!("{:?}", s.shift));
        m.insert(MUL.to_string(), format!("{:?}", s.mul));
    }
    m
}

const SHIFT: &str = "ebm.scale.shift";
const MUL: &str = "ebm.scale.mul";

/// What [`load_params`] set, and the scaling the parameters were trained
/// under (x' = (x − shift)·mul), when the file records one.
pub struct Loaded {
    pub names: Vec<String>,
    pub scale: Option<Scaler>,
}

fn scale_of(f: &TensorFile) -> Option<Scaler> {
    let parse = |key: &str| serde_json::from_str::<Vec<f64>>(f.metadata.get(key)?).ok();
    match (parse(SHIFT), parse(MUL)) {
        (Some(shift), Some(mul)) if shift.len() == mul.len() => Some(Scaler { shift, mul }),
        _ => None,
    }
}

/// Loads a parameter file (`params.safetensors`, a checkpoint, or any
/// safetensors file keyed by ebm names) into `store`: every tensor whose
/// name (or `param.NAME`) is a parameter of the store. Shapes must match.
pub fn load_params(path: &Path, store: &ParamStore) -> Result<Loaded, TrainError> {
    let f = st::read(path).map_err(|e| TrainError::Io(e.to_string()))?;
    let err = data_err(path);
    let mut set = Vec::new();
    for name in store.names() {
        let key = if f.tensors.contains_key(&name) {
            name.clone()
        } else if f.tensors.contains_key(&format!("param.{name}")) {
            format!("param.{name}")
        } else {
            continue;
        };
        let (shape, value) = f.get_f64(&key).map_err(&err)?;
        let want = store
            .id(&name)
            .and_then(|id| store.entry(id))
            .map(|e| e.shape);
        if want.as_deref() != Some(&shape[..]) {
            return Err(TrainError::Io(format!(
                "{}: `{key}` has shape {shape:?}, but the program's `{name}` has shape {:?}",
                path.display(),
                want.unwrap_or_default()
            )));
        }
        store
            .set(&name, &value)
            .map_err(|e| TrainError::Io(e.to_string()))?;
        set.push(name);
    }
    if set.is_empty() {
        let have: Vec<&String> = f.tensors.keys().take(8).collect();
        return Err(TrainError::Io(format!(
            "{}: no tensor names a parameter of this program (the program has {:?}; the file has {have:?})",
            path.display(),
            store.names()
        )));
    }
    Ok(Loaded {
        names: set,
        scale: scale_of(&f),
    })
}

/// One entry of a name map for weights trained elsewhere: the tensor
/// `from` of the file becomes the parameter `to`, transposed when
/// `transpose` (PyTorch's `nn.Linear` stores its weight as [out, in]; ebm's
/// `linear` and `mlp` as [in, out]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub from: String,
    pub to: String,
    pub transpose: bool,
}

/// Parses a name map: `from=to` or `from=to:T` (transpose), separated by
/// commas or newlines; `#` starts a comment.
pub fn parse_map(text: &str) -> Result<Vec<Mapping>, String> {
    let mut out = Vec::new();
    for item in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let Some((from, to)) = item.split_once('=') else {
            return Err(format!(
                "expected `FILE_NAME=EBM_NAME` or `FILE_NAME=EBM_NAME:T`, found `{item}`"
            ));
        };
        let (to, transpose) = match to.trim().strip_suffix(":T") {
            Some(t) => (t, true),
            None => (to.trim(), false),
        };
        let (from, to) = (from.trim(), to.trim());
        if from.is_empty() || to.is_empty() {
            return Err(format!("`{item}` leaves a name empty"));
        }
        if out.iter().any(|m: &Mapping| m.to == to) {
            return Err(format!("`{to}` is mapped twice"));
        }
        out.push(Mapping {
            from: from.to_string(),
            to: to.to_string(),
            transpose,
        });
    }
    if out.is_empty() {
        return Err("the name map is empty".into());
    }
    Ok(out)
}

/// Loads a foreign state dict (a PyTorch `safetensors` file, F32 or F64)
/// into `store` through `map`. Every mapped tensor must exist and, after
/// the transpose, have its parameter's shape; returns the parameters set.
pub fn load_mapped(
    path: &Path,
    store: &ParamStore,
    map: &[Mapping],
) -> Result<Vec<String>, TrainError> {
    let f = st::read(path).map_err(|e| TrainError::Io(e.to_string()))?;
    let bad = |m: String| TrainError::Io(format!("{}: {m}", path.display()));
    let mut set = Vec::new();
    for m in map {
        let Some(entry) = store.id(&m.to).and_then(|id| store.entry(id)) else {
            let hint = crate::diag::suggest(&m.to, store.names().iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_else(|| format!("; the program has {:?}", store.names()));
            return Err(bad(format!(
                "the map names `{}`, which is not a parameter{hint}",
                m.to
            )));
        };
        let (shape, value) = f.get_f64(&m.from).map_err(|e| bad(e.to_string()))?;
        let (shape, value) = if m.transpose {
            let [rows, cols] = shape[..] else {
                return Err(bad(format!(
                    "`{}` has shape {shape:?}; only a matrix can be transposed (`:T`)",
                    m.from
                )));
            };
            let mut t = vec![0.0; value.len()];
            for r in 0..rows {
                for c in 0..cols {
                    t[c * rows + r] = value[r * cols + c];
                }
            }
            (vec![cols, rows], t)
        } else {
            (shape, value)
        };
        if shape != entry.shape {
            let tip = if !m.transpose
                && shape.len() == 2
                && entry.shape.len() == 2
                && shape[0] == entry.shape[1]
            {
                " (a PyTorch nn.Linear weight is [out, in]: add `:T`)"
            } else {
                ""
            };
            return Err(bad(format!(
                "`{}` has shape {shape:?}, but `{}` has shape {:?}{tip}",
                m.from, m.to, entry.shape
            )));
        }
        store
            .set(&m.to, &value)
            .map_err(|e| TrainError::Io(e.to_string()))?;
        set.push(m.to.clone());
    }
    Ok(set)
}
