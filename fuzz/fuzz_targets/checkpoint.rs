//! Fuzzes training checkpoints as the app and `--resume` read them: the step a stopped run
//! reached, from the checkpoint's header and metadata.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let scratch = common::Scratch::with(&[("training-checkpoint.safetensors", data)]);
    let _ = dialora_engine::train::stopped_at(&scratch.root());
});
