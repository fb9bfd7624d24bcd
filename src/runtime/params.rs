//! The parameter store: one per program, shared by every kernel that reads
//! parameters (several energies and models of a program may share tensors,
//! like JEM's classifier and its p(x)). Entries are keyed by the parameter's
//! documented name (language reference §8: `W`, `net.mlp0.w1`, ...), which is
//! also the key of checkpoints and model files. Values are held in f64; each
//! dtype's view is converted once per version and shared (`Arc`), so kernels
//! never convert parameters per call, and an update (an optimiser step,
//! `set`) reaches every already-compiled kernel on its next call.
//!
//! A device that holds buffers may become the values' home: a trainer whose
//! optimiser runs on the GPU hands the store each update's new buffers
//! (`adopt_held`), and the host copy is then brought up to date only when
//! something on the host reads it (`pull`, or any accessor), so training
//! moves no parameter between host and device per iteration.

use std::sync::{Arc, RwLock};

use super::{RuntimeError, Scalar};
use crate::backend::{Backend, Buffer, DType, HostData};

/// A stable handle to one parameter of a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub u32);

#[derive(Clone, Debug, PartialEq)]
pub struct ParamEntry {
    pub name: String,
    pub shape: Vec<usize>,
    pub value: Vec<f64>,
}

/// The values of every parameter in one dtype, at one version.
#[derive(Debug)]
pub struct ParamView<T> {
    pub version: u64,
    pub values: Vec<Vec<T>>,
}

/// The values of every parameter held in a device's memory, at one version
/// (uploaded once per version, shared by every kernel of the device).
#[derive(Debug)]
pub struct HeldView {
    pub version: u64,
    pub buffers: Vec<Buffer>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<ParamEntry>,
    version: u64,
    f32_view: Option<Arc<ParamView<f32>>>,
    f64_view: Option<Arc<ParamView<f64>>>,
    /// A process has one device (`backend::gpu`), so one held view.
    held_view: Option<Arc<HeldView>>,
    /// Set while the held view is newer than `entries` for these
    /// parameters (adopted from a device-side update).
    on_device: Option<OnDevice>,
    /// Why bringing device values home failed; host reads since then see
    /// the last values the host had, and every fallible call reports it.
    lost: Option<String>,
}

/// Parameters whose newest values live only in a device's memory.
struct OnDevice {
    backend: Arc<dyn Backend>,
    ids: Vec<ParamId>,
}

/// Named, shaped tensors with a version counter (see the module docs).
#[derive(Default)]
pub struct ParamStore {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParamStore(v{}, {:?})", self.version(), self.names())
    }
}

impl Inner {
    fn clear_views(&mut self) {
        self.f32_view = None;
        self.f64_view = None;
        self.held_view = None;
    }
}

impl ParamStore {
    pub fn new() -> ParamStore {
        ParamStore::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A writer that panicked mid-update leaves whole values behind
        // (entries are replaced, never half-written), so poisoning is ignored.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings every value held only on a device home (one download per
    /// such parameter); a no-op when the host is current.
    pub fn pull(&self) -> Result<(), RuntimeError> {
        self.pull_only(None)
    }

    /// `pull` for the parameters `only` (all when `None`): a host read of
    /// one parameter downloads that one alone.
    fn pull_only(&self, only: Option<&[ParamId]>) -> Result<(), RuntimeError> {
        let wanted = |id: &ParamId| only.is_none_or(|o| o.contains(id));
        let needed = (self.read().on_device.as_ref()).is_some_and(|d| d.ids.iter().any(wanted));
        if !needed {
            return self.lost();
        }
        let mut inner = self.write();
        let Some(mut dev) = inner.on_device.take() else {
            return Ok(());
        };
        let (now, later): (Vec<ParamId>, Vec<ParamId>) = dev.ids.iter().partition(|id| wanted(id));
        match download_into(&mut inner, dev.backend.as_ref(), &now) {
            Ok(()) => {
                inner.lost = None;
                if !later.is_empty() {
                    dev.ids = later;
                    inner.on_device = Some(dev);
                }
                Ok(())
            }
            Err(e) => {
                inner.lost = Some(e.to_string());
                inner.on_device = Some(dev);
                Err(e)
            }
        }
    }

    /// The error of a failed `pull`, if one is outstanding.
    fn lost(&self) -> Result<(), RuntimeError> {
        match &self.read().lost {
            Some(e) => Err(RuntimeError::Backend(
                crate::backend::BackendError::Buffers(format!(
                    "parameters held on the device could not be read back: {e}"
                )),
            )),
            None => Ok(()),
        }
    }

    /// A read guard on host values brought up to date: an accessor that
    /// cannot fail sees the last values the host had when a download fails
    /// (the failure is kept and reported by the next fallible call).
    fn read_host(&self, only: Option<&[ParamId]>) -> std::sync::RwLockReadGuard<'_, Inner> {
        let _ = self.pull_only(only);
        self.read()
    }

