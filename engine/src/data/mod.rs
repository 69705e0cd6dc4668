//! Dialogue data: one model for everything users bring (an id, turns of speaker and text, zero or
//! more reference summaries) read from DialogSum JSONL, JSON arrays, CSV/TSV exports, WebVTT and
//! SRT captions and plain `Name: text` transcripts, told apart by content as well as extension;
//! rendered to the model's input as written or DialogSum's `#Person1#` way; checked (counts,
//! lengths against the source window, duplicates, empty rows) and split with a seed. Every row that
//! cannot be used is reported with its file and line.

mod table;
mod transcript;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result, Sentence, Words};
use crate::rng::SplitMix64;
use crate::tokenize::TextTokenizer;
use dialora_settings::Setting;

/// Largest input file read.
const MAX_FILE_BYTES: u64 = 1 << 30;
/// Largest data file read line by line.
const MAX_STREAMED_BYTES: u64 = 16 << 30;
/// Longest line of a text file.
const MAX_LINE_BYTES: usize = 16 << 20;

const DIALOGUE_NAMES: [&str; 7] = [
    "dialogue",
    "dialog",
    "conversation",
    "transcript",
    "text",
    "chat",
    "input",
];
const SUMMARY_NAMES: [&str; 9] = [
    "summary",
    "summary1",
    "summary2",
    "summary3",
    "abstract",
    "notes",
    "target",
    "output",
    "reference",
];
const ID_NAMES: [&str; 3] = ["id", "fname", "name"];
/// The JSON field that marks a row's summary as an unreviewed draft.
pub const DRAFT_FIELD: &str = "draft";
const TRANSCRIPT_EXTENSIONS: [&str; 3] = ["vtt", "srt", "txt"];
const TABLE_EXTENSIONS: [&str; 4] = ["csv", "tsv", "jsonl", "json"];

/// One turn of a dialogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    pub speaker: Option<String>,
    pub text: String,
}

/// One dialogue and its reference summaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialogue {
    /// The row's id (`id`, `fname`), or the transcript's file name; `None` when absent.
    pub id: Option<Value>,
    /// The model's input text.
    pub dialogue: String,
    pub turns: Vec<Turn>,
    pub summaries: Vec<String>,
    /// Where it was read: the file and its 1-based line.
    pub file: PathBuf,
    pub line: usize,
    /// Whether it is a whole transcript file (rather than a row of a data set).
    pub transcript: bool,
    /// Whether its summary is a model's draft that no person has reviewed yet (`"draft": true`,
    /// as `dialora data draft` writes): training skips it unless told otherwise, and it is never a
    /// reference for evaluation.
    pub draft: bool,
}

impl Dialogue {
    /// The summary a person wrote or reviewed: the first one, unless it is an unreviewed draft.
    pub fn reviewed_summary(&self) -> Option<&str> {
        (!self.draft)
            .then(|| self.summaries.first().map(String::as_str))
            .flatten()
    }

    /// The summary when it is a draft nobody has reviewed yet.
    pub fn unreviewed_draft(&self) -> Option<&str> {
        self.draft
            .then(|| self.summaries.first().map(String::as_str))
            .flatten()
    }

    /// The dialogue's id, or its position `index` in the input when it has none.
    pub fn id_or_position(&self, index: usize) -> Value {
        self.id.clone().unwrap_or_else(|| Value::from(index))
    }
}

/// How turns become the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speakers {
    /// Text columns as they are; transcripts as `Name: text` lines with the real names.
    #[default]
    Names,
    /// DialogSum's way: `#Person1#: text`, speakers numbered by first appearance.
    Persons,
}

/// Settings of an import: column names (for tables and JSON) and the speaker style.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ImportOptions {
    pub dialogue_column: Option<String>,
    pub summary_column: Option<String>,
    pub id_column: Option<String>,
    pub speakers: Speakers,
}

/// The formats dialora reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Json,
    Csv,
    Tsv,
    Vtt,
    Srt,
    Transcript,
    Folder,
}

/// Something about the data worth telling, with where it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: Sentence,
}

impl Warning {
    /// The warning in a front end's words; `Display` gives the command line's.
    pub fn worded(&self, words: &dyn Words) -> String {
        let message = self.message.worded(words);
        match self.line {
            Some(line) => format!("{}:{line}: {message}", self.file.display()),
            None => format!("{}: {message}", self.file.display()),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.worded(&dialora_settings::CommandLine))
    }
}

