//! Atomic file output: every file the tool writes goes through a temporary
//! file in the destination folder and a rename, so a reader (or a crash) never
//! sees a partial file and an earlier good file survives a failed write.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Runs `write` on a temporary path beside `path`, then renames it into place.
/// `suffix` keeps the temporary's extension meaningful to writers that look at
/// it (image encoders). On failure the temporary is removed.
pub fn write_via_temp(
    path: &Path,
    suffix: &str,
    write: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let tmp = temp_path(path, suffix)?;
    let result = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically (synced before the rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_via_temp(path, "", |tmp| {
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        write().map_err(|e| format!("cannot write {}: {e}", path.display()))
    })
}

fn temp_path(path: &Path, suffix: &str) -> Result<PathBuf, String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file path", path.display()))?
        .to_string_lossy()
        .into_owned();
    Ok(dir.join(format!(".{name}.tmp{}{suffix}", std::process::id())))
}
