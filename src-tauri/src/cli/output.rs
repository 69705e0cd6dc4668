//! Where the commands put their results: standard output, where a reader that goes away (`| head`)
//! ends the command quietly and a full disk is one line; and `--output`, a file under the one
//! output rule of `fsutil` or `-` for standard output.

use std::io::Write;
use std::path::{Path, PathBuf};

use dialora_engine::fsutil::{check_new_file, write_atomically};
use dialora_engine::{Error, Result};

/// Writes `text` to standard output. When the reader has gone, the process ends at once with
/// status 0: what it would have printed is unwanted, and the rest of its work was printing.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::file("standard output", e)),
    }
}

/// A file the user named with `--output` (or `-`, standard output).
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl Destination {
    /// Checks `path` before any work: `-`, or a file that may be written (see `check_new_file`).
    pub fn checked(path: &Path, overwrite: bool, flag: &str) -> Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Destination::Stdout);
        }
        check_new_file(path, overwrite, flag)?;
        Ok(Destination::File(path.to_path_buf()))
    }

    pub fn write(&self, data: &[u8]) -> Result<()> {
        match self {
            Destination::Stdout => print(&String::from_utf8_lossy(data)),
            Destination::File(path) => write_atomically(path, data),
        }
    }

    /// For messages: the file, or "standard output".
    pub fn describe(&self) -> String {
        match self {
            Destination::Stdout => "standard output".to_string(),
            Destination::File(path) => path.display().to_string(),
        }
    }

    /// Refuses two outputs of one command that are the same file (the second would replace the
    /// first).
    pub fn distinct(&self, other: &Destination, flags: (&str, &str)) -> Result<()> {
        let same = match (self, other) {
            (Destination::Stdout, Destination::Stdout) => true,
            (Destination::File(a), Destination::File(b)) => dialora_engine::fsutil::same_file(a, b),
            _ => false,
        };
        if same {
            return Err(Error::settings(format!(
                "{} and {} name the same file ({}): give each its own",
                flags.0,
                flags.1,
                self.describe()
            )));
        }
        Ok(())
    }
}