/// What an import read.
#[derive(Debug, Clone)]
pub struct Imported {
    pub format: Format,
    pub dialogues: Vec<Dialogue>,
    pub warnings: Vec<Warning>,
}

/// A problem found by a parser: the line (1-based, when known) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub line: Option<usize>,
    pub message: Sentence,
}

impl Issue {
    pub fn at(line: usize, message: impl Into<Sentence>) -> Self {
        Self {
            line: Some(line),
            message: message.into(),
        }
    }

    fn into_error(self, path: &Path) -> Error {
        match self.line {
            Some(line) => Error::invalid_at(path, line, self.message),
            None => Error::invalid(path, self.message),
        }
    }
}

/// A JSON object and the 1-based line it starts on.
pub type Row = (usize, serde_json::Map<String, Value>);

/// The UTF-8 text of a file without a leading byte-order mark; refuses files over 1 GiB, binary
/// files, non-UTF-8 text and lines over 16 MiB, naming the line.
pub fn read_text(path: &Path) -> Result<String> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::file(path, e))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(Error::invalid(
            path,
            format!("the file is {size} bytes; dialora reads files of up to 1 GiB"),
        ));
    }
    // The same checks as a streamed file's, line by line; line breaks become `\n`.
    let mut text = String::with_capacity(size as usize);
    for_each_line(path, |_, line| {
        text.push_str(line);
        text.push('\n');
        Ok(())
    })?;
    Ok(text)
}

/// The JSON object on each non-blank line of a JSONL file, with its 1-based line number; refuses
/// invalid JSON and lines that are not objects, naming the line.
pub fn read_json_lines(path: &Path) -> Result<Vec<Row>> {
    parse_json_lines(&read_text(path)?).map_err(|issue| issue.into_error(path))
}

fn parse_json_lines(text: &str) -> std::result::Result<Vec<Row>, Issue> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let row: Value = serde_json::from_str(line)
            .map_err(|e| Issue::at(number, format!("invalid JSON: {e}")))?;
        let Value::Object(object) = row else {
            return Err(Issue::at(number, "each line must be a JSON object"));
        };
        rows.push((number, object));
    }
    Ok(rows)
}

/// The objects of a JSON array, each with the line it starts on.
fn parse_json_array(text: &str) -> std::result::Result<Vec<Row>, Issue> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text)
        .map_err(|e| Issue::at(e.line(), format!("invalid JSON: {e}")))?;
    let base = text.as_ptr() as usize;
    let mut rows = Vec::with_capacity(items.len());
    for item in items {
        let offset = (item.get().as_ptr() as usize).saturating_sub(base);
        let line = text[..offset.min(text.len())].matches('\n').count() + 1;
        match serde_json::from_str::<Value>(item.get()) {
            Ok(Value::Object(object)) => rows.push((line, object)),
            _ => {
                return Err(Issue::at(
                    line,
                    "each item of the array must be a JSON object",
                ));
            }
        }
    }
    Ok(rows)
}

/// Reads dialogues from a file or a folder of files, in any format dialora knows.
pub fn import(path: &Path, options: &ImportOptions) -> Result<Imported> {
    if path.is_dir() {
        return import_folder(path, options);
    }
    finished(import_file(path, options)?, path)
}

/// Reads dialogues from text that has no file (pasted in the app), as `import` would read a file
/// named `name`; messages name `name` as the place.
pub fn import_text(text: &str, name: &str, options: &ImportOptions) -> Result<Imported> {
    let path = Path::new(name);
    let parsed = parse_text(text, path, options).map_err(|issue| issue.into_error(path))?;
    finished(parsed, path)
}

/// A parsed file as an import, checked by [`finish`].
fn finished((format, dialogues, warnings): Parsed, path: &Path) -> Result<Imported> {
    let mut imported = Imported {
        format,
        dialogues,
        warnings,
    };
    finish(&mut imported, path)?;
    Ok(imported)
}

