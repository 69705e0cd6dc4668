//! Dialora's engine: Flan-T5 (any T5-family checkpoint) with LoRA adapters on candle, tokenization,
//! generation, adapter files and model sources. It has no GUI dependency; the CLI and the app drive it.

pub mod adapter;
pub mod data;
pub mod error;
pub mod eval;
pub mod fsutil;
pub mod generate;
pub mod hub;
pub mod long_input;
pub mod lora;
pub mod model;
pub mod report;
pub mod rng;
pub mod rouge;
pub mod runtime;
pub mod summarize;
pub mod task;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};
