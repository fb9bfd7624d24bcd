//! Kept draws streamed to disk while the chains run, so the memory of a run
//! that writes its draws to a file is bounded whatever its length.
//!
//! Each block of chains appends its draws to its own spill file, a
//! temporary beside the output (`.NAME.tmpPID.spillB`, see
//! [`OwnedTemp`]), one *tile* at a time: a run of consecutive kept draws of
//! every chain of the block, stored chain-major within the tile, so a tile
//! costs [`Stream::tile_bytes`] of memory whatever the run length. The writers in
//! [`super::io`] read the tiles back chain by chain ([`Spill::each_row`]),
//! in bounded groups of chains, so the output files keep their chain-major
//! layout and their bytes: a streamed run writes the file an in-memory run
//! writes. Meanwhile the run keeps in memory every `stride`-th kept draw of
//! each chain (at most [`Stream::subsample_values`] coordinates in all) for its
//! summary and plots.
//!
//! A row on disk is `dim` coordinates then the sampler columns (energy,
//! acceptance, divergent, and for Hamiltonian samplers the Hamiltonian,
//! leapfrog steps and tree depth), each a little-endian f64.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::data::atomic::OwnedTemp;
use crate::runtime::RuntimeError;

/// Where a run streams its draws, and the memory it may use doing so.
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    /// The output the spill files are written beside.
    pub output: PathBuf,
    /// The most memory one block's tile buffer takes (at least one draw of
    /// every chain of the block).
    pub tile_bytes: usize,
    /// The most memory the writers' read-back buffer takes (at least one
    /// tile's run of one chain).
    pub read_bytes: usize,
    /// The most coordinates kept in memory for the summary and plots.
    pub subsample_values: usize,
}

impl Stream {
    /// Streaming beside `output` with the default bounds: 4 MiB tiles,
    /// 32 MiB read back at a time, 2^21 coordinates (16 MiB) in memory.
    pub fn beside(output: &Path) -> Stream {
        Stream {
            output: output.to_path_buf(),
            tile_bytes: 4 << 20,
            read_bytes: 32 << 20,
            subsample_values: 1 << 21,
        }
    }

    /// Every `stride`-th kept draw stays in memory: the smallest stride
    /// that keeps at most `subsample_values` coordinates (the same for
    /// every block, so the subsample does not depend on the thread count).
    pub fn stride(&self, chains: usize, kept: usize, dim: usize) -> usize {
        let values = chains.saturating_mul(kept).saturating_mul(dim);
        values.div_ceil(self.subsample_values.max(1)).max(1)
    }

    /// Kept draws per tile for a block of `users` chains.
    fn tile_draws(&self, users: usize, kept: usize, width: usize) -> usize {
        (self.tile_bytes / (users.max(1) * width * 8)).clamp(1, kept.max(1))
    }
}

/// One kept draw: its coordinates and sampler columns.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub x: &'a [f64],
    pub cols: Columns,
}

/// The sampler columns of a kept draw.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Columns {
    pub energy: f64,
    pub accept: f64,
    pub divergent: bool,
    /// The Hamiltonian columns, each where it was recorded (Hamiltonian
    /// samplers record all three; a file read back may hold some of them):
    /// the Hamiltonian, leapfrog steps, tree depth.
    pub hamiltonian: Option<f64>,
    pub n_leapfrog: Option<u32>,
    pub tree_depth: Option<u32>,
}

/// f64 values per row on disk.
fn width(dim: usize, hamiltonian: bool) -> usize {
    dim + if hamiltonian { 6 } else { 3 }
}

/// The bytes a run's spill files take: `rows` kept draws (every chain's)
/// of `dim` coordinates, with a Hamiltonian sampler's extra columns.
pub fn disk_bytes(rows: usize, dim: usize, hamiltonian: bool) -> f64 {
    rows as f64 * width(dim, hamiltonian) as f64 * 8.0
}

