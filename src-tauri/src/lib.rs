//! The Dialora desktop application: the engine service behind the app's messages and the native
//! window; `main.rs` adds the command-line interface.

pub mod native;
pub mod service;
