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

/// The name of `source` (its file name without extension), or that name with `-2`, `-3`… when it
/// is taken under `parent`.
pub fn free_name(parent: &Path, source: &Path) -> String {
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().trim().to_string())
        .filter(|s| !s.starts_with('.') && !s.is_empty())
        .unwrap_or_else(|| "imported".to_string());
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

/// Makes `folder` (under `parent`) by `write` filling a staging folder beside it, renamed in once
/// whole.
pub fn write_new(
    parent: &Path,
    folder: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!(".new-{name}"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| Error::file(&staging, e))?;
    let written = write(&staging)
        .and_then(|()| std::fs::rename(&staging, folder).map_err(|e| Error::file(folder, e)));
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
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
