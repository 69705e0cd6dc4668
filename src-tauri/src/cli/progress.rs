//! A progress bar on the terminal for engine progress reports (hidden when stderr is not a terminal).

use std::sync::Mutex;

use dialora_engine::task::{Progress, ProgressSink};
use indicatif::{ProgressBar, ProgressStyle};

pub struct TerminalProgress {
    bar: Mutex<Option<(String, ProgressBar)>>,
}

impl TerminalProgress {
    pub fn new() -> Self {
        Self {
            bar: Mutex::new(None),
        }
    }

    fn new_bar(progress: &Progress) -> ProgressBar {
        let bar = ProgressBar::new(progress.total);
        let template = if progress.stage.starts_with("downloading") {
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg} {bar:30} {pos}/{len} [{elapsed} < {eta}]"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(progress.stage.clone());
        bar
    }
}

impl ProgressSink for TerminalProgress {
    fn report(&self, progress: Progress) {
        let Ok(mut slot) = self.bar.lock() else {
            return;
        };
        let same_stage = slot
            .as_ref()
            .is_some_and(|(stage, _)| *stage == progress.stage);
        if !same_stage {
            if let Some((_, old)) = slot.take() {
                old.finish_and_clear();
            }
            *slot = Some((progress.stage.clone(), Self::new_bar(&progress)));
        }
        if let Some((_, bar)) = slot.as_ref() {
            bar.set_length(progress.total);
            bar.set_position(progress.done);
            if progress.total > 0 && progress.done >= progress.total {
                bar.finish_and_clear();
            }
        }
    }
}
