//! Dialora's front end: an egui app that a non-programmer drives from picking a model to sharing
//! an adapter. It knows the engine only through the serde messages of [`protocol`] behind the
//! [`Backend`] interface, so it runs natively in-process, in tests, and compiled to WebAssembly in
//! the desktop shell's webview; it never links candle.

pub mod app;
pub mod backend;
mod messages;
pub mod plain;
pub mod presets;
pub mod protocol;
pub mod samples;
pub mod screens;
pub mod state;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod widgets;

pub use app::DialoraApp;
pub use backend::Backend;