/// Reads one file: JSONL and tables line by line (any size up to 16 GiB, a row at a time in
/// memory besides the dialogues read), the other formats whole (up to 1 GiB).
fn import_file(path: &Path, options: &ImportOptions) -> Result<Parsed> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::file(path, e))?
        .len();
    if size > MAX_STREAMED_BYTES {
        return Err(Error::invalid(
            path,
            format!("the file is {size} bytes; dialora reads data files of up to 16 GiB"),
        ));
    }
    let head = read_head(path)?;
    let located = |issue: Issue| issue.into_error(path);
    match detect(&head, path).map_err(located)? {
        Detected::Jsonl => {
            let mut rows = JsonRows::new(path, options);
            for_each_line(path, |line, text| {
                if text.trim().is_empty() {
                    return Ok(());
                }
                let row: Value = serde_json::from_str(text)
                    .map_err(|e| Issue::at(line, format!("invalid JSON: {e}")))?;
                let Value::Object(object) = row else {
                    return Err(Issue::at(line, "each line must be a JSON object"));
                };
                rows.push(line, object)
            })?;
            Ok(rows.finish(Format::Jsonl))
        }
        Detected::Table(delimiter) => {
            let mut parser = table::Parser::new(delimiter);
            let mut rows = TableRows::new(path, options);
            for_each_line(path, |line, text| {
                for record in parser.feed(line, text)? {
                    rows.push(record)?;
                }
                Ok(())
            })?;
            parser.finish().map_err(located)?;
            rows.finish(table_format(delimiter)).map_err(located)
        }
        _ => {
            let text = read_text(path)?;
            parse_text(&text, path, options).map_err(located)
        }
    }
}

/// The first 256 KiB of a file as text (cut at the last whole character), for telling its format.
fn read_head(path: &Path) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let mut bytes = Vec::new();
    file.take(256 << 10)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::file(path, e))?;
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(Error::invalid(
            path,
            "the file is UTF-16 text: save it as UTF-8 (most editors offer this under Save as)",
        ));
    }
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..nul].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(Error::invalid_at(
            path,
            line,
            "this is a binary file, not text",
        ));
    }
    let valid = match std::str::from_utf8(&bytes) {
        Ok(text) => text.len(),
        // A character cut by the 256 KiB window is fine; a byte that is no UTF-8 is not.
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(Error::invalid_at(
                path,
                line,
                "the file is not UTF-8 text (save it as UTF-8)",
            ));
        }
    };
    let text = String::from_utf8_lossy(&bytes[..valid]).into_owned();
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Calls `f` with each line of a file (1-based number, text without its line break), refusing
/// binary bytes, non-UTF-8 text and lines over 16 MiB with the line's number.
fn for_each_line(
    path: &Path,
    mut f: impl FnMut(usize, &str) -> std::result::Result<(), Issue>,
) -> Result<()> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut buffer = Vec::new();
    let mut number = 0;
    loop {
        buffer.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(|e| Error::file(path, e))?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        if buffer.last() == Some(&b'\n') {
            buffer.pop();
        } else if buffer.len() > MAX_LINE_BYTES {
            return Err(Error::invalid_at(
                path,
                number,
                "the line is longer than 16 MiB",
            ));
        }
        if buffer.last() == Some(&b'\r') {
            buffer.pop();
        }
        if buffer.contains(&0) {
            return Err(Error::invalid_at(
                path,
                number,
                "this is a binary file, not text",
            ));
        }
        let text = std::str::from_utf8(&buffer)
            .map_err(|_| Error::invalid_at(path, number, "the file is not UTF-8 text"))?;
        let text = if number == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        f(number, text).map_err(|issue| issue.into_error(path))?;
    }
}

fn import_folder(folder: &Path, options: &ImportOptions) -> Result<Imported> {
    let entries = std::fs::read_dir(folder).map_err(|e| Error::file(folder, e))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && extension(p).is_some_and(|e| {
                    TRANSCRIPT_EXTENSIONS.contains(&e.as_str())
                        || TABLE_EXTENSIONS.contains(&e.as_str())
                })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::missing(
            folder,
            "no transcripts or data files here (.vtt, .srt, .txt, .csv, .tsv, .jsonl, .json)",
        ));
    }
    let mut imported = Imported {
        format: Format::Folder,
        dialogues: Vec::new(),
        warnings: Vec::new(),
    };
    for file in files {
        let (_, dialogues, warnings) = import_file(&file, options)?;
        imported.dialogues.extend(dialogues);
        imported.warnings.extend(warnings);
    }
    finish(&mut imported, folder)?;
    Ok(imported)
}