/// A block's spill file being written.
pub(crate) struct BlockWriter {
    temp: OwnedTemp,
    file: File,
    users: usize,
    dim: usize,
    width: usize,
    kept: usize,
    tile: usize,
    /// `users × tile × width`, chain-major.
    buf: Vec<f64>,
    bytes: Vec<u8>,
    /// Kept draws recorded so far.
    next: usize,
    /// Each chain's last recorded point and count of distinct draws.
    last: Vec<f64>,
    distinct: Vec<usize>,
}

impl BlockWriter {
    /// Creates block `block`'s spill file beside `output`.
    pub fn create(
        stream: &Stream,
        block: usize,
        users: usize,
        kept: usize,
        dim: usize,
        hamiltonian: bool,
    ) -> Result<BlockWriter, RuntimeError> {
        let fail = |e: String| RuntimeError::Config(format!("cannot stream draws: {e}"));
        let (temp, file) =
            OwnedTemp::create(&stream.output, &format!(".spill{block}")).map_err(fail)?;
        let width = width(dim, hamiltonian);
        let tile = stream.tile_draws(users, kept, width);
        Ok(BlockWriter {
            temp,
            file,
            users,
            dim,
            width,
            kept,
            tile,
            buf: vec![0.0; users * tile * width],
            bytes: Vec::new(),
            next: 0,
            last: vec![0.0; users * dim],
            distinct: vec![0; users],
        })
    }

    /// Records chain `u`'s point `x` and sampler columns for the current
    /// kept draw (every chain of a draw, then
    /// [`end_draw`](Self::end_draw)).
    pub fn put(&mut self, u: usize, x: impl Iterator<Item = f64>, cols: Columns) {
        let slot = self.next % self.tile;
        let o = (u * self.tile + slot) * self.width;
        let (d, out) = (self.dim, &mut self.buf[o..o + self.width]);
        for (dst, v) in out[..d].iter_mut().zip(x) {
            *dst = v;
        }
        out[d] = cols.energy;
        out[d + 1] = cols.accept;
        out[d + 2] = f64::from(u8::from(cols.divergent));
        if self.width > d + 3 {
            out[d + 3] = cols.hamiltonian.unwrap_or(f64::NAN);
            out[d + 4] = cols.n_leapfrog.map_or(f64::NAN, f64::from);
            out[d + 5] = cols.tree_depth.map_or(f64::NAN, f64::from);
        }
        let last = &mut self.last[u * d..(u + 1) * d];
        let moved = self.next == 0
            || last
                .iter()
                .zip(&out[..d])
                .any(|(a, b)| a.to_bits() != b.to_bits());
        if moved {
            self.distinct[u] += 1;
            last.copy_from_slice(&out[..d]);
        }
    }

    /// Ends a kept draw; a full tile (or the last draw's) goes to disk.
    pub fn end_draw(&mut self) -> Result<(), RuntimeError> {
        self.next += 1;
        let filled = (self.next - 1) % self.tile + 1;
        if filled == self.tile || self.next == self.kept {
            self.flush(filled)?;
        }
        Ok(())
    }

