//! What the file-level fuzz targets share: a scratch folder holding the fixture files with one of
//! them replaced by the fuzzer's bytes, read through the same function the commands use.

#![allow(dead_code)]

use std::path::PathBuf;

pub const MODEL_CONFIG: &[u8] = include_bytes!("../../fixtures/t5-gated/config.json");
pub const MODEL_WEIGHTS: &[u8] = include_bytes!("../../fixtures/t5-gated/model.safetensors");
pub const TOKENIZER: &[u8] = include_bytes!("../../fixtures/t5-gated/tokenizer.json");
pub const ADAPTER_CONFIG: &[u8] =
    include_bytes!("../../fixtures/adapters/gated-a/adapter_config.json");
pub const ADAPTER_WEIGHTS: &[u8] =
    include_bytes!("../../fixtures/adapters/gated-a/adapter_model.safetensors");

/// A temporary folder with `files` (name, bytes) in it; removed when dropped.
pub struct Scratch {
    folder: tempfile::TempDir,
}

impl Scratch {
    pub fn with(files: &[(&str, &[u8])]) -> Self {
        let folder = tempfile::tempdir().expect("a temporary folder");
        for (name, bytes) in files {
            std::fs::write(folder.path().join(name), bytes).expect("a scratch file");
        }
        Self { folder }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    pub fn root(&self) -> PathBuf {
        self.folder.path().to_path_buf()
    }
}

/// Loads the model folder in `scratch` as every command does.
pub fn load_model(scratch: &Scratch) {
    if let Ok(files) = dialora_engine::model::ModelFiles::in_folder(&scratch.root()) {
        let _ = dialora_engine::model::LoadedModel::load(
            &files,
            "fuzzed",
            &candle_core::Device::Cpu,
        );
    }
}