/// Refuses imports without a usable dialogue and warns about duplicates.
fn finish(imported: &mut Imported, path: &Path) -> Result<()> {
    if imported.dialogues.is_empty() {
        return Err(match imported.warnings.first() {
            Some(first) => Error::invalid_at(
                &first.file,
                first.line.unwrap_or(1),
                "every dialogue is empty (this is the first)",
            ),
            None => Error::invalid_at(path, 1, "no dialogues in this file"),
        });
    }
    let mut seen: HashMap<&str, (&Path, usize)> = HashMap::new();
    let mut duplicates = Vec::new();
    for dialogue in &imported.dialogues {
        match seen.get(dialogue.dialogue.as_str()) {
            Some((file, line)) => duplicates.push(Warning {
                file: dialogue.file.clone(),
                line: Some(dialogue.line),
                message: format!("the same dialogue as {}:{line}", file.display()).into(),
            }),
            None => {
                seen.insert(&dialogue.dialogue, (&dialogue.file, dialogue.line));
            }
        }
    }
    imported.warnings.extend(duplicates);
    Ok(())
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

type Parsed = (Format, Vec<Dialogue>, Vec<Warning>);

/// What a file holds, told from its beginning.
enum Detected {
    Vtt,
    Srt,
    JsonArray,
    Jsonl,
    Table(char),
    Transcript,
}

/// The format of a file from the start of its text (content first, extension second).
fn detect(head: &str, path: &Path) -> std::result::Result<Detected, Issue> {
    let trimmed = head.trim_start();
    if trimmed.is_empty() {
        return Err(Issue::at(1, "the file is empty"));
    }
    let extension = extension(path).unwrap_or_default();
    if trimmed.starts_with("WEBVTT") {
        return Ok(Detected::Vtt);
    }
    if extension == "srt" || looks_like_srt(trimmed) {
        return Ok(Detected::Srt);
    }
    // A .jsonl file is lines of objects, whatever its first line holds.
    if extension == "jsonl" {
        return Ok(Detected::Jsonl);
    }
    if trimmed.starts_with('[') {
        return Ok(Detected::JsonArray);
    }
    if trimmed.starts_with('{') {
        return Ok(Detected::Jsonl);
    }
    if extension == "vtt" {
        return Err(Issue::at(1, "a WebVTT file must start with WEBVTT"));
    }
    if extension == "jsonl" || extension == "json" {
        return Err(Issue::at(1, "invalid JSON: expected an object or an array"));
    }
    let by_extension = match extension.as_str() {
        "csv" => Some(','),
        "tsv" => Some('\t'),
        _ => None,
    };
    if let Some(delimiter) = by_extension {
        return Ok(Detected::Table(
            table::detect_delimiter(head).unwrap_or(delimiter),
        ));
    }
    if transcript::looks_like_plain_transcript(head) {
        return Ok(Detected::Transcript);
    }
    Ok(match table::detect_delimiter(head) {
        Some(delimiter) => Detected::Table(delimiter),
        None => Detected::Transcript,
    })
}

fn table_format(delimiter: char) -> Format {
    if delimiter == '\t' {
        Format::Tsv
    } else {
        Format::Csv
    }
}

/// Parses a file's whole text.
fn parse_text(
    text: &str,
    path: &Path,
    options: &ImportOptions,
) -> std::result::Result<Parsed, Issue> {
    let transcript = |format: Format, turns: Vec<Turn>| -> std::result::Result<Parsed, Issue> {
        let id = path
            .file_stem()
            .map(|s| Value::from(s.to_string_lossy().into_owned()));
        // Speaker names or timestamps alone are no transcript, in every format.
        if turns.iter().all(|t| t.text.trim().is_empty()) {
            return Err(Issue::at(
                1,
                "the transcript has no spoken text (only speaker names, timestamps or blank lines)",
            ));
        }
        let dialogue = Dialogue {
            id,
            dialogue: render(&turns, options.speakers),
            turns,
            summaries: Vec::new(),
            file: path.to_path_buf(),
            line: 1,
            transcript: true,
            draft: false,
        };
        Ok((format, vec![dialogue], Vec::new()))
    };
    match detect(text, path)? {
        Detected::Vtt => transcript(Format::Vtt, transcript::parse_vtt(text)?),
        Detected::Srt => transcript(Format::Srt, transcript::parse_srt(text)?),
        Detected::Transcript => transcript(Format::Transcript, transcript::parse_plain(text)),
        Detected::JsonArray => {
            let mut rows = JsonRows::new(path, options);
            for (line, row) in parse_json_array(text)? {
                rows.push(line, row)?;
            }
            Ok(rows.finish(Format::Json))
        }
        Detected::Jsonl => {
            let mut rows = JsonRows::new(path, options);
            for (line, row) in parse_json_lines(text)? {
                rows.push(line, row)?;
            }
            Ok(rows.finish(Format::Jsonl))
        }
        Detected::Table(delimiter) => {
            let mut rows = TableRows::new(path, options);
            for record in table::parse(text, delimiter)? {
                rows.push(record)?;
            }
            rows.finish(table_format(delimiter))
        }
    }
}

fn looks_like_srt(text: &str) -> bool {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    let second = lines.next().unwrap_or("");
    !first.is_empty() && first.chars().all(|c| c.is_ascii_digit()) && second.contains("-->")
}

/// Which columns hold the dialogue, the summaries and the id.
struct Columns {
    dialogue: String,
    summaries: Vec<String>,
    id: Option<String>,
}

fn no_column(name: &str, names: &[String]) -> Sentence {
    format!("no column \"{name}\" (columns: {})", names.join(", ")).into()
}

fn choose_columns(
    names: &[String],
    options: &ImportOptions,
) -> std::result::Result<Columns, Sentence> {
    let find = |wanted: &str| {
        names
            .iter()
            .find(|n| n.trim().eq_ignore_ascii_case(wanted))
            .cloned()
    };
    let dialogue = match &options.dialogue_column {
        Some(name) => find(name).ok_or_else(|| no_column(name, names))?,
        None => DIALOGUE_NAMES.iter().find_map(|n| find(n)).ok_or_else(|| {
            Sentence::from(format!(
                "no dialogue column: expected one of {} (columns: {}); ",
                DIALOGUE_NAMES.join(", "),
                names.join(", ")
            ))
            .remedy(Setting::DialogueColumn)
        })?,
    };
    let summaries = match &options.summary_column {
        Some(name) => vec![find(name).ok_or_else(|| no_column(name, names))?],
        None => {
            let numbered: Vec<String> = ["summary", "summary1", "summary2", "summary3"]
                .iter()
                .filter_map(|n| find(n))
                .collect();
            if numbered.is_empty() {
                SUMMARY_NAMES
                    .iter()
                    .find_map(|n| find(n))
                    .into_iter()
                    .collect()
            } else {
                numbered
            }
        }
    };
    let id = match &options.id_column {
        Some(name) => Some(find(name).ok_or_else(|| no_column(name, names))?),
        None => ID_NAMES.iter().find_map(|n| find(n)),
    };
    Ok(Columns {
        dialogue,
        summaries,
        id,
    })
}

/// Rows of JSON objects turned into dialogues one by one; the columns are chosen from the first.
struct JsonRows<'a> {
    path: &'a Path,
    options: &'a ImportOptions,
    columns: Option<Columns>,
    dialogues: Vec<Dialogue>,
    warnings: Vec<Warning>,
}