    /// Writes the tile's first `filled` draws of every chain.
    fn flush(&mut self, filled: usize) -> Result<(), RuntimeError> {
        self.bytes.clear();
        for u in 0..self.users {
            let o = u * self.tile * self.width;
            for v in &self.buf[o..o + filled * self.width] {
                self.bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        self.file.write_all(&self.bytes).map_err(|e| {
            RuntimeError::Config(format!(
                "cannot stream draws to {}: {e}",
                self.temp.path().display()
            ))
        })
    }

    /// The finished spill of this block.
    pub fn finish(self) -> Result<(BlockSpill, Vec<usize>), RuntimeError> {
        if self.next != self.kept {
            return Err(RuntimeError::Internal(format!(
                "a block recorded {} of {} kept draws",
                self.next, self.kept
            )));
        }
        drop(self.file);
        let spill = BlockSpill {
            temp: self.temp,
            users: self.users,
            tile: self.tile,
        };
        Ok((spill, self.distinct))
    }
}

/// One block's finished spill file.
#[derive(Debug)]
pub struct BlockSpill {
    temp: OwnedTemp,
    users: usize,
    tile: usize,
}

/// A run's draws on disk: every block's spill, in chain order. The files
/// are removed when this is dropped.
#[derive(Debug)]
pub struct Spill {
    blocks: Vec<BlockSpill>,
    kept: usize,
    read_bytes: usize,
    /// Every how many kept draws the in-memory subsample holds one.
    stride: usize,
    dim: usize,
    hamiltonian: bool,
    /// A map applied to every point as it is read back (the inverse of
    /// the data scaling a trained energy was fitted under).
    map: std::sync::OnceLock<crate::data::Scaler>,
}

impl PartialEq for Spill {
    fn eq(&self, other: &Spill) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Spill {
    pub(crate) fn new(
        stream: &Stream,
        blocks: Vec<BlockSpill>,
        kept: usize,
        stride: usize,
        dim: usize,
        hamiltonian: bool,
    ) -> Spill {
        Spill {
            blocks,
            kept,
            read_bytes: stream.read_bytes,
            stride,
            dim,
            hamiltonian,
            map: std::sync::OnceLock::new(),
        }
    }

    /// Kept draws per chain.
    pub fn kept(&self) -> usize {
        self.kept
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Maps every point read back through `scale.invert` (set once).
    pub fn invert_scale(&self, scale: &crate::data::Scaler) -> Result<(), String> {
        self.map
            .set(scale.clone())
            .map_err(|_| "the draws' scaling was already undone".to_string())
    }

    /// Visits every kept draw of `chains`, chain-major (each chain's draws
    /// in order, then the next chain), reading at most about
    /// `read_bytes` at a time.
    pub fn each_row(
        &self,
        chains: Range<usize>,
        mut f: impl FnMut(usize, usize, Row<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut first = 0;
        for b in &self.blocks {
            let mine = chains.start.max(first)..chains.end.min(first + b.users);
            if !mine.is_empty() {
                let local = mine.start - first..mine.end - first;
                self.block_rows(b, local, &mut |u, k, r| f(first + u, k, r))?;
            }
            first += b.users;
        }
        Ok(())
    }

    /// [`each_row`](Self::each_row) within one block (`chains` local to it):
    /// groups of chains whose whole series fit `read_bytes` are gathered
    /// tile by tile, then emitted chain by chain.
    fn block_rows(
        &self,
        b: &BlockSpill,
        chains: Range<usize>,
        f: &mut dyn FnMut(usize, usize, Row<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let w = width(self.dim, self.hamiltonian);
        let series = self.kept * w;
        let group = (self.read_bytes / (series.max(1) * 8)).max(1);
        let mut file = File::open(b.temp.path()).map_err(|e| self.read_error(b, e))?;
        let mut buf = Vec::new();
        let mut bytes = Vec::new();
        let mut start = chains.start;
        while start < chains.end {
            let end = (start + group).min(chains.end);
            if end - start == 1 && series * 8 > self.read_bytes {
                self.stream_chain(b, &mut file, start, &mut bytes, f)?;
            } else {
                self.gather(b, &mut file, start..end, &mut buf, &mut bytes)?;
                for (i, u) in (start..end).enumerate() {
                    for k in 0..self.kept {
                        let o = (i * self.kept + k) * w;
                        self.emit(u, k, &mut buf[o..o + w], f)?;
                    }
                }
            }
            start = end;
        }
        Ok(())
    }

    /// Reads chains `group`'s rows of every tile into `buf`
    /// (`group × kept × width`, chain-major).
    fn gather(
        &self,
        b: &BlockSpill,
        file: &mut File,
        group: Range<usize>,
        buf: &mut Vec<f64>,
        bytes: &mut Vec<u8>,
    ) -> Result<(), String> {
        let w = width(self.dim, self.hamiltonian);
        buf.resize(group.len() * self.kept * w, 0.0);
        for (first_draw, draws) in self.tiles(b) {
            let at = self.tile_offset(b, first_draw) + (group.start * draws * w * 8) as u64;
            self.read_at(b, file, at, group.len() * draws * w, bytes)?;
            for (i, row) in bytes.chunks_exact(w * 8).enumerate() {
                let (g, k) = (i / draws, first_draw + i % draws);
                let o = (g * self.kept + k) * w;
                decode(row, &mut buf[o..o + w]);
            }
        }
        Ok(())
    }

    /// Emits one chain whose series is larger than the read buffer, tile by
    /// tile.
    fn stream_chain(
        &self,
        b: &BlockSpill,
        file: &mut File,
        u: usize,
        bytes: &mut Vec<u8>,
        f: &mut dyn FnMut(usize, usize, Row<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let w = width(self.dim, self.hamiltonian);
        let mut row = vec![0.0; w];
        for (first_draw, draws) in self.tiles(b) {
            let at = self.tile_offset(b, first_draw) + (u * draws * w * 8) as u64;
            self.read_at(b, file, at, draws * w, bytes)?;
            for (i, raw) in bytes.chunks_exact(w * 8).enumerate() {
                decode(raw, &mut row);
                self.emit(u, first_draw + i, &mut row, f)?;
            }
        }
        Ok(())
    }

    /// The tiles of a block: (first kept draw, draws in it).
    fn tiles(&self, b: &BlockSpill) -> Vec<(usize, usize)> {
        (0..self.kept)
            .step_by(b.tile)
            .map(|k| (k, b.tile.min(self.kept - k)))
            .collect()
    }

    /// Where the tile starting at kept draw `first_draw` begins (every tile
    /// before it is full).
    fn tile_offset(&self, b: &BlockSpill, first_draw: usize) -> u64 {
        (first_draw * b.users * width(self.dim, self.hamiltonian) * 8) as u64
    }

    fn read_at(
        &self,
        b: &BlockSpill,
        file: &mut File,
        at: u64,
        values: usize,
        bytes: &mut Vec<u8>,
    ) -> Result<(), String> {
        bytes.resize(values * 8, 0);
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(bytes))
            .map_err(|e| self.read_error(b, e))
    }

    fn read_error(&self, b: &BlockSpill, e: std::io::Error) -> String {
        format!(
            "cannot read the streamed draws back from {}: {e}",
            b.temp.path().display()
        )
    }

    /// Calls `f` with one stored row (its point mapped back to the data's
    /// scale first, when set).
    fn emit(
        &self,
        u: usize,
        k: usize,
        raw: &mut [f64],
        f: &mut dyn FnMut(usize, usize, Row<'_>) -> Result<(), String>,
    ) -> Result<(), String> {
        let d = self.dim;
        if let Some(scale) = self.map.get() {
            scale.invert(&mut raw[..d]);
        }
        let row = Row {
            x: &raw[..d],
            cols: Columns {
                energy: raw[d],
                accept: raw[d + 1],
                divergent: raw[d + 2] != 0.0,
                hamiltonian: self.hamiltonian.then(|| raw[d + 3]),
                n_leapfrog: self.hamiltonian.then(|| raw[d + 4] as u32),
                tree_depth: self.hamiltonian.then(|| raw[d + 5] as u32),
            },
        };
        f(u, k, row)
    }
}

fn decode(raw: &[u8], out: &mut [f64]) {
    for (v, b) in out.iter_mut().zip(raw.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        *v = f64::from_le_bytes(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::targets::Banana;
    use crate::sample::{Draws, RunConfig, SamplerConfig, io, run_chains};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ebm-spill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run(sampler: &SamplerConfig, threads: usize, stream: Option<Stream>) -> Draws {
        let mut run = RunConfig::new(7, 20, 45, 3);
        run.thin = 2;
        run.threads = threads;
        run.stream = stream;
        let banana = Banana {
            a: 1.0,
            s: 1.0,
            t: 0.5,
        };
        run_chains(&banana, sampler, &run).unwrap()
    }

    /// Tiles of a few draws, read back a few chains (or less than one
    /// chain) at a time, and every 4th draw in memory: every path of the
    /// writer and the reader.
    fn tight(output: &Path, read_bytes: usize) -> Stream {
        Stream {
            output: output.to_path_buf(),
            tile_bytes: 3 * 5 * 8 * 4,
            read_bytes,
            subsample_values: 81,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A streamed run writes the bytes an in-memory run writes (CSV, NPY,
    /// CmdStan), for every sampler, thread count and buffer size; its
    /// subsample is every stride-th kept draw; its summary is the same; and
    /// its spill files go when the draws do.
    #[test]
    fn streamed_runs_write_what_in_memory_runs_write() {
        let dir = scratch("same");
        let out = dir.join("out.csv");
        let samplers = [
            SamplerConfig::ula(0.05),
            SamplerConfig::mala(0.1),
            SamplerConfig::hmc(0.1, 4),
            SamplerConfig::nuts(0.1, 5),
            SamplerConfig::pt(0.05, 3, 4.0),
        ];
        for sampler in &samplers {
            let name = sampler.method.name();
            let whole = run(sampler, 1, None);
            for (threads, read_bytes) in [(1, 1 << 20), (3, 100), (2, 2 * 23 * 8 * 8)] {
                let d = run(sampler, threads, Some(tight(&out, read_bytes)));
                let what = format!("{name}, {threads} threads, {read_bytes} read bytes");
                assert_eq!(d.stride(), 4, "{what}");
                assert_eq!((d.draws, d.stored_draws()), (6, 23), "{what}");
                assert!(io::to_csv(&d) == io::to_csv(&whole), "{what}: CSV differs");
                assert_eq!(
                    d.summary.as_ref().map(|s| s.describe()),
                    whole.summary.as_ref().map(|s| s.describe()),
                    "{what}"
                );
                for c in 0..7 {
                    for k in 0..6 {
                        assert_eq!(d.point(c, k), whole.point(c, 4 * k), "{what}");
                    }
                    // CmdStan files end with the run's wall time.
                    let cmdstan = |d: &Draws| {
                        let text = crate::sample::cmdstan::to_cmdstan(d, c, "c.csv");
                        let timed = |l: &&str| l.contains("Elapsed Time");
                        text.lines()
                            .filter(|l| !timed(l))
                            .collect::<Vec<_>>()
                            .join("\n")
                    };
                    assert!(cmdstan(&d) == cmdstan(&whole), "{what}: chain {c} differs");
                }
                io::write_npy(&dir.join("a.npy"), &d).unwrap();
                io::write_npy(&dir.join("b.npy"), &whole).unwrap();
                assert_eq!(
                    std::fs::read(dir.join("a.npy")).unwrap(),
                    std::fs::read(dir.join("b.npy")).unwrap(),
                    "{what}"
                );
                assert!(files(&dir).iter().any(|f| f.contains(".spill")), "{what}");
                drop(d);
                assert_eq!(files(&dir), ["a.npy", "b.npy"], "{what}");
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The data scaling a trained energy was fitted under is undone on the
    /// way out, for the spilled draws as for the subsample.
    #[test]
    fn scaling_is_undone_when_read_back() {
        let dir = scratch("scale");
        let sampler = SamplerConfig::mala(0.1);
        let scale = crate::data::Scaler {
            shift: vec![1.0, -2.0],
            mul: vec![0.5, 4.0],
        };
        let mut whole = run(&sampler, 1, None);
        let mut d = run(&sampler, 2, Some(tight(&dir.join("o.csv"), 64)));
        whole.invert_scale(&scale).unwrap();
        d.invert_scale(&scale).unwrap();
        assert_eq!(io::to_csv(&d), io::to_csv(&whole));
        assert_eq!(d.point(3, 2), whole.point(3, 8));
        assert!(d.invert_scale(&scale).is_err(), "undone twice");
        std::fs::remove_dir_all(&dir).ok();
    }
}
