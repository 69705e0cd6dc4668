//! Fuzzes the import of a data file through the path a file really takes (format detection on the
//! file's head, then the streamed JSONL and table readers or the transcript parsers): any bytes
//! must import or be refused in one line, never panic or grow without bound.
#![no_main]

#[path = "common.rs"]
mod common;

const NAMES: [&str; 8] = [
    "input.csv",
    "input.tsv",
    "input.jsonl",
    "input.json",
    "input.vtt",
    "input.srt",
    "input.txt",
    "input",
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let name = NAMES[choice as usize % NAMES.len()];
    let scratch = common::Scratch::with(&[(name, bytes)]);
    let options = dialora_engine::data::ImportOptions::default();
    let _ = dialora_engine::data::import(&scratch.path(name), &options);
});