impl<'a> JsonRows<'a> {
    fn new(path: &'a Path, options: &'a ImportOptions) -> Self {
        Self {
            path,
            options,
            columns: None,
            dialogues: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn push(
        &mut self,
        line: usize,
        row: serde_json::Map<String, Value>,
    ) -> std::result::Result<(), Issue> {
        if self.columns.is_none() {
            let names: Vec<String> = row.keys().cloned().collect();
            let columns = choose_columns(&names, self.options).map_err(|m| Issue::at(line, m))?;
            self.columns = Some(columns);
        }
        let Some(columns) = &self.columns else {
            return Ok(());
        };
        let text = match row.get(&columns.dialogue) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) => String::new(),
            None => {
                return Err(Issue::at(
                    line,
                    format!("no \"{}\" field in this row", columns.dialogue),
                ));
            }
            Some(_) => {
                return Err(Issue::at(
                    line,
                    format!("field \"{}\" must be a string", columns.dialogue),
                ));
            }
        };
        let summaries = columns
            .summaries
            .iter()
            .filter_map(|c| row.get(c).and_then(Value::as_str))
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
            .collect();
        let id = columns.id.as_ref().and_then(|c| row.get(c)).cloned();
        let draft = row.get(DRAFT_FIELD).and_then(Value::as_bool) == Some(true);
        push_row(
            &mut self.dialogues,
            &mut self.warnings,
            self.path,
            line,
            text,
            summaries,
            id,
            draft,
            self.options,
        );
        Ok(())
    }

