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
        // A rewritten file keeps its permissions (the temporary got the
        // defaults of a new file).
        if let Ok(old) = std::fs::metadata(path)
            && old.is_file()
        {
            let _ = std::fs::set_permissions(&tmp, old.permissions());
        }
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

/// Checks, before any work, that `path` can be written the way
/// [`write_via_temp`] writes it: not a folder or special file, in a folder
/// that exists (it is created) and accepts a new file (a probe file is
/// created and removed). A run whose output would fail is refused before it
/// starts instead of after.
pub fn check_writable(path: &Path) -> Result<(), String> {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.is_file()
        && !meta.file_type().is_symlink()
    {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Err(format!("cannot write {}: it is {what}", path.display()));
    }
    let probe = temp_path(path, ".probe")?;
    if let Some(dir) = probe.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot write {}: cannot create {}: {e}",
                path.display(),
                dir.display()
            )
        })?;
    }
    std::fs::File::create(&probe).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_rewrite_keeps_the_file_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ebm-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("kept.txt");
        write_atomic(&p, b"one").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"two").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(check_writable(&dir).unwrap_err().contains("it is a folder"));
        check_writable(&p).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
