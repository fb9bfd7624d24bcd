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

/// Row moves `(from, to)` of `width` values from `src` to `dst` (checked
/// by the caller; a later move to a row wins), runs of consecutive rows as
/// one copy each.
pub(super) fn copy_rows(
    dev: &Device,
    (src, dst): (&Held, &Held),
    width: usize,
    moves: &[(usize, usize)],
) -> Result<(), BackendError> {
    let (from, to) = (storage(src)?, storage(dst)?);
    if width == 0 || moves.is_empty() {
        return Ok(());
    }
    if src == dst {
        return Err(BackendError::Buffers(
            "rows copied within one device buffer".into(),
        ));
    }
    // Only a row's last move is copied: copies into one row in a single
    // submit would be writes the device need not order.
    let mut seen = std::collections::HashSet::new();
    let mut last: Vec<(usize, usize)> = moves
        .iter()
        .rev()
        .filter(|&&(_, t)| seen.insert(t))
        .copied()
        .collect();
    last.reverse();
    let mut enc = dev.device.create_command_encoder(&Default::default());
    for (f, t, rows) in runs(&last) {
        let bytes = |row: usize| (row * width * 4) as u64;
        enc.copy_buffer_to_buffer(from, bytes(f), to, bytes(t), bytes(rows));
    }
    dev.queue.submit([enc.finish()]);
    Ok(())
}

/// `moves` as runs `(first from, first to, rows)` of consecutive rows on
/// both sides, in order.
pub(super) fn runs(moves: &[(usize, usize)]) -> Vec<(usize, usize, usize)> {
    let mut out: Vec<(usize, usize, usize)> = Vec::new();
    for &(f, t) in moves {
        match out.last_mut() {
            Some((f0, t0, n)) if *f0 + *n == f && *t0 + *n == t => *n += 1,
            _ => out.push((f, t, 1)),
        }
    }
    out
}

/// Bytes of `len` f32 values (at least 4: wgpu binds no empty buffer).
fn size(len: usize) -> u64 {
    (len.max(1) * 4) as u64
}