    fn finish(self, format: Format) -> Parsed {
        (format, self.dialogues, self.warnings)
    }
}

/// A table's column names and where the dialogue, summaries and id are.
struct TableColumns {
    names: Vec<String>,
    dialogue: Option<usize>,
    summaries: Vec<usize>,
    id: Option<usize>,
}

/// Table records turned into dialogues one by one; the first is the header when it names columns.
struct TableRows<'a> {
    path: &'a Path,
    options: &'a ImportOptions,
    header: Option<TableColumns>,
    dialogues: Vec<Dialogue>,
    warnings: Vec<Warning>,
}

impl<'a> TableRows<'a> {
    fn new(path: &'a Path, options: &'a ImportOptions) -> Self {
        Self {
            path,
            options,
            header: None,
            dialogues: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn push(&mut self, record: table::Record) -> std::result::Result<(), Issue> {
        if table::is_blank(&record) {
            return Ok(());
        }
        let Some(header) = &self.header else {
            return self.read_header(record);
        };
        let names = &header.names;
        if record.fields.len() > names.len() {
            self.warnings.push(Warning {
                file: self.path.to_path_buf(),
                line: Some(record.line),
                message: format!(
                    "{} fields where the header has {}; the extra ones are ignored",
                    record.fields.len(),
                    names.len()
                )
                .into(),
            });
        }
        let field = |i: Option<usize>| {
            i.and_then(|i| record.fields.get(i))
                .cloned()
                .unwrap_or_default()
        };
        let summaries = header
            .summaries
            .iter()
            .map(|&i| field(Some(i)))
            .filter(|s| !s.trim().is_empty())
            .collect();
        let id = header.id.map(|i| Value::from(field(Some(i))));
        let text = field(header.dialogue);
        push_row(
            &mut self.dialogues,
            &mut self.warnings,
            self.path,
            record.line,
            text,
            summaries,
            id,
            false,
            self.options,
        );
        Ok(())
    }

    /// Takes the first record as the header when it names a known column, else as data with
    /// the columns by position (dialogue, then summary).
    fn read_header(&mut self, record: table::Record) -> std::result::Result<(), Issue> {
        let options = self.options;
        let known = |f: &String| {
            let f = f.trim().to_ascii_lowercase();
            DIALOGUE_NAMES.contains(&f.as_str())
                || SUMMARY_NAMES.contains(&f.as_str())
                || ID_NAMES.contains(&f.as_str())
                || options
                    .dialogue_column
                    .as_ref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&f))
        };
        let is_header = record.fields.iter().any(known);
        let names: Vec<String> = if is_header {
            record.fields.iter().map(|f| f.trim().to_string()).collect()
        } else {
            if record.fields.iter().all(|f| looks_like_column_name(f)) {
                let fields: Vec<&str> = record.fields.iter().map(|f| f.trim()).collect();
                return Err(Issue::at(
                    record.line,
                    Sentence::from(format!(
                        "the header names no column dialora knows ({}): say which holds the dialogue with ",
                        fields.join(", ")
                    ))
                    .setting(Setting::DialogueColumn)
                    .text(" (and the summary with ")
                    .setting(Setting::SummaryColumn)
                    .text("), or name them dialogue and summary"),
                ));
            }
            let taken = match record.fields.len() {
                1 => "its one column is read as the dialogue",
                2 => "column 1 is read as the dialogue and column 2 as the summary",
                _ => "",
            };
            if !taken.is_empty() {
                self.warnings.push(Warning {
                    file: self.path.to_path_buf(),
                    line: Some(record.line),
                    message: Sentence::from(format!(
                        "no header row names the columns (dialogue, summary): {taken}, the first row included (add a header row, or use "
                    ))
                    .setting(Setting::DialogueColumn)
                    .text(")"),
                });
            }
            match record.fields.len() {
                1 => vec!["dialogue".to_string()],
                2 => vec!["dialogue".to_string(), "summary".to_string()],
                _ => {
                    return Err(Issue::at(
                        record.line,
                        "no header row naming the columns (such as dialogue, summary)",
                    ));
                }
            }
        };
        let columns = choose_columns(&names, options).map_err(|m| Issue::at(record.line, m))?;
        let index = |name: &str| names.iter().position(|n| n == name);
        self.header = Some(TableColumns {
            dialogue: index(&columns.dialogue),
            summaries: columns.summaries.iter().filter_map(|c| index(c)).collect(),
            id: columns.id.as_deref().and_then(index),
            names,
        });
        if is_header { Ok(()) } else { self.push(record) }
    }

