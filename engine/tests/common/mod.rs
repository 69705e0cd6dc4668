//! What the engine's parity tests share: running a test binary again at every kernel level.

use std::process::Command;

use dialora_engine::model::{KernelLevel, kernel_level};

/// Set in the runs [`passes_at_every_kernel_level`] starts, which do not start runs of their own.
const CHILD: &str = "DIALORA_TEST_LEVEL_CHILD";

/// Runs every other test of this test binary again at each kernel level this CPU runs besides the
/// one this process runs at (`DIALORA_CPU`, else the best), so that the paths other machines take
/// (candle's own operations as on a GPU, the portable kernels, AVX2) are proven here too. Call it
/// from a test named `passes_at_every_kernel_level`.
pub fn passes_at_every_kernel_level() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let this = kernel_level().expect("DIALORA_CPU names a level this CPU runs");
    let exe = std::env::current_exe().expect("the test binary's path");
    let others: Vec<KernelLevel> = KernelLevel::available()
        .into_iter()
        .filter(|&level| level != this)
        .collect();
    assert!(!others.is_empty(), "this CPU runs only {this:?}");
    for level in others {
        // Under an emulator (scripts/arm-tests) the binary runs through it.
        let runner = std::env::var("DIALORA_TEST_RUNNER").unwrap_or_default();
        let mut words = runner.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(&exe);
                command
            }
            None => Command::new(&exe),
        };
        let output = command
            .env("DIALORA_CPU", level.name())
            .env(CHILD, "1")
            .args(["--skip", "passes_at_every_kernel_level"])
            .output()
            .expect("the test binary runs again");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "at DIALORA_CPU={}:\n{stdout}\n{}",
            level.name(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("test result: ok") && !stdout.contains(" 0 passed"),
            "at DIALORA_CPU={} nothing ran:\n{stdout}",
            level.name()
        );
    }
}