    /// Makes `buffers` (new values of `ids`, in `backend`'s memory) the
    /// store's next version without reading them back: the held view
    /// becomes the truth for those parameters, the host copy follows on
    /// the next host read. Every other parameter keeps its held buffer.
    pub fn adopt_held(
        &self,
        backend: &Arc<dyn Backend>,
        ids: &[ParamId],
        buffers: Vec<Buffer>,
    ) -> Result<(), RuntimeError> {
        let base = self.held_view(backend.as_ref())?;
        let mut inner = self.write();
        if inner.version != base.version {
            return Err(RuntimeError::Internal(
                "the parameters changed while a device update was adopted".into(),
            ));
        }
        let mut next = base.buffers.clone();
        for (id, b) in ids.iter().zip(buffers) {
            let Some(entry) = inner.entries.get(id.0 as usize) else {
                return Err(RuntimeError::UnknownParam(format!("#{}", id.0)));
            };
            if b.len() != entry.value.len() {
                return Err(RuntimeError::ParamLength {
                    name: entry.name.clone(),
                    expected: entry.value.len(),
                    found: b.len(),
                });
            }
            next[id.0 as usize] = b;
        }
        inner.version += 1;
        inner.f32_view = None;
        inner.f64_view = None;
        inner.held_view = Some(Arc::new(HeldView {
            version: inner.version,
            buffers: next,
        }));
        let mut on = inner.on_device.take().map_or_else(Vec::new, |d| d.ids);
        on.extend_from_slice(ids);
        on.sort_unstable();
        on.dedup();
        inner.on_device = Some(OnDevice {
            backend: backend.clone(),
            ids: on,
        });
        Ok(())
    }

    /// Adds a parameter, or returns the existing one of that name when its
    /// shape agrees (definitions that share a parameter share its entry).
    pub fn insert(
        &self,
        name: &str,
        shape: &[usize],
        value: Vec<f64>,
    ) -> Result<ParamId, RuntimeError> {
        self.pull()?;
        let mut inner = self.write();
        if let Some(i) = inner.entries.iter().position(|e| e.name == name) {
            if inner.entries[i].shape != shape {
                return Err(RuntimeError::ParamShape {
                    name: name.into(),
                    expected: inner.entries[i].shape.clone(),
                    found: shape.to_vec(),
                });
            }
            return Ok(ParamId(i as u32));
        }
        let want: usize = shape.iter().product();
        if value.len() != want {
            return Err(RuntimeError::ParamLength {
                name: name.into(),
                expected: want,
                found: value.len(),
            });
        }
        inner.entries.push(ParamEntry {
            name: name.into(),
            shape: shape.to_vec(),
            value,
        });
        inner.version += 1;
        inner.clear_views();
        Ok(ParamId(inner.entries.len() as u32 - 1))
    }

