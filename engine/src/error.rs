//! The engine's error type: every failure a user can cause ends here as one readable line that says
//! what went wrong and where (file, line, field), so the CLI can show it as it is, and with a
//! [`Kind`] the app words for a person, whatever the line says.

use std::path::{Path, PathBuf};

pub use dialora_settings::{Sentence, Words};

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
    #[error("{}", format_invalid(.path, *.line, &.message.to_string()))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: Sentence,
    },
    /// A setting or request is not acceptable (bad option value, incompatible adapter).
    #[error("{0}")]
    Settings(String),
    /// A setting's value cannot be used; it names the setting, which each front end words.
    #[error("{0}")]
    Refused(#[from] dialora_settings::Refusal),
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

    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<Sentence>) -> Self {
        Error::Invalid {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }

    pub fn invalid_at(path: impl Into<PathBuf>, line: usize, message: impl Into<Sentence>) -> Self {
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

    /// The error in a front end's words; `Display` gives the command line's.
    pub fn worded(&self, words: &dyn Words) -> String {
        match self {
            Error::Invalid {
                path,
                line,
                message,
            } => format_invalid(path, *line, &message.worded(words)),
            Error::Refused(refusal) => refusal.worded(words),
            other => other.to_string(),
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
            Error::Settings(_) | Error::Refused(_) => Kind::Settings,
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

/// Reads the JSON file `path` (its `bytes`) as a `T`; a failure names the line and the field and
/// says what was expected in words, never in Rust's type names. `what` says what the file should be.
pub fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    what: &str,
) -> Result<T> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut reader).map_err(|error| {
        let field = error.path().to_string();
        let inner = error.into_inner();
        let line = inner.line();
        let message = json_problem(&inner);
        let message = if field.is_empty() || field == "." {
            format!("{what}: {message}")
        } else {
            format!("{what}: field \"{field}\": {message}")
        };
        if line > 0 {
            Error::invalid_at(path, line, message)
        } else {
            Error::invalid(path, message)
        }
    })
}

/// A JSON parser's or decoder's complaint in plain words, without its position.
pub fn json_problem(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    plain_type_words(text)
}

/// serde's "invalid type: string \"32\", expected usize" as "expected a whole number (0 or
/// more), found the text \"32\"".
fn plain_type_words(text: &str) -> String {
    let expected = |want: &str| -> String {
        let want = want.trim();
        match want {
            "usize" | "u8" | "u16" | "u32" | "u64" => "a whole number (0 or more)".to_string(),
            "isize" | "i8" | "i16" | "i32" | "i64" => "a whole number".to_string(),
            "f32" | "f64" => "a number".to_string(),
            "a boolean" => "true or false".to_string(),
            "a string" => "text in quotes".to_string(),
            "a sequence" => "a list [...]".to_string(),
            "a map" => "an object {...}".to_string(),
            other => other.to_string(),
        }
    };
    let found = |what: &str| -> String {
        let what = what.trim();
        if let Some(rest) = what.strip_prefix("string ") {
            return format!("the text {rest}");
        }
        for kind in ["integer ", "floating point "] {
            if let Some(rest) = what.strip_prefix(kind) {
                return rest.trim_matches('`').to_string();
            }
        }
        match what {
            "sequence" => "a list".to_string(),
            "map" => "an object".to_string(),
            other => other.trim_matches('`').to_string(),
        }
    };
    if let Some(kind) = text.strip_prefix("data did not match any variant of untagged enum ") {
        return match kind {
            "TargetModules" => {
                "expected a list of module names such as [\"q\", \"v\"], or one regular expression"
                    .to_string()
            }
            _ => "not a value this field takes".to_string(),
        };
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = text.strip_prefix(prefix)
            && let Some((what, want)) = rest.rsplit_once(", expected ")
        {
            return format!("expected {}, found {}", expected(want), found(what));
        }
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_field_in_plain_words() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Config {
            num_layers: usize,
        }
        let path = Path::new("config.json");
        let error = read_json::<Config>(path, b"{\n \"num_layers\": \"32\"}", "not a model config")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "config.json:2: not a model config: field \"num_layers\": expected a whole number (0 or more), found the text \"32\""
        );
        let error = read_json::<Config>(path, b"{\"num_layers\": -1}", "x")
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("expected a whole number (0 or more), found -1"),
            "{error}"
        );
    }

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
