//! Builds what the Tauri window shows: the `ui` crate compiled to WebAssembly and bound to
//! JavaScript by wasm-bindgen, beside the page that starts it, all in `$OUT_DIR/web` (the shell
//! embeds them). Then Tauri's own build step: the app's permissions and the platform resources.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the `ui` crate's sources are; a change there rebuilds the page.
const UI_CRATE: &str = "../ui";
/// The page and its script, copied beside the generated module.
const PAGE: &str = "web";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    if let Err(error) = build_web_ui() {
        // One clear message; cargo shows it with the failed build script.
        eprintln!("error: {error}");
        std::process::exit(1);
    }
    let commands = tauri_build::AppManifest::new().commands(&["send"]);
    if let Err(error) =
        tauri_build::try_build(tauri_build::Attributes::new().app_manifest(commands))
    {
        eprintln!("error: tauri-build: {error:#}");
        std::process::exit(1);
    }
}

fn build_web_ui() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env("OUT_DIR")?);
    for watched in ["src", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={UI_CRATE}/{watched}");
    }
    println!("cargo:rerun-if-changed=../Cargo.lock");
    println!("cargo:rerun-if-changed={PAGE}");

    let release = env("PROFILE")? == "release";
    let wasm = compile_ui(&manifest_dir.join(UI_CRATE), &out_dir, release)?;
    let web = out_dir.join("web");
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .out_name("dialora_ui")
        .web(true)
        .map_err(|e| format!("wasm-bindgen: {e:#}"))?
        .typescript(false)
        .generate(&web)
        .map_err(|e| {
            format!(
                "wasm-bindgen on {}: {e:#} (the ui crate's wasm-bindgen version must equal this \
                 build script's wasm-bindgen-cli-support)",
                wasm.display()
            )
        })?;
    for entry in std::fs::read_dir(manifest_dir.join(PAGE)).map_err(|e| format!("{PAGE}/: {e}"))? {
        let path = entry.map_err(|e| format!("{PAGE}/: {e}"))?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, web.join(name))
                .map_err(|e| format!("copying {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Runs cargo on the `ui` crate for wasm32 as a cdylib, in a target folder of its own: the
/// running cargo holds the lock on this one. Returns the module's path.
fn compile_ui(ui_crate: &Path, out_dir: &Path, release: bool) -> Result<PathBuf, String> {
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<package>-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(out_dir)
        .join("wasm-ui");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "rustc",
            "--lib",
            "--crate-type",
            "cdylib",
            "--target",
            WASM_TARGET,
        ])
        .arg("--manifest-path")
        .arg(ui_crate.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .args(if release { &["--release"][..] } else { &[][..] })
        // The host's flags and clippy's wrapper are not for this target; debug info would be
        // stripped by wasm-bindgen anyway.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        // Cargo reads build-script directives from stdout; its own messages go to stderr.
        .stdout(Stdio::null());
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo to build the UI for the webview: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the UI for the webview failed (above). Is the {WASM_TARGET} target \
             installed? `rustup target add {WASM_TARGET}` (scripts/setup does it)"
        ));
    }
    let profile = if release { "release" } else { "debug" };
    Ok(target_dir
        .join(WASM_TARGET)
        .join(profile)
        .join("dialora_ui.wasm"))
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("cargo did not set {name}"))
}
