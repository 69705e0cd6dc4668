//! Fuzzes the data import of a `.vtt` file: any text must import or be refused, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        dialora_engine::data::parse_for_fuzzing(text, "input.vtt");
    }
});
