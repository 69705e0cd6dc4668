//! Support for dialora's end-to-end tests: running the built `dialora` binary, the fixture paths,
//! and a mock Hugging Face Hub on loopback.

pub mod mock_hub;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    /// The child's peak resident memory, when it ran through [`run_measured`].
    pub peak_bytes: Option<u64>,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            peak_bytes: None,
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

/// The most memory any one command may hold, whatever it is given.
pub const MEMORY_CEILING_BYTES: u64 = 2 << 30;

/// How long a command may run before it is taken for hung and killed.
const HUNG_AFTER: Duration = Duration::from_secs(120);

/// Runs a command to completion with stdin closed, measures its peak resident memory (that of
/// its own children included) and asserts that it stayed under [`MEMORY_CEILING_BYTES`]. A
/// command still running after two minutes is killed, so that a hang fails the test instead of
/// stalling the suite.
// The child is reaped by wait4 below, which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn run_measured(command: &mut Command) -> Run {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dialora runs");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped stderr")));
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut hung = false;
    // wait4, not Child::wait: only it reports the child's own peak memory. Polled, to notice a hang.
    loop {
        // SAFETY: pid is our unreaped child; status and usage are valid for writes.
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if waited == pid {
            break;
        }
        if waited < 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::Interrupted,
                "wait4: {error}"
            );
            continue;
        }
        if started.elapsed() > HUNG_AFTER && !hung {
            hung = true;
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let mut stderr = stderr.join().expect("stderr reader");
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        stderr.push_str(&format!("[test harness: killed by signal {signal}]\n"));
    }
    assert!(
        !hung,
        "still running after {HUNG_AFTER:?}; stderr: {stderr}"
    );
    // ru_maxrss is in KiB on Linux.
    let peak_bytes = usage.ru_maxrss as u64 * 1024;
    assert!(
        peak_bytes < MEMORY_CEILING_BYTES,
        "peak memory {} MiB is over the {} MiB ceiling; stderr: {stderr}",
        peak_bytes >> 20,
        MEMORY_CEILING_BYTES >> 20
    );
    Run {
        code,
        stdout: stdout.join().expect("stdout reader"),
        stderr,
        peak_bytes: Some(peak_bytes),
    }
}
