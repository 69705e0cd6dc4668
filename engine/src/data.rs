//! Dialogue data: reading DialogSum-shaped JSONL (`id` or `fname`, `dialogue`, `summary` or
//! `summary1..3`) with a clear message for every row that cannot be used.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// Largest input file read into memory.
const MAX_FILE_BYTES: u64 = 2 << 30;

/// One dialogue and its reference summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialogue {
    /// The row's `id` or `fname`; absent ids become `None` (the caller numbers them).
    pub id: Option<Value>,
    pub dialogue: String,
    pub summaries: Vec<String>,
}

/// The UTF-8 text of a file without a leading byte-order mark; non-UTF-8 bytes are reported with
/// their line.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        }),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            Err(Error::invalid_at(path, line, "the file is not UTF-8 text"))
        }
    }
}

/// The JSON object on each non-blank line of a JSONL file, with its 1-based line number; refuses
/// files over 2 GiB, non-UTF-8 text, invalid JSON and lines that are not objects, naming the line.
pub fn read_json_lines(path: &Path) -> Result<Vec<(usize, serde_json::Map<String, Value>)>> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::file(path, e))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(Error::invalid(
            path,
            format!("the file is {size} bytes; dialora reads files of up to 2 GiB"),
        ));
    }
    let text = read_text(path)?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let row: Value = serde_json::from_str(line)
            .map_err(|e| Error::invalid_at(path, number, format!("invalid JSON: {e}")))?;
        let Value::Object(object) = row else {
            return Err(Error::invalid_at(
                path,
                number,
                "each line must be a JSON object",
            ));
        };
        rows.push((number, object));
    }
    Ok(rows)
}

/// Reads a JSONL file of dialogues; refuses empty files, non-UTF-8 text, invalid JSON and rows
/// without a `dialogue` text, naming the line.
pub fn read_jsonl(path: &Path) -> Result<Vec<Dialogue>> {
    let mut dialogues = Vec::new();
    for (number, object) in read_json_lines(path)? {
        let dialogue = match object.get("dialogue") {
            Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
            Some(Value::String(_)) => {
                return Err(Error::invalid_at(
                    path,
                    number,
                    "field \"dialogue\" is empty",
                ));
            }
            Some(_) => {
                return Err(Error::invalid_at(
                    path,
                    number,
                    "field \"dialogue\" must be a string",
                ));
            }
            None => {
                return Err(Error::invalid_at(
                    path,
                    number,
                    "missing field \"dialogue\"",
                ));
            }
        };
        let id = object.get("id").or_else(|| object.get("fname")).cloned();
        let summaries = ["summary", "summary1", "summary2", "summary3"]
            .iter()
            .filter_map(|key| object.get(*key).and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        dialogues.push(Dialogue {
            id,
            dialogue,
            summaries,
        });
    }
    if dialogues.is_empty() {
        return Err(Error::invalid(path, "the file has no dialogues"));
    }
    Ok(dialogues)
}
