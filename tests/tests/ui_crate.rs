//! The UI crate's boundaries: it compiles for WebAssembly (the desktop shell runs it in a webview)
//! and never depends on candle (the engine stays behind the messages).

use std::path::PathBuf;
use std::process::Command;

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    command
}

#[test]
fn the_ui_compiles_for_webassembly() {
    // Its own target folder: the one this test was built in is locked by the running cargo.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
        .join("wasm-check");
    let output = cargo()
        .args(["check", "--quiet", "-p", "dialora-ui", "--lib"])
        .args(["--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(&target)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "dialora-ui does not compile for wasm32-unknown-unknown (is the target installed? \
         rustup target add wasm32-unknown-unknown):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
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
