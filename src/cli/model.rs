//! `ebm build` (a program's definitions and parameter values into a model
//! file) and `ebm info` (what a model file holds). The other commands open
//! model files through [`super::open`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ebm::artifact::{self, Artifact};
use ebm::pipeline::{self, BuildRequest};

use super::{Failure, Result, fail};

/// The flags of `ebm build`.
pub struct BuildFlags {
    pub energies: Vec<String>,
    pub params: Option<PathBuf>,
    /// A name map (`a=b,c=d:T` or a file of such lines): `--params` is then
    /// a foreign state dict (PyTorch) read through it.
    pub map: Option<String>,
    pub out: PathBuf,
}

/// `ebm build FILE`: writes the model file and says what it holds.
pub fn build(path: &Path, o: &BuildFlags) -> Result<String> {
    let file = match super::open(path)? {
        super::Program::Source(f) => f,
        super::Program::Model(_) => {
            return fail(format!(
                "{} is already a model file; `ebm build` reads a program (.ebm)",
                path.display()
            ));
        }
    };
    ebm::data::atomic::check_writable(&o.out).map_err(Failure::Message)?;
    let module = super::analyze(&file)?;
    let store = pipeline::param_store(&module)?;
    let mut provenance = BTreeMap::new();
    let scale = match (&o.params, &o.map) {
        (None, Some(_)) => return fail("--map needs --params: the state dict it maps"),
        (None, None) => {
            provenance.insert("params".into(), "initial values".into());
            None
        }
        (Some(p), None) => {
            provenance.insert("params".into(), p.display().to_string());
            super::sample::load_trained(p, &store)?
        }
        (Some(p), Some(map)) => {
            let map = map_text(map)?;
            let map = ebm::train::checkpoint::parse_map(&map)
                .map_err(|e| Failure::Message(format!("--map: {e}")))?;
            let set = ebm::train::checkpoint::load_mapped(p, &store, &map)
                .map_err(|e| Failure::Message(e.to_string()))?;
            let unset: Vec<&str> = module
                .defs
                .iter()
                .filter(|d| o.energies.is_empty() || o.energies.contains(&d.name))
                .flat_map(|d| d.params.iter())
                .filter(|p| !set.contains(p))
                .map(String::as_str)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !unset.is_empty() {
                return fail(format!(
                    "--map sets no value for {}; map every parameter of the definitions built",
                    unset.join(", ")
                ));
            }
            provenance.insert("params".into(), p.display().to_string());
            provenance.insert("params.mapped".into(), set.join(", "));
            None
        }
    };
    let req = BuildRequest {
        names: &o.energies,
        scale: scale.as_ref(),
        provenance,
    };
    let model = pipeline::build_model(&file, &module, &store, &req)?;
    model
        .write(&o.out)
        .map_err(|e| Failure::Message(e.to_string()))?;
    let names: Vec<&str> = model.defs().iter().map(|d| d.name.as_str()).collect();
    Ok(format!(
        "wrote {} ({}; {} parameter values)\n",
        o.out.display(),
        names.join(", "),
        model.param_count()
    ))
}

/// Writes `DIR/model.ebmc` at the end of a training run: the trained
/// definitions with their parameters' final values (and the data scaling
/// folded in), so the run's result loads without its source.
pub fn write_trained(
    file: &ebm::pipeline::SourceFile,
    module: &ebm::sema::Module,
    store: &ebm::runtime::ParamStore,
    names: &[String],
    scale: Option<&ebm::data::Scaler>,
    dir: &Path,
) -> Result<PathBuf> {
    let path = dir.join(MODEL_FILE);
    let provenance = BTreeMap::from([(
        "params".to_string(),
        format!("trained: {}", dir.join("params.safetensors").display()),
    )]);
    let req = BuildRequest {
        names,
        scale,
        provenance,
    };
    pipeline::build_model(file, module, store, &req)?
        .write(&path)
        .map_err(|e| Failure::Message(e.to_string()))?;
    Ok(path)
}

/// The model file a training run writes into its folder.
pub const MODEL_FILE: &str = "model.ebmc";

/// `--map` is a file of mappings when it names one, else the mappings.
fn map_text(map: &str) -> Result<String> {
    let p = Path::new(map);
    if !map.contains('=') && p.exists() {
        let bytes = ebm::data::read_regular(p, 1 << 20)
            .map_err(|e| Failure::Message(format!("--map: {e}")))?;
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    Ok(map.to_string())
}

/// `ebm info M.ebmc`: signatures, parameters and provenance (or, with
/// `--source`, the source text the file was built from).
pub fn info(path: &Path, source: bool) -> Result<String> {
    let model = match super::open(path)? {
        super::Program::Model(m) => m,
        super::Program::Source(_) => {
            return fail(format!(
                "{} is not a model file (build one with `ebm build`)",
                path.display()
            ));
        }
    };
    if source {
        return Ok(model.file().source().to_string());
    }
    Ok(describe(path, model.file()))
}

fn describe(path: &Path, m: &Artifact) -> String {
    let h = m.header();
    let mut out = format!("model file {}\n", path.display());
    out.push_str(&format!(
        "  format     version {} (written by {})\n",
        m.version(),
        h.compiler
    ));
    out.push_str(&format!(
        "  source     {} ({}, {} bytes)\n",
        h.source_path,
        h.source_hash,
        m.source().len()
    ));
    for (k, v) in &h.provenance {
        out.push_str(&format!("  {k:<10} {v}\n"));
    }
    if let Some(s) = &h.scale {
        out.push_str(&format!(
            "  scaling    x' = (x - {:?}) * {:?}, applied inside each definition\n",
            s.shift, s.mul
        ));
    }
    out.push_str("definitions:\n");
    for d in m.defs() {
        let kind = match d.kind {
            artifact::Kind::Energy => "energy",
            artifact::Kind::Model => "model ",
        };
        let cond =
            d.c.as_ref()
                .map(|c| format!(" | c: {c:?}"))
                .unwrap_or_default();
        let output = match d.kind {
            artifact::Kind::Energy => String::new(),
            artifact::Kind::Model => format!(" -> {:?}", d.output),
        };
        out.push_str(&format!(
            "  {kind} {}(x: {:?}{cond}){output}   {} parameter{}\n",
            d.name,
            d.x,
            d.params.len(),
            if d.params.len() == 1 { "" } else { "s" }
        ));
    }
    out.push_str(&format!(
        "parameters: {} values in {} tensors\n",
        m.param_count(),
        m.params().len()
    ));
    for p in m.params() {
        out.push_str(&format!("  {} {:?}\n", p.name, p.shape));
    }
    out
}
