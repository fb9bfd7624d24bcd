//! The model handle behind `ebm_model*`: a loaded model file
//! (`ebm::api::Artifact`), the names the C side borrows (as NUL-terminated
//! strings that live as long as the handle), and each energy compiled on
//! first use, once per dtype, by the Cranelift JIT.

use std::ffi::CString;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use ebm::api::Artifact;
use ebm::artifact::{ArtifactError, DefSig, Kind};
use ebm::backend::cpu::Cpu;
use ebm::backend::{Backend, DType};
use ebm::runtime::{CompiledEnergy, ParamStore};

use crate::error::{Result, fail};

/// One definition of the file, with its compilations (made on first use;
/// a failed compilation is kept too: it fails the same way every time).
struct Def {
    name: CString,
    sig: DefSig,
    f64: OnceLock<std::result::Result<CompiledEnergy, String>>,
    f32: OnceLock<std::result::Result<CompiledEnergy, String>>,
}

/// One parameter: its name for C and its number of values.
struct Param {
    name: CString,
    size: usize,
}

/// An opened model file (the C type `ebm_model`, opaque to C).
pub struct EbmModel {
    artifact: Artifact,
    backend: Arc<dyn Backend>,
    defs: Vec<Def>,
    params: Vec<Param>,
}

// A handle is shared between threads by C callers: everything in it must be
// `Send + Sync`. `CompiledEnergy` keeps its kernel cache behind a `Mutex` and
// reads parameters through `ParamStore`'s `RwLock` (one consistent snapshot
// per call), so concurrent evaluation and `set_param` are both sound.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<CompiledEnergy>();
    send_sync::<ParamStore>();
    send_sync::<Artifact>();
    send_sync::<EbmModel>();
};

fn c_name(s: &str) -> Result<CString> {
    match CString::new(s) {
        Ok(c) => Ok(c),
        Err(_) => fail!("the model file has a name with a NUL byte: {s:?}"),
    }
}

impl EbmModel {
    /// Reads and checks a model file (nothing is compiled yet).
    pub(crate) fn open(path: &Path) -> Result<EbmModel> {
        // I/O errors name the path already; format errors get it in front.
        let file = ebm::artifact::Artifact::read(path).map_err(|e| match e {
            ArtifactError::Io(msg) => msg,
            e => format!("{}: {e}", path.display()),
        })?;
        let artifact = Artifact::from_file(file)?;
        let defs = artifact
            .file()
            .defs()
            .iter()
            .map(|sig| {
                Ok(Def {
                    name: c_name(&sig.name)?,
                    sig: sig.clone(),
                    f64: OnceLock::new(),
                    f32: OnceLock::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let store = artifact.params();
        let params = store
            .names()
            .iter()
            .map(|n| {
                let size = store.get(n).map_or(0, |v| v.len());
                Ok(Param {
                    name: c_name(n)?,
                    size,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EbmModel {
            artifact,
            backend: Arc::new(Cpu::new()),
            defs,
            params,
        })
    }

    pub(crate) fn num_defs(&self) -> usize {
        self.defs.len()
    }
    pub(crate) fn def_name(&self, i: usize) -> Option<&CString> {
        self.defs.get(i).map(|d| &d.name)
    }
    pub(crate) fn def_kind(&self, i: usize) -> Option<Kind> {
        self.defs.get(i).map(|d| d.sig.kind)
    }

    /// A definition's signature, any kind.
    pub(crate) fn sig(&self, name: &str) -> Result<&DefSig> {
        match self.defs.iter().find(|d| d.sig.name == name) {
            Some(d) => Ok(&d.sig),
            None => fail!(
                "no definition `{name}` in this model file; {}",
                self.listing()
            ),
        }
    }

    /// "its energies are: a, b; its models: m" (or that it has none).
    fn listing(&self) -> String {
        let of = |kind| {
            self.defs
                .iter()
                .filter(|d| d.sig.kind == kind)
                .map(|d| format!("`{}`", d.sig.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (energies, models) = (of(Kind::Energy), of(Kind::Model));
        match (energies.is_empty(), models.is_empty()) {
            (true, true) => "it has no definitions".into(),
            (false, true) => format!("its energies are: {energies}"),
            (true, false) => format!("it has no energies, only models: {models}"),
            (false, false) => format!("its energies are: {energies} (and models: {models})"),
        }
    }

    /// The energy `name` compiled for `dtype` (compiled now if it is the first use).
    pub(crate) fn energy(&self, name: &str, dtype: DType) -> Result<&CompiledEnergy> {
        let Some(def) = self.defs.iter().find(|d| d.sig.name == name) else {
            fail!("no energy `{name}` in this model file; {}", self.listing());
        };
        if def.sig.kind != Kind::Energy {
            fail!(
                "`{name}` is a model, not an energy: the C API evaluates energies; {}",
                self.listing()
            );
        }
        let cell = match dtype {
            DType::F64 => &def.f64,
            DType::F32 => &def.f32,
        };
        let compiled = cell.get_or_init(|| {
            self.artifact
                .energy_with(name, self.backend.clone(), dtype)
                .map_err(|e| format!("cannot compile `{name}` for {}: {e}", dtype.name()))
        });
        match compiled {
            Ok(e) => Ok(e),
            Err(e) => Err(e.clone().into()),
        }
    }

    pub(crate) fn num_params(&self) -> usize {
        self.params.len()
    }
    pub(crate) fn param_name(&self, i: usize) -> Option<&CString> {
        self.params.get(i).map(|p| &p.name)
    }

    /// The number of values of parameter `name`.
    pub(crate) fn param_size(&self, name: &str) -> Result<usize> {
        match self
            .params
            .iter()
            .find(|p| p.name.as_bytes() == name.as_bytes())
        {
            Some(p) => Ok(p.size),
            None => fail!(
                "no parameter `{name}` in this model file; {}",
                self.param_listing()
            ),
        }
    }

    fn param_listing(&self) -> String {
        if self.params.is_empty() {
            return "it has no parameters".into();
        }
        let names: Vec<String> = self
            .params
            .iter()
            .map(|p| format!("`{}`", p.name.to_string_lossy()))
            .collect();
        format!("its parameters are: {}", names.join(", "))
    }

    /// The values the parameter store shares with every compiled energy.
    pub(crate) fn store(&self) -> &Arc<ParamStore> {
        self.artifact.params()
    }
}
