//! The UI crate's boundary: it never depends on candle (the engine stays behind the messages),
//! natively or as the WebAssembly the desktop shell's build compiles it to.

use std::process::Command;

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    command
}

#[test]
fn the_ui_never_links_candle() {
    let output = cargo()
        .args([
            "tree",
            "--quiet",
            "-p",
            "dialora-ui",
            "--edges",
            "normal,build",
            "--target",
            "all",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(tree.contains("egui"), "not the UI's tree:\n{tree}");
    for forbidden in ["candle", "dialora-engine", "tokenizers"] {
        assert!(
            !tree.lines().any(|l| l.starts_with(forbidden)),
            "dialora-ui depends on {forbidden}"
        );
    }
}
