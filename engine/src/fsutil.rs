//! The one rule for everything dialora writes: only regular files are ever replaced, and a file
//! the user already has only when they say so (`--overwrite`); each file is written whole or not at
//! all (a temporary file beside it, flushed, renamed over it, the folder flushed so that the rename
//! survives a power cut), and the temporaries of a writer that was killed are removed by the next
//! one; a folder made for a result that never came is removed again; a folder being trained into
//! is locked against a second run.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Checks, before any work, that `path` may receive a new file: nothing there, or a regular file
/// and `overwrite`. `flag` names the setting for the message (`--output`).
pub fn check_new_file(path: &Path, overwrite: bool, flag: &str) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::file(path, e)),
        Ok(meta) if meta.is_file() && overwrite => Ok(()),
        Ok(meta) if meta.is_file() => Err(Error::exists(
            path,
            format!(
                "exists already (it may be yours): choose another {flag}, or add --overwrite to replace it"
            ),
        )),
        Ok(meta) if meta.is_dir() => Err(Error::exists(
            path,
            format!("is a folder, and {flag} names a file to write here"),
        )),
        Ok(_) => Err(not_regular(path)),
    }
}

/// The output rule for a folder a command writes the files `names` into: it must not be a file,
/// and none of `names` in it may be replaced unless `overwrite` (see `check_new_file`).
pub fn check_new_files(folder: &Path, names: &[&str], overwrite: bool) -> Result<()> {
    if folder.exists() && !folder.is_dir() {
        return Err(Error::exists(
            folder,
            "is a file, and --output names the folder to write into",
        ));
    }
    for name in names {
        check_new_file(&folder.join(name), overwrite, "--output")?;
    }
    Ok(())
}

fn not_regular(path: &Path) -> Error {
    Error::exists(
        path,
        "is not a regular file (a link, a device or a pipe), and dialora replaces only regular files (- writes to standard output)",
    )
}

/// Whether two paths name the same file (existing or not), so that one output never overwrites
/// another of the same command.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let absolute = |p: &Path| {
        let joined = std::env::current_dir().unwrap_or_default().join(p);
        let parent = joined
            .parent()
            .map(|d| d.canonicalize().unwrap_or(d.into()));
        match (parent, joined.file_name()) {
            (Some(parent), Some(name)) => parent.join(name),
            _ => joined,
        }
    };
    absolute(a) == absolute(b)
}

/// Replaces `path` with `data` atomically; refuses to replace anything but a regular file.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(not_regular(path));
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temporaries(folder, &file_name);
    let mut temporary = tempfile::Builder::new()
        .prefix(&format!(".{file_name}.{}.", std::process::id()))
        .suffix(TEMPORARY_SUFFIX)
        .tempfile_in(folder)
        .map_err(|e| Error::file(path, without_path(e)))?;
    temporary
        .as_file_mut()
        .write_all(data)
        .map_err(|e| Error::file(path, without_path(e)))?;
    keep_shareable(temporary.as_file(), path);
    temporary
        .as_file()
        .sync_all()
        .map_err(|e| Error::file(path, without_path(e)))?;
    crash_if_injected(&file_name);
    temporary
        .persist(path)
        .map_err(|e| Error::file(path, without_path(e.error)))?;
    sync_folder(folder);
    Ok(())
}

const TEMPORARY_SUFFIX: &str = ".tmp";

/// The system's error without the temporary file's path that tempfile adds: the message names
/// the user's file instead.
fn without_path(error: std::io::Error) -> std::io::Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = cause {
        if let Some(code) = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return std::io::Error::from_raw_os_error(code);
        }
        cause = current.source();
    }
    std::io::Error::new(error.kind(), error.kind().to_string())
}

/// Removes the temporaries of earlier writes of `file_name` in `folder` whose process is gone
/// (killed before its rename): `.NAME.PID.XXXXXX.tmp`.
fn remove_stale_temporaries(folder: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.");
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(middle) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(TEMPORARY_SUFFIX))
        else {
            continue;
        };
        let writer = middle
            .split_once('.')
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let stale = match writer {
            Some(pid) => !process_alive(pid),
            // Written before temporaries named their process: stale once a little old.
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 600)),
        };
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid == std::process::id() as i32 {
        return true;
    }
    // Signal 0 asks only whether the process exists (EPERM: it does, as another user's).
    let sent = unsafe { libc_kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(1)
}