    fn finish(self, format: Format) -> std::result::Result<Parsed, Issue> {
        if self.header.is_none() {
            return Err(Issue::at(1, "the table has no rows"));
        }
        Ok((format, self.dialogues, self.warnings))
    }
}

/// Whether a field reads as a column's name rather than a value: a short identifier such as
/// `ticket_body` or `Resolution note`, no dialogue (no colon, no line break).
fn looks_like_column_name(field: &str) -> bool {
    let field = field.trim();
    let mut chars = field.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && field.chars().count() <= 40
        && chars.all(|c| c.is_alphanumeric() || " _-.".contains(c))
}

#[allow(clippy::too_many_arguments)]
fn push_row(
    dialogues: &mut Vec<Dialogue>,
    warnings: &mut Vec<Warning>,
    path: &Path,
    line: usize,
    text: String,
    summaries: Vec<String>,
    id: Option<Value>,
    draft: bool,
    options: &ImportOptions,
) {
    if text.trim().is_empty() {
        warnings.push(Warning {
            file: path.to_path_buf(),
            line: Some(line),
            message: "empty dialogue, skipped".into(),
        });
        return;
    }
    let turns = transcript::parse_plain(&text);
    let dialogue = match options.speakers {
        Speakers::Names => text,
        Speakers::Persons => render(&turns, Speakers::Persons),
    };
    dialogues.push(Dialogue {
        id,
        dialogue,
        turns,
        summaries,
        file: path.to_path_buf(),
        line,
        transcript: false,
        draft,
    });
}

