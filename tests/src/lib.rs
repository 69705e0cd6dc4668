//! Support for dialora's end-to-end tests: running the built `dialora` binary, the fixture paths,
//! and a mock Hugging Face Hub on loopback.

pub mod mock_hub;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's `fixtures/` folder (tiny models, adapters, data recorded by the fixtures script).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The `dialora` binary of the profile these tests were built with (build the workspace first).
pub fn dialora_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DIALORA_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let binary = profile_dir.join(format!("dialora{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build the workspace first (cargo build --release --workspace)",
        binary.display()
    );
    binary
}

/// A `dialora` command with a private, empty Hub cache and no Hub endpoint reachable.
pub fn dialora(hf_home: &Path) -> Command {
    let mut command = Command::new(dialora_binary());
    command
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HUB_OFFLINE");
    command
}

/// `dialora eval` of the fixture model `model` on `data`, writing the report folder `output`.
pub fn eval_command(home: &Path, model: &str, data: &Path, output: &Path) -> Command {
    let mut command = dialora(home);
    command
        .args(["eval", "--model"])
        .arg(fixtures().join(model))
        .arg("--data")
        .arg(data)
        .arg("--output")
        .arg(output);
    command
}

/// What a finished command printed, for assertions with readable failure messages.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn success(self) -> String {
        assert_eq!(self.code, 0, "dialora failed: {}", self.stderr);
        self.stdout
    }

    /// Asserts exit 1 with exactly one line on stderr that contains every one of `fragments`.
    pub fn clear_error(self, fragments: &[&str]) {
        assert_eq!(self.code, 1, "expected exit 1; stderr: {}", self.stderr);
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr, got: {}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        for fragment in fragments {
            assert!(
                lines[0].contains(fragment),
                "\"{fragment}\" missing from: {}",
                lines[0]
            );
        }
    }
}

/// The greedy summaries transformers recorded for parity case `case` (the fixture inputs, at
/// most 24 new tokens), from `fixtures/parity.json`.
pub fn recorded_summaries(case: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("parity.json")).expect("parity.json");
    let parity: serde_json::Value = serde_json::from_str(&text).expect("parity.json is JSON");
    parity["cases"][case]["outputs"]["greedy"]["texts"]
        .as_array()
        .unwrap_or_else(|| panic!("parity.json has no greedy texts for {case}"))
        .iter()
        .map(|t| t.as_str().expect("a recorded summary").to_string())
        .collect()
}

/// Runs a command to completion.
pub fn run(command: &mut Command) -> Run {
    command.output().expect("dialora runs").into()
}