#[cfg(unix)]
unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    // Without a cheap check, a temporary is taken as live; the age rule does not apply to it.
    true
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

/// A folder for a command's result, made (with its missing parents) if it was not there. Unless
/// [`NewFolder::keep`] is called, the folders it made are removed again when they are still
/// empty, so that a failed run leaves nothing behind.
#[must_use = "a new folder is removed again unless kept"]
pub struct NewFolder {
    /// The folders made, deepest first.
    made: Vec<PathBuf>,
}

impl NewFolder {
    pub fn create(path: &Path) -> Result<Self> {
        let mut missing = Vec::new();
        let mut next = Some(path);
        while let Some(folder) = next.filter(|f| !f.as_os_str().is_empty()) {
            if std::fs::symlink_metadata(folder).is_ok() {
                break;
            }
            missing.push(folder);
            next = folder.parent();
        }
        let mut new = Self { made: Vec::new() };
        // Shallowest first, one level at a time: a folder that another run made meanwhile is that
        // run's, and never removed by this one.
        for folder in missing.into_iter().rev() {
            match std::fs::create_dir(folder) {
                Ok(()) => new.made.insert(0, folder.to_path_buf()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::file(folder, e)),
            }
        }
        if !path.is_dir() {
            return Err(Error::exists(path, "is a file, not a folder"));
        }
        Ok(new)
    }

    /// The result is there: the folder stays.
    pub fn keep(mut self) {
        self.made.clear();
    }
}

impl Drop for NewFolder {
    fn drop(&mut self) {
        for folder in &self.made {
            // Fails, as it should, when the folder is not empty.
            let _ = std::fs::remove_dir(folder);
        }
    }
}

/// A lock on a folder that one run writes into; held until dropped, released by the system when
/// the process ends however it ends, so a crash never leaves it stuck.
pub struct FolderLock {
    _handle: std::fs::File,
}

impl FolderLock {
    /// Locks `folder` or says that another run holds it; `what` words the run ("training run").
    pub fn take(folder: &Path, what: &str) -> Result<Self> {
        let handle = lock_handle(folder)?;
        match handle.try_lock() {
            Ok(()) => Ok(Self { _handle: handle }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::exists(
                folder,
                format!(
                    "another {what} is writing into this folder: wait for it to end, or choose another --output"
                ),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::file(folder, e)),
        }
    }
}

/// The handle to lock: the folder itself where the system can lock one (Unix), else a file in it.
fn lock_handle(folder: &Path) -> Result<std::fs::File> {
    #[cfg(unix)]
    let opened = std::fs::File::open(folder);
    #[cfg(not(unix))]
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(folder.join(".dialora.lock"));
    opened.map_err(|e| Error::file(folder, e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_writers_temporary_is_removed_by_the_next_write() {
        let folder = tempfile::tempdir().unwrap();
        // No process has pid 4,000,000,000; one of ours is alive.
        let dead = folder.path().join(".a.json.4000000000.abc123.tmp");
        let live = folder
            .path()
            .join(format!(".a.json.{}.abc123.tmp", std::process::id()));
        let other = folder.path().join(".b.json.4000000000.abc123.tmp");
        for path in [&dead, &live, &other] {
            std::fs::write(path, "partial").unwrap();
        }
        write_atomically(&folder.path().join("a.json"), b"{}").unwrap();
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists(), "only temporaries of the file written go");
    }

    #[test]
    fn a_new_folder_left_empty_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        drop(NewFolder::create(&deep).unwrap());
        assert!(!root.path().join("a").exists());
        let kept = root.path().join("x/y");
        NewFolder::create(&kept).unwrap().keep();
        assert!(kept.is_dir());
        let filled = root.path().join("z");
        let folder = NewFolder::create(&filled).unwrap();
        std::fs::write(filled.join("f"), "1").unwrap();
        drop(folder);
        assert!(filled.join("f").exists());
    }

    #[test]
    fn a_locked_folder_refuses_a_second_run() {
        let folder = tempfile::tempdir().unwrap();
        let first = FolderLock::take(folder.path(), "training run").unwrap();
        let second = FolderLock::take(folder.path(), "training run");
        assert!(second.is_err_and(|e| e.to_string().contains("another training run")));
        drop(first);
        FolderLock::take(folder.path(), "training run").unwrap();
    }
}
