//! The engine's error type: every failure a user can cause ends here as one readable line that says
//! what went wrong and where (file, line, field), so the CLI and the app can show it as it is.

use std::path::{Path, PathBuf};

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read or written.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
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
    #[error("{0}")]
    Hub(String),
    /// The work was cancelled by the user.
    #[error("cancelled")]
    Cancelled,
    /// A tensor computation failed; this is a bug or an exhausted resource, not bad input.
    #[error("computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

fn format_invalid(path: &Path, line: Option<usize>, message: &str) -> String {
    match line {
        Some(line) => format!("{}:{line}: {message}", path.display()),
        None => format!("{}: {message}", path.display()),
    }
}

impl Error {
    pub fn file(path: impl Into<PathBuf>, error: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.into(),
            message: error.to_string(),
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
}
