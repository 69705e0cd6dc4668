//! The engine's error type: every failure a user can cause ends here as one readable line that says
//! what went wrong and where (file, line, field), so the CLI can show it as it is, and with a
//! [`Kind`] the app words for a person, whatever the line says.

use std::path::{Path, PathBuf};

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {message}")]
    File {
        path: PathBuf,
        message: String,
        problem: FileProblem,
    },
    /// A file was read but its content is not usable; `line` is 1-based when known.
    #[error("{}", format_invalid(.path, *.line, .message))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A setting or request is not acceptable (bad option value, incompatible adapter).
    #[error("{0}")]
    Settings(String),
    /// Downloading from the model hub failed.
    #[error("{message}")]
    Hub {
        problem: HubProblem,
        message: String,
    },
    /// The work was cancelled by the user.
    #[error("cancelled")]
    Cancelled,
    /// A tensor computation failed; this is a bug or an exhausted resource, not bad input.
    #[error("computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

/// Why a file or folder could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileProblem {
    Missing,
    NoPermission,
    DiskFull,
    /// Something is in the way of a file to be written.
    Exists,
    Other,
}

/// Why the model hub could not give a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubProblem {
    /// The hub cannot be reached at all: no network, a proxy, a firewall.
    Offline,
    /// The hub answered that there is no such model, data set or file.
    NotFound,
    Other,
}

/// What went wrong, in the terms a person acts on; every error has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Missing,
    NoPermission,
    DiskFull,
    Exists,
    FileFailed,
    Invalid,
    Settings,
    Offline,
    NotOnHub,
    HubFailed,
    Cancelled,
    Compute,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Missing,
        Kind::NoPermission,
        Kind::DiskFull,
        Kind::Exists,
        Kind::FileFailed,
        Kind::Invalid,
        Kind::Settings,
        Kind::Offline,
        Kind::NotOnHub,
        Kind::HubFailed,
        Kind::Cancelled,
        Kind::Compute,
    ];
}

/// The message and kind of a file failure: an I/O error keeps its kind, a text says what is wrong.
pub struct FileCause {
    message: String,
    problem: FileProblem,
}

impl From<std::io::Error> for FileCause {
    fn from(error: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let problem = match error.kind() {
            Io::NotFound => FileProblem::Missing,
            Io::PermissionDenied | Io::ReadOnlyFilesystem => FileProblem::NoPermission,
            Io::StorageFull | Io::QuotaExceeded | Io::FileTooLarge => FileProblem::DiskFull,
            Io::AlreadyExists | Io::IsADirectory | Io::NotADirectory | Io::DirectoryNotEmpty => {
                FileProblem::Exists
            }
            _ => FileProblem::Other,
        };
        Self {
            message: error.to_string(),
            problem,
        }
    }
}

impl From<&str> for FileCause {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl From<String> for FileCause {
    fn from(message: String) -> Self {
        Self {
            message,
            problem: FileProblem::Other,
        }
    }
}

fn format_invalid(path: &Path, line: Option<usize>, message: &str) -> String {
    match line {
        Some(line) => format!("{}:{line}: {message}", path.display()),
        None => format!("{}: {message}", path.display()),
    }
}

impl Error {
    pub fn file(path: impl Into<PathBuf>, cause: impl Into<FileCause>) -> Self {
        let FileCause { message, problem } = cause.into();
        Error::File {
            path: path.into(),
            message,
            problem,
        }
    }

    /// A file or folder that should be there and is not.
    pub fn missing(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            message: message.into(),
            problem: FileProblem::Missing,
        }
    }

    /// Something already where a file would be written, kept unless the user says otherwise.
    pub fn exists(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            message: message.into(),
            problem: FileProblem::Exists,
        }
    }

    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }

    pub fn invalid_at(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            line: Some(line),
            message: message.into(),
        }
    }

    pub fn settings(message: impl Into<String>) -> Self {
        Error::Settings(message.into())
    }

    pub fn hub(problem: HubProblem, message: impl Into<String>) -> Self {
        Error::Hub {
            problem,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Error::File { problem, .. } => match problem {
                FileProblem::Missing => Kind::Missing,
                FileProblem::NoPermission => Kind::NoPermission,
                FileProblem::DiskFull => Kind::DiskFull,
                FileProblem::Exists => Kind::Exists,
                FileProblem::Other => Kind::FileFailed,
            },
            Error::Invalid { .. } => Kind::Invalid,
            Error::Settings(_) => Kind::Settings,
            Error::Hub { problem, .. } => match problem {
                HubProblem::Offline => Kind::Offline,
                HubProblem::NotFound => Kind::NotOnHub,
                HubProblem::Other => Kind::HubFailed,
            },
            Error::Cancelled => Kind::Cancelled,
            Error::Compute(_) => Kind::Compute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_kind() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Error::file("a", missing).kind(), Kind::Missing);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(Error::file("a", denied).kind(), Kind::NoPermission);
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(Error::file("a", full).kind(), Kind::DiskFull);
        assert_eq!(Error::file("a", "odd").kind(), Kind::FileFailed);
    }
}