    /// Copies the values of `ids` into `out`, one vector each, reusing
    /// `out`'s buffers (a training iteration reads every parameter without
    /// allocating); an unknown id reads as empty.
    pub fn read_into(&self, ids: &[ParamId], out: &mut Vec<Vec<f64>>) {
        let inner = self.read_host(Some(ids));
        out.resize_with(ids.len(), Vec::new);
        for (id, v) in ids.iter().zip(out.iter_mut()) {
            v.clear();
            if let Some(e) = inner.entries.get(id.0 as usize) {
                v.extend_from_slice(&e.value);
            }
        }
    }

    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.read()
            .entries
            .iter()
            .position(|e| e.name == name)
            .map(|i| ParamId(i as u32))
    }
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn names(&self) -> Vec<String> {
        self.read().entries.iter().map(|e| e.name.clone()).collect()
    }
    /// Every parameter's name, shape and current value (a model file's
    /// parameter section).
    pub fn snapshot(&self) -> Vec<crate::artifact::ParamValue> {
        self.names()
            .into_iter()
            .filter_map(|n| self.id(&n).and_then(|id| self.entry(id)))
            .map(|e| crate::artifact::ParamValue {
                name: e.name,
                shape: e.shape,
                data: e.value,
            })
            .collect()
    }

    /// Bumped by every change of any value (reads no value, so it never
    /// brings device-held values home).
    pub fn version(&self) -> u64 {
        self.read().version
    }
    pub fn entry(&self, id: ParamId) -> Option<ParamEntry> {
        self.read_host(Some(&[id]))
            .entries
            .get(id.0 as usize)
            .cloned()
    }
    /// The shape of parameter `id`, without reading its values.
    pub fn shape_of(&self, id: ParamId) -> Option<Vec<usize>> {
        self.read()
            .entries
            .get(id.0 as usize)
            .map(|e| e.shape.clone())
    }
    /// The shape of the parameter `name`, without copying its values.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let inner = self.read();
        inner
            .entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.shape.clone())
    }
    pub fn get(&self, name: &str) -> Option<Vec<f64>> {
        let id = self.id(name)?;
        let inner = self.read_host(Some(&[id]));
        inner.entries.get(id.0 as usize).map(|e| e.value.clone())
    }

    /// Replaces one parameter's values.
    pub fn set(&self, name: &str, value: &[f64]) -> Result<(), RuntimeError> {
        self.update(|entries| {
            let e = entries
                .iter_mut()
                .find(|e| e.name == name)
                .ok_or_else(|| RuntimeError::UnknownParam(name.into()))?;
            if e.value.len() != value.len() {
                return Err(RuntimeError::ParamLength {
                    name: name.into(),
                    expected: e.value.len(),
                    found: value.len(),
                });
            }
            e.value.copy_from_slice(value);
            Ok(())
        })
    }

    /// Updates values in place (an optimiser step); one version bump.
    /// Shapes and names cannot change through this.
    pub fn update<R>(
        &self,
        f: impl FnOnce(&mut [ParamEntry]) -> Result<R, RuntimeError>,
    ) -> Result<R, RuntimeError> {
        self.pull()?;
        let mut inner = self.write();
        let before: Vec<(String, usize)> = inner
            .entries
            .iter()
            .map(|e| (e.name.clone(), e.value.len()))
            .collect();
        let r = f(&mut inner.entries)?;
        let same = inner
            .entries
            .iter()
            .zip(&before)
            .all(|(e, (n, l))| &e.name == n && e.value.len() == *l);
        if !same {
            return Err(RuntimeError::Internal(
                "a parameter update changed a name or a size".into(),
            ));
        }
        inner.version += 1;
        inner.clear_views();
        Ok(r)
    }

    /// Every value in dtype `T`, converted once per version.
    pub fn view<T: Scalar>(&self) -> Arc<ParamView<T>> {
        T::cached_view(self)
    }

    pub(crate) fn view_f32(&self) -> Arc<ParamView<f32>> {
        if let Some(v) = &self.read_host(None).f32_view {
            return v.clone();
        }
        let mut inner = self.write();
        let view = Arc::new(ParamView {
            version: inner.version,
            values: inner
                .entries
                .iter()
                .map(|e| e.value.iter().map(|&v| v as f32).collect())
                .collect(),
        });
        inner.f32_view = Some(view.clone());
        view
    }

    pub(crate) fn view_f64(&self) -> Arc<ParamView<f64>> {
        if let Some(v) = &self.read_host(None).f64_view {
            return v.clone();
        }
        let mut inner = self.write();
        let view = Arc::new(ParamView {
            version: inner.version,
            values: inner.entries.iter().map(|e| e.value.clone()).collect(),
        });
        inner.f64_view = Some(view.clone());
        view
    }

    /// Every value held by `backend` (which keeps buffers in a device's
    /// memory, `Backend::holds_buffers`): uploaded in f32 once per version,
    /// so the kernels of one version (a training iteration's sampler and
    /// its loss) share one upload.
    pub fn held_view(&self, backend: &dyn Backend) -> Result<Arc<HeldView>, RuntimeError> {
        if let Some(v) = &self.read().held_view {
            return Ok(v.clone());
        }
        self.lost()?;
        let f32s = self.view_f32();
        let buffers = f32s
            .values
            .iter()
            .map(|v| backend.upload(HostData::F32(v)))
            .collect::<Result<Vec<_>, _>>()?;
        let view = Arc::new(HeldView {
            version: f32s.version,
            buffers,
        });
        let mut inner = self.write();
        // A writer may have moved the version while the values went up.
        if inner.version == view.version {
            inner.held_view = Some(view.clone());
        }
        Ok(view)
    }

    /// Bytes the store and its views hold (for size estimates).
    pub fn bytes(&self, dtype: DType) -> usize {
        let n: usize = self.read().entries.iter().map(|e| e.value.len()).sum();
        n * (8 + dtype.size())
    }
}

