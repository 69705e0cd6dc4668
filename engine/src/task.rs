//! What long-running engine work shares with whoever started it: a cancellation flag checked at
//! safe points, and progress reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// A cancellation flag; clones share it. Work checks it between steps and stops with
/// [`Error::Cancelled`], leaving nothing half-written.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a clone of this flag is still held elsewhere (by the work it was made for).
    pub fn shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A progress report: `done` of `total` units of the named stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub stage: String,
    pub done: u64,
    pub total: u64,
}

/// Receives progress reports; implemented by the CLI's progress bar and the app's event channel.
pub trait ProgressSink: Send + Sync {
    fn report(&self, progress: Progress);
}

/// Discards reports.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _progress: Progress) {}
}
