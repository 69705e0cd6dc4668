//! Fuzzes single-file adapters (.dlora: safetensors whose metadata carries the PEFT config and the
//! card) as import, inspect and summarize read them.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let scratch = common::Scratch::with(&[("shared.dlora", data)]);
    let path = scratch.path("shared.dlora");
    let _ = dialora_engine::adapter::read(&path, &candle_core::Device::Cpu);
    let _ = dialora_engine::adapter::describe(&path);
});