/// Downloads the held values of `ids` into the host entries.
fn download_into(
    inner: &mut Inner,
    backend: &dyn Backend,
    ids: &[ParamId],
) -> Result<(), RuntimeError> {
    let Some(view) = inner.held_view.clone() else {
        return Err(RuntimeError::Internal(
            "device-held parameters without a held view".into(),
        ));
    };
    for id in ids {
        let i = id.0 as usize;
        let (Some(b), Some(e)) = (view.buffers.get(i), inner.entries.get_mut(i)) else {
            return Err(RuntimeError::UnknownParam(format!("#{i}")));
        };
        let v = backend.download(b).map_err(RuntimeError::Backend)?;
        if v.len() != e.value.len() {
            return Err(RuntimeError::ParamLength {
                name: e.name.clone(),
                expected: e.value.len(),
                found: v.len(),
            });
        }
        e.value = v;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::backend::StandIn as Counting;

    /// A device-side update adopted by the store is the next version at
    /// once, bound from the held view, and comes home (one download per
    /// adopted parameter) only when the host reads or writes values.
    #[test]
    fn adopted_values_come_home_only_when_read() {
        let store = ParamStore::new();
        store.insert("w", &[2], vec![1.5, -2.0]).unwrap();
        store.insert("b", &[], vec![0.25]).unwrap();
        let counting = Arc::new(Counting::default());
        let dev: Arc<dyn Backend> = counting.clone();
        let downloads = || counting.down.load(Ordering::Relaxed);
        let v0 = store.version();
        let w = ParamId(0);
        store
            .adopt_held(&dev, &[w], vec![Buffer::F32(vec![3.0, 4.0])])
            .unwrap();
        assert_eq!(store.version(), v0 + 1);
        let view = store.held_view(dev.as_ref()).unwrap();
        assert_eq!(view.version, v0 + 1);
        assert_eq!(view.buffers[0], Buffer::F32(vec![3.0, 4.0]));
        assert_eq!(view.buffers[1], Buffer::F32(vec![0.25]));
        assert_eq!(store.shape_of(w), Some(vec![2]));
        assert_eq!(downloads(), 0, "binding and shapes read nothing back");
        assert_eq!(store.get("w"), Some(vec![3.0, 4.0]));
        assert_eq!(store.get("w"), Some(vec![3.0, 4.0]));
        assert_eq!(downloads(), 1, "one download, then the host is current");
        let bad = store.adopt_held(&dev, &[ParamId(1)], vec![Buffer::F32(vec![1.0, 2.0])]);
        assert!(
            matches!(bad, Err(RuntimeError::ParamLength { .. })),
            "{bad:?}"
        );
        assert_eq!(store.version(), v0 + 1, "a refused update changes nothing");
        store
            .adopt_held(&dev, &[w], vec![Buffer::F32(vec![5.0, 6.0])])
            .unwrap();
        store.set("b", &[1.0]).unwrap();
        assert_eq!(
            downloads(),
            2,
            "a host write brings the device's values home first"
        );
        assert_eq!(store.get("w"), Some(vec![5.0, 6.0]));
        assert_eq!(store.get("b"), Some(vec![1.0]));
        assert_eq!(store.view::<f64>().values, vec![vec![5.0, 6.0], vec![1.0]]);
    }

    #[test]
    fn held_values_go_up_once_per_version() {
        let store = ParamStore::new();
        store.insert("w", &[2], vec![1.5, -2.0]).unwrap();
        store.insert("b", &[], vec![0.25]).unwrap();
        let dev = Counting::default();
        let first = store.held_view(&dev).unwrap();
        let again = store.held_view(&dev).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(
            dev.up.load(Ordering::Relaxed),
            2,
            "one upload per parameter"
        );
        assert_eq!(first.buffers[0], Buffer::F32(vec![1.5, -2.0]));
        store.set("b", &[3.0]).unwrap();
        let next = store.held_view(&dev).unwrap();
        assert_eq!(
            dev.up.load(Ordering::Relaxed),
            4,
            "a new version goes up again"
        );
        assert_eq!(next.version, store.version());
        assert_eq!(next.buffers[1], Buffer::F32(vec![3.0]));
    }
}
