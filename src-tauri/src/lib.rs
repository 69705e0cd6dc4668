//! The Dialora desktop application: the engine service behind the app's messages, the Tauri
//! window with the UI in its webview, and the native fallback window; `main.rs` adds the
//! command-line interface.

pub mod native;
pub mod service;
pub mod shell;
