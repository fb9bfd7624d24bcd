//! Buffers held in the device's memory ([`Held`]): made by `Gpu::alloc` and
//! `Gpu::upload`, bound by kernels where they are (copied on the device
//! into a call's arena, and out of it), and read by the host only through
//! `Gpu::download`. Values a run reuses across calls (parameters, the
//! optimiser's moments) live here, so a call uploads only what changed.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::{Device, bytes};
use crate::backend::{BackendError, Held};

/// Usage of every held buffer: bound as storage, copied both ways.
const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// `len` zeros on the device.
pub(super) fn zeros(dev: &Device, len: usize) -> Held {
    let buffer = dev.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("ebm held"),
        size: size(len),
        usage: USAGE,
        mapped_at_creation: false,
    });
    Held::new(len, Arc::new(buffer))
}

/// A copy of `values` on the device.
pub(super) fn upload(dev: &Device, values: &[f32]) -> Held {
    if values.is_empty() {
        return zeros(dev, 0);
    }
    let buffer = dev
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("ebm held"),
            contents: bytes(values),
            usage: USAGE,
        });
    Held::new(values.len(), Arc::new(buffer))
}

/// The device buffer behind `h`; an error when another backend made it.
pub(super) fn storage(h: &Held) -> Result<&wgpu::Buffer, BackendError> {
    h.storage::<wgpu::Buffer>()
        .ok_or_else(|| BackendError::Buffers("a held buffer of another backend".into()))
}

/// The values of `h`, read back (waits for every call submitted before).
pub(super) fn download(dev: &Device, h: &Held) -> Result<Vec<f32>, BackendError> {
    let src = storage(h)?;
    if h.is_empty() {
        return Ok(Vec::new());
    }
    let staging = dev.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("ebm download"),
        size: size(h.len()),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = dev.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(src, 0, &staging, 0, size(h.len()));
    dev.queue.submit([enc.finish()]);
    super::read_mapped(dev, &staging, h.len())
}

/// Bytes of `len` f32 values (at least 4: wgpu binds no empty buffer).
fn size(len: usize) -> u64 {
    (len.max(1) * 4) as u64
}