/// The model's input for `turns`: one `Speaker: text` line per turn.
pub fn render(turns: &[Turn], speakers: Speakers) -> String {
    let mut numbers: HashMap<&str, usize> = HashMap::new();
    turns
        .iter()
        .map(|turn| match (&turn.speaker, speakers) {
            (None, _) => turn.text.clone(),
            (Some(name), Speakers::Names) => format!("{name}: {}", turn.text),
            (Some(name), Speakers::Persons) => {
                let next = numbers.len() + 1;
                let number = *numbers.entry(name.as_str()).or_insert(next);
                format!("#Person{number}#: {}", turn.text)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Token lengths of the rendered inputs against the source window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLengths {
    pub window: usize,
    pub min: usize,
    pub median: usize,
    pub p90: usize,
    pub max: usize,
    /// How many would be cut to the window.
    pub over_window: usize,
}

/// What `dialora data check` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statistics {
    pub format: Format,
    pub dialogues: usize,
    /// Dialogues with a summary a person wrote or reviewed.
    pub with_summary: usize,
    /// Dialogues whose summary is still an unreviewed draft.
    pub drafts: usize,
    pub turns: usize,
    pub speakers: usize,
    /// With a tokenizer only.
    pub token_lengths: Option<TokenLengths>,
    pub warnings: Vec<String>,
}

/// Counts and checks of an import; token lengths of each prompt when a tokenizer is given.
pub fn statistics(
    imported: &Imported,
    tokenizer: Option<(&TextTokenizer, &str, usize)>,
) -> Result<Statistics> {
    let dialogues = &imported.dialogues;
    let speakers: BTreeSet<&str> = dialogues
        .iter()
        .flat_map(|d| d.turns.iter().filter_map(|t| t.speaker.as_deref()))
        .collect();
    let token_lengths = match tokenizer {
        Some((tokenizer, template, window)) => {
            let mut lengths = Vec::with_capacity(dialogues.len());
            for dialogue in dialogues {
                let prompt = template.replace("{dialogue}", &dialogue.dialogue);
                lengths.push(tokenizer.length(&prompt)?);
            }
            lengths.sort_unstable();
            let at = |q: f64| lengths[((lengths.len() - 1) as f64 * q).round() as usize];
            Some(TokenLengths {
                window,
                min: lengths[0],
                median: at(0.5),
                p90: at(0.9),
                max: lengths[lengths.len() - 1],
                over_window: lengths.iter().filter(|&&l| l > window).count(),
            })
        }
        None => None,
    };
    Ok(Statistics {
        format: imported.format,
        dialogues: dialogues.len(),
        with_summary: dialogues
            .iter()
            .filter(|d| d.reviewed_summary().is_some())
            .count(),
        drafts: dialogues
            .iter()
            .filter(|d| d.unreviewed_draft().is_some())
            .count(),
        turns: dialogues.iter().map(|d| d.turns.len()).sum(),
        speakers: speakers.len(),
        token_lengths,
        warnings: imported.warnings.iter().map(|w| w.to_string()).collect(),
    })
}

/// Splits off `fraction` of the dialogues (at least one) for validation, chosen with `seed`.
pub fn split(dialogues: Vec<Dialogue>, fraction: f64, seed: u64) -> (Vec<Dialogue>, Vec<Dialogue>) {
    let all = (0..dialogues.len()).collect();
    split_among(dialogues, all, fraction, seed)
}

/// Splits off `fraction` of the dialogues for measuring training: only dialogues with a reviewed
/// summary can tell how well a model learned, so the share is of those alone (at least one, and
/// never all of them), and the others stay with the training dialogues.
pub fn split_for_validation(
    dialogues: Vec<Dialogue>,
    fraction: f64,
    seed: u64,
) -> (Vec<Dialogue>, Vec<Dialogue>) {
    let reviewed: Vec<usize> = (0..dialogues.len())
        .filter(|&i| dialogues[i].reviewed_summary().is_some())
        .collect();
    if reviewed.len() < 2 {
        return (dialogues, Vec::new());
    }
    split_among(dialogues, reviewed, fraction, seed)
}

/// Holds out `fraction` of the `candidates` (at least one), chosen with `seed`.
fn split_among(
    dialogues: Vec<Dialogue>,
    mut candidates: Vec<usize>,
    fraction: f64,
    seed: u64,
) -> (Vec<Dialogue>, Vec<Dialogue>) {
    let count = candidates.len();
    let held =
        ((count as f64 * fraction).round() as usize).clamp(1, count.saturating_sub(1).max(1));
    SplitMix64::new(seed).shuffle(&mut candidates);
    let validation: BTreeSet<usize> = candidates[..held.min(count)].iter().copied().collect();
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    for (index, dialogue) in dialogues.into_iter().enumerate() {
        if validation.contains(&index) {
            held_out.push(dialogue);
        } else {
            train.push(dialogue);
        }
    }
    (train, held_out)
}

/// The dialogues as DialogSum-shaped JSONL (`id`, `dialogue`, `summary` or `summary1..`, and
/// `"draft": true` where the summary is an unreviewed draft).
pub fn to_jsonl(dialogues: &[Dialogue]) -> String {
    let mut out = String::new();
    for (index, dialogue) in dialogues.iter().enumerate() {
        let mut row = serde_json::Map::new();
        row.insert("id".into(), dialogue.id_or_position(index));
        row.insert("dialogue".into(), Value::from(dialogue.dialogue.clone()));
        match dialogue.summaries.as_slice() {
            [] => {}
            [one] => {
                row.insert("summary".into(), Value::from(one.clone()));
            }
            many => {
                for (i, summary) in many.iter().enumerate() {
                    row.insert(format!("summary{}", i + 1), Value::from(summary.clone()));
                }
            }
        }
        if dialogue.draft {
            row.insert(DRAFT_FIELD.into(), Value::Bool(true));
        }
        out.push_str(&Value::Object(row).to_string());
        out.push('\n');
    }
    out
}

/// Parses text as `import` would a file of that name; for fuzzing the parsers without files.
#[doc(hidden)]
pub fn parse_for_fuzzing(text: &str, file_name: &str) -> usize {
    parse_text(text, Path::new(file_name), &ImportOptions::default())
        .map_or(0, |(_, dialogues, _)| dialogues.len())
}
