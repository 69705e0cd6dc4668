//! Failures as the UI receives them: the engine's kinds of error mapped to the protocol's (the
//! one place that does it), and each failure kept in the app's log file, which the UI can show.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use dialora_engine::Error;
use dialora_engine::error::Kind;
use dialora_ui::protocol::{Problem, ProblemKind};
use dialora_ui::widgets;

/// A log file past this size is moved aside (one old file is kept) before the next line.
const LOG_LIMIT_BYTES: u64 = 1 << 20;
/// How much of the log the UI is shown.
const SHOWN_BYTES: usize = 64 << 10;

/// The protocol's kind of an engine error.
pub fn kind(kind: Kind) -> ProblemKind {
    match kind {
        Kind::Missing => ProblemKind::Missing,
        Kind::NoPermission => ProblemKind::NoPermission,
        Kind::DiskFull => ProblemKind::DiskFull,
        Kind::Exists => ProblemKind::Exists,
        Kind::FileFailed => ProblemKind::FileFailed,
        Kind::Invalid => ProblemKind::Invalid,
        Kind::Settings => ProblemKind::Settings,
        Kind::Offline => ProblemKind::Offline,
        Kind::NotOnHub => ProblemKind::NotOnHub,
        Kind::HubFailed => ProblemKind::HubFailed,
        Kind::Cancelled => ProblemKind::Stopped,
        Kind::Compute => ProblemKind::Internal,
    }
}

/// An engine error as the UI is told of it, `detail` being its line in the app's words.
pub fn problem(error: &Error, detail: String) -> Problem {
    Problem {
        kind: kind(error.kind()),
        detail,
    }
}

/// The app's log of failures: `<home>/dialora.log`, one line each.
#[derive(Clone)]
pub struct Log {
    path: PathBuf,
}

impl Log {
    pub fn new(home: &Path) -> Self {
        Self {
            path: home.join("dialora.log"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `problem` of the work `what`; a log that cannot be written costs nothing else.
    pub fn record(&self, what: &str, problem: &Problem) {
        let too_big = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.is_file() && m.len() > LOG_LIMIT_BYTES);
        if too_big {
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
        }
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let line = format!(
            "{} UTC  {what}  {:?}  {}\n",
            widgets::date(seconds),
            problem.kind,
            problem.detail.replace('\n', " ")
        );
        if let Some(folder) = self.path.parent() {
            let _ = std::fs::create_dir_all(folder);
        }
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
    }

    /// The end of the log, whole lines, newest last.
    pub fn tail(&self) -> String {
        let text = std::fs::read(&self.path).unwrap_or_default();
        let start = text.len().saturating_sub(SHOWN_BYTES);
        let text = String::from_utf8_lossy(&text[start..]);
        match (start, text.find('\n')) {
            (0, _) | (_, None) => text.into_owned(),
            (_, Some(newline)) => text[newline + 1..].to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_each_failure_on_a_line() {
        let home = tempfile::tempdir().unwrap();
        let log = Log::new(home.path());
        let problem = Problem {
            kind: ProblemKind::Offline,
            detail: "x: cannot be reached\nsecond".into(),
        };
        log.record("Loading the model", &problem);
        log.record("Loading the model", &problem);
        let tail = log.tail();
        assert_eq!(tail.lines().count(), 2, "{tail}");
        assert!(tail.contains("Loading the model  Offline  x: cannot be reached second"));
    }
}
