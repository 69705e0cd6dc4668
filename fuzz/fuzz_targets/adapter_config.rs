//! Fuzzes a PEFT adapter folder's adapter_config.json (with the fixture adapter's weights) and,
//! from the same bytes, its weights file (with the fixture's config), as every command reads them.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let device = candle_core::Device::Cpu;
    let config = common::Scratch::with(&[
        ("adapter_config.json", data),
        ("adapter_model.safetensors", common::ADAPTER_WEIGHTS),
    ]);
    let _ = dialora_engine::adapter::read(&config.root(), &device);
    let weights = common::Scratch::with(&[
        ("adapter_config.json", common::ADAPTER_CONFIG),
        ("adapter_model.safetensors", data),
    ]);
    let _ = dialora_engine::adapter::read(&weights.root(), &device);
});
