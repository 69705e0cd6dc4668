//! The app's settings file: read at start (a missing or unreadable file gives the defaults, and
//! an unreadable one is kept aside rather than lost), written atomically on every change.

use std::path::{Path, PathBuf};

use dialora_engine::fsutil::write_atomically;
use dialora_engine::{Error, Result};
use dialora_ui::protocol::Settings;

pub fn path(home: &Path) -> PathBuf {
    home.join("settings.json")
}

/// The saved settings as they are: `None` without a file, the parse error when unreadable.
pub fn read(home: &Path) -> Option<serde_json::Result<Settings>> {
    let text = std::fs::read_to_string(path(home)).ok()?;
    Some(serde_json::from_str(&text))
}

/// The window's inner size in points at start: the one last saved, else a default. Only reads:
/// the engine loads the settings, and tells of a file it cannot read.
pub fn window_size(home: &Path) -> [f32; 2] {
    read(home)
        .and_then(|settings| settings.ok()?.window_size)
        .unwrap_or([1180.0, 800.0])
}

/// The smallest window the screens are laid out for, in points.
pub const MIN_WINDOW_SIZE: [f32; 2] = [760.0, 520.0];

/// The saved settings, and a warning when the file could not be read (it is then kept aside, so
/// that the next save does not overwrite what the user had).
pub fn load(home: &Path) -> (Settings, Option<String>) {
    let file = path(home);
    match read(home) {
        None => (Settings::default(), None),
        Some(Ok(settings)) => (settings, None),
        Some(Err(error)) => {
            let kept = file.with_extension("json.unreadable");
            let _ = std::fs::rename(&file, &kept);
            let warning = format!(
                "{}:{}: the settings could not be read ({error}); the defaults are used and the old file is kept as {}",
                file.display(),
                error.line(),
                kept.display()
            );
            (Settings::default(), Some(warning))
        }
    }
}

pub fn save(home: &Path, settings: &Settings) -> Result<()> {
    std::fs::create_dir_all(home).map_err(|e| Error::file(home, e))?;
    let text = serde_json::to_string_pretty(settings)
        .map_err(|e| Error::settings(format!("cannot write the settings: {e}")))?;
    write_atomically(&path(home), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialora_ui::protocol::MeasuredSpeed;

    /// A speed read back must equal the one kept, to the last bit: the app compares them to know
    /// whether a model was measured already.
    #[test]
    fn every_number_saved_reads_back_the_same() {
        let home = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2000 {
            // Numbers of every size and of all 53 bits, as measured speeds are.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let fraction = (state >> 11) as f64 / (1u64 << 53) as f64;
            settings.speeds.push(MeasuredSpeed {
                model: format!("model {i}"),
                precision: dialora_ui::protocol::Precision::Bf16,
                gpu: false,
                tokens_per_second: fraction * 10f64.powi(i % 12 - 3),
                from_run: true,
            });
        }
        settings.speeds[0].tokens_per_second = 21103.811173538918;
        save(home.path(), &settings).unwrap();
        let (read, warning) = load(home.path());
        assert_eq!(warning, None);
        for (saved, read) in settings.speeds.iter().zip(&read.speeds) {
            assert_eq!(
                saved.tokens_per_second.to_bits(),
                read.tokens_per_second.to_bits(),
                "{} read back as {}",
                saved.tokens_per_second,
                read.tokens_per_second
            );
        }
    }
}
