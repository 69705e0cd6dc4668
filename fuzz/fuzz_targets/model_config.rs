//! Fuzzes a model folder's config.json as loading reads it (with the fixture's tokenizer and
//! weights): any bytes must load or be refused, never panic or allocate by an absurd number.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let scratch = common::Scratch::with(&[
        ("config.json", data),
        ("tokenizer.json", common::TOKENIZER),
        ("model.safetensors", common::MODEL_WEIGHTS),
    ]);
    common::load_model(&scratch);
});
