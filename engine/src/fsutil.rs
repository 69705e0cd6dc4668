//! Writing files so that a crash never leaves one half-written: a temporary file beside the target,
//! flushed to disk, renamed over it, and the folder flushed so that the rename itself survives a
//! power cut.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Replaces `path` with `data` atomically.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(folder)
        .map_err(|e| Error::file(folder, e))?;
    temporary
        .write_all(data)
        .map_err(|e| Error::file(path, e))?;
    keep_shareable(temporary.as_file(), path);
    temporary
        .as_file()
        .sync_all()
        .map_err(|e| Error::file(path, e))?;
    crash_if_injected(&file_name);
    temporary
        .persist(path)
        .map_err(|e| Error::file(path, e.error))?;
    sync_folder(folder);
    Ok(())
}

/// Flushes a folder's entries (where the system allows opening a folder to do so).
fn sync_folder(folder: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = std::fs::File::open(folder) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = folder;
}

/// Fault injection for the end-to-end tests: with `DIALORA_CRASH_BEFORE_RENAME=NAME[:N]` the
/// process aborts at the N-th (default first) write of a file named NAME, after the temporary file
/// is complete and before the rename, which is where a power cut would hurt most.
fn crash_if_injected(file_name: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let Ok(target) = std::env::var("DIALORA_CRASH_BEFORE_RENAME") else {
        return;
    };
    let (name, nth) = match target.split_once(':') {
        Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
        None => (target, 1),
    };
    if name == file_name && WRITES.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        std::process::abort();
    }
}

/// Temporary files are private (0600); the files we write are for sharing, so give them the
/// permissions of the file they replace, or the usual 0644.
#[cfg(unix)]
fn keep_shareable(file: &std::fs::File, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o644);
    let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn keep_shareable(_file: &std::fs::File, _path: &Path) {}
