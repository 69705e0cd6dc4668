//! Fuzzes a model's weights file (safetensors: header length, JSON header, data) as loading reads
//! it, with the fixture's config and tokenizer.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let scratch = common::Scratch::with(&[
        ("config.json", common::MODEL_CONFIG),
        ("tokenizer.json", common::TOKENIZER),
        ("model.safetensors", data),
    ]);
    common::load_model(&scratch);
});
