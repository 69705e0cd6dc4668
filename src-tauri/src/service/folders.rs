//! The named folders of the app's home (adapters, datasets): names that are plain folder names,
//! a free name for an import, and new folders written beside the others and renamed in, so that
//! a failure leaves nothing behind.

use std::path::{Path, PathBuf};

use dialora_engine::{Error, Result};

/// The folder `name` (trimmed) under `parent`, refusing names that are not plain folder names;
/// `kind` ("an adapter", "a dataset") words the refusal.
pub fn named(parent: &Path, name: &str, kind: &str) -> Result<PathBuf> {
    let name = name.trim();
    let plain = !name.is_empty()
        && name.chars().count() <= 100
        && !name.starts_with('.')
        && !name.contains(['/', '\\', ':', '\0']);
    if !plain {
        return Err(Error::settings(format!(
            "\"{name}\" cannot name {kind}: use letters, digits, spaces, - or _ (at most 100)"
        )));
    }
    Ok(parent.join(name))
}

/// The names of the folders under `parent` (hidden ones, such as staging folders, left out),
/// sorted.
pub fn names(parent: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(parent)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The name a file or folder `source` gives: its file name without extension.
pub fn name_of(source: &Path) -> String {
    source
        .file_stem()
        .map(|s| s.to_string_lossy().trim().to_string())
        .filter(|s| !s.starts_with('.') && !s.is_empty())
        .unwrap_or_else(|| "imported".to_string())
}

/// `stem`, or `stem` with `-2`, `-3`… when it is taken under `parent`.
pub fn free_name(parent: &Path, stem: &str) -> String {
    let stem = stem.to_string();
    (1..)
        .map(|n| {
            if n == 1 {
                stem.clone()
            } else {
                format!("{stem}-{n}")
            }
        })
        .find(|candidate| !parent.join(candidate).exists())
        .unwrap_or(stem)
}

/// `parent/.{role}-{folder's name}`: hidden from [`names`], so never listed while it is made.
fn hidden_beside(parent: &Path, folder: &Path, role: &str) -> PathBuf {
    let name = folder.file_name().unwrap_or_default().to_string_lossy();
    parent.join(format!(".{role}-{name}"))
}

/// Makes `folder` (under `parent`) by `write` filling a staging folder beside it, renamed in once
/// whole.
pub fn write_new(
    parent: &Path,
    folder: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let staging = hidden_beside(parent, folder, "new");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| Error::file(&staging, e))?;
    let written = write(&staging)
        .and_then(|()| std::fs::rename(&staging, folder).map_err(|e| Error::file(folder, e)));
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

/// Replaces the folder `folder` (under `parent`) with one `write` fills: the new one is made
/// whole beside it first, and the old one is removed only once the new one is in its place.
pub fn replace(
    parent: &Path,
    folder: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let replaced = hidden_beside(parent, folder, "replaced");
    let _ = std::fs::remove_dir_all(&replaced);
    let staged = hidden_beside(parent, folder, "staged");
    write_new(parent, &staged, write)?;
    let swapped = std::fs::rename(folder, &replaced)
        .map_err(|e| Error::file(folder, e))
        .and_then(|()| {
            std::fs::rename(&staged, folder).map_err(|e| {
                // The old one goes back rather than leave nothing under the name.
                let _ = std::fs::rename(&replaced, folder);
                Error::file(folder, e)
            })
        });
    if swapped.is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    swapped?;
    let _ = std::fs::remove_dir_all(&replaced);
    Ok(())
}

/// Renames the folder `from` to `to`, refusing to replace one of that name; `kind` ("an
/// adapter") words the refusal.
pub fn rename(from: &Path, to: &Path, kind: &str) -> Result<()> {
    if to.exists() {
        let name = to.file_name().unwrap_or_default().to_string_lossy();
        return Err(Error::settings(format!(
            "{kind} named \"{name}\" exists already"
        )));
    }
    std::fs::rename(from, to).map_err(|e| Error::file(from, e))
}

pub fn delete(folder: &Path) -> Result<()> {
    std::fs::remove_dir_all(folder).map_err(|e| Error::file(folder, e))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn a_replaced_folder_holds_only_the_new_content_and_a_failed_one_keeps_the_old() {
        let parent = tempfile::tempdir().unwrap();
        let folder = parent.path().join("support");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("old.txt"), "old").unwrap();
        let failed = super::replace(parent.path(), &folder, |staging| {
            std::fs::write(staging.join("new.txt"), "half").unwrap();
            Err(dialora_engine::Error::settings("stopped"))
        });
        assert!(failed.is_err());
        assert!(folder.join("old.txt").exists() && !folder.join("new.txt").exists());
        super::replace(parent.path(), &folder, |staging| {
            std::fs::write(staging.join("new.txt"), "new")
                .map_err(|e| dialora_engine::Error::file(staging, e))
        })
        .unwrap();
        assert!(!folder.join("old.txt").exists());
        assert_eq!(
            std::fs::read_to_string(folder.join("new.txt")).unwrap(),
            "new"
        );
        let left: Vec<_> = std::fs::read_dir(parent.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no staging or replaced folder is left");
    }

    #[test]
    fn only_plain_names_name_a_folder() {
        let home = Path::new("/home/dialora/adapters");
        assert_eq!(
            super::named(home, " support ", "an adapter").unwrap(),
            home.join("support")
        );
        for bad in ["", " ", " ..", "..", ".hidden", "a/b", "a\\b", "c:", "x\0"] {
            assert!(super::named(home, bad, "an adapter").is_err(), "{bad:?}");
        }
    }
}
