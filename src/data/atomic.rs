//! Atomic file output: every file the tool writes goes through a temporary
//! file in the destination folder and a rename, so a reader (or a crash) never
//! sees a partial file and an earlier good file survives a failed write.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files that exist now. Every temporary is created, renamed into
/// place and removed while this lock is held, and an interrupted process
/// removes them on its way out ([`remove_live_temps_and_exit`]) holding it
/// for good: so no half-written temporary outlives a Ctrl-C or a SIGTERM,
/// and none can be created after that sweep.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding it leaves a plain list behind: still usable.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes every temporary file a write in progress holds and ends the
/// process with `code` (the binary's signal handler). The destinations are
/// not touched: each holds its previous content, or the whole new content
/// when its rename came first.
pub fn remove_live_temps_and_exit(code: i32) -> ! {
    let mut temps = live();
    for tmp in temps.drain(..) {
        let _ = std::fs::remove_file(tmp);
    }
    // Never released: a thread about to create or rename a temporary waits
    // here until the process is gone, so none appears after the sweep.
    std::mem::forget(temps);
    std::process::exit(code)
}

/// Creates the temporary `tmp` and registers it, in one step under the
/// lock (a temporary registered but not yet created could escape the
/// sweep).
fn create_live(tmp: &Path, output: &Path) -> Result<File, String> {
    let mut temps = live();
    let file = File::create(tmp).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    temps.push(tmp.to_path_buf());
    Ok(file)
}

/// Removes `tmp` from disk and from the register, under the lock.
fn remove_live(tmp: &Path) {
    let mut temps = live();
    let _ = std::fs::remove_file(tmp);
    temps.retain(|t| t != tmp);
}

/// Writes `path` through `write`, which fills a temporary file beside it,
/// then renames the temporary into place. On failure the temporary is
/// removed and `path` keeps its previous content.
pub fn write_via_temp(
    path: &Path,
    write: impl FnOnce(&mut File) -> Result<(), String>,
) -> Result<(), String> {
    let tmp = temp_path(path, "")?;
    remove_stale_temps(path);
    let mut file = create_live(&tmp, path)?;
    let written = write(&mut file);
    drop(file);
    if written.is_err() {
        remove_live(&tmp);
        return written;
    }
    // A rewritten file keeps its permissions (the temporary got the
    // defaults of a new file).
    if let Ok(old) = std::fs::metadata(path)
        && old.is_file()
    {
        let _ = std::fs::set_permissions(&tmp, old.permissions());
    }
    let mut temps = live();
    let renamed =
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    temps.retain(|t| t != &tmp);
    renamed
}

/// A temporary file beside an output that lives as long as this guard:
/// scratch a long write streams through (a sampler's spilled draws). It is
/// named like [`write_via_temp`]'s temporaries (`.NAME.tmpPID…`), so it is
/// removed on SIGINT/SIGTERM and, after a SIGKILL, by the next write of the
/// same output; dropping the guard removes it.
#[derive(Debug)]
pub struct OwnedTemp {
    path: PathBuf,
}

impl OwnedTemp {
    /// Creates `.NAME.tmpPID{suffix}` beside `output`, open for writing.
    /// Stale temporaries of `output` are not swept here (a scan of the
    /// whole folder per block of a run): [`check_writable`], run before
    /// the work starts, does that once.
    pub fn create(output: &Path, suffix: &str) -> Result<(OwnedTemp, File), String> {
        let path = temp_path(output, suffix)?;
        let file = create_live(&path, &path)?;
        Ok((OwnedTemp { path }, file))
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnedTemp {
    fn drop(&mut self) {
        remove_live(&self.path);
    }
}

/// The folder `path` is written in: its parent, or `.` for a bare name.
pub fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Free bytes (for an unprivileged user) on the filesystem that holds the
/// folder of `path`, when the system says.
pub fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(folder_of(path).as_os_str().as_bytes()).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c` is a NUL-terminated path and `st` a writable statvfs;
        // it is read only when the call succeeds.
        let ok = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } == 0;
        // SAFETY: initialised by the successful call above.
        let st = ok.then(|| unsafe { st.assume_init() })?;
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Removes temporaries of `path` left by processes that no longer run (a
/// SIGKILL gives no chance to clean up): `.NAME.tmpPID…` beside it whose
/// PID is not a live process. Only Linux says cheaply whether a PID lives.
pub fn remove_stale_temps(path: &Path) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let (dir, Some(name)) = (folder_of(path), path.file_name()) else {
        return;
    };
    let prefix = format!(".{}.tmp", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if pid != std::process::id() && !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` atomically (synced before the rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_streamed(path, |w| {
        w.write_all(bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    })
}

/// Writes `path` atomically from `write`, which streams the content into a
/// buffered writer (synced before the rename): a file of any size in
/// bounded memory.
pub fn write_streamed(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<(), String>,
) -> Result<(), String> {
    write_via_temp(path, |file| {
        let failed = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut *file);
        write(&mut w)?;
        w.into_inner().map_err(|e| failed(e.into_error()))?;
        file.sync_all().map_err(failed)
    })
}

/// An existing `path` that is not a file (or a link to one): a folder or a
/// special file cannot be replaced by an output. Touches nothing.
pub fn not_a_file(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() && !meta.file_type().is_symlink() => {
            let what = if meta.is_dir() {
                "a folder"
            } else {
                "not a regular file"
            };
            Err(format!("cannot write {}: it is {what}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Checks, before any work, that `path` can be written the way
/// [`write_via_temp`] writes it: not a folder or special file, in a folder
/// that exists (it is created) and accepts a new file (a probe file is
/// created and removed). A run whose output would fail is refused before it
/// starts instead of after. Temporaries of `path` left by a killed process
/// are removed.
pub fn check_writable(path: &Path) -> Result<(), String> {
    not_a_file(path)?;
    remove_stale_temps(path);
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
    let dir = folder_of(path);
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
