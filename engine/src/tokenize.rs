//! Tokenization with a model folder's `tokenizer.json`, exactly as transformers' fast tokenizer does
//! it, except that padding and truncation baked into the file are switched off: the engine decides
//! both (source truncation keeps the end-of-sequence token, as `truncation=True` does).

use std::path::Path;

use tokenizers::{PostProcessor, Tokenizer, TruncationDirection};

use crate::error::{Error, Result};

/// A tokenizer for model inputs and outputs.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Tokens the post-processor adds to a single sequence (T5: the closing `</s>`).
    added_tokens: usize,
    /// transformers' `clean_up_tokenization_spaces`, from `tokenizer_config.json` when present.
    clean_up_spaces: bool,
}

/// One encoded text and whether it had to be cut to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub truncated: bool,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`; reads `tokenizer_config.json` beside it when there is one.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| {
            Error::invalid(
                path,
                format!(
                    "not a usable tokenizer.json: {}",
                    first_line(&e.to_string())
                ),
            )
        })?;
        // Added tokens alone (</s>, <pad>) cannot tokenize any text.
        if inner.get_vocab_size(false) == 0 {
            return Err(Error::invalid(path, "the tokenizer's vocabulary is empty"));
        }
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| Error::invalid(path, e.to_string()))?;
        let added_tokens = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        let clean_up_spaces = path
            .parent()
            .map(|dir| dir.join("tokenizer_config.json"))
            .and_then(|config| std::fs::read(config).ok())
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|config| {
                config
                    .get("clean_up_tokenization_spaces")
                    .and_then(|v| v.as_bool())
            })
            .unwrap_or(false);
        Ok(Self {
            inner,
            added_tokens,
            clean_up_spaces,
        })
    }

    /// The number of token ids the tokenizer can produce (its vocabulary and added tokens).
    pub fn vocabulary_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text` with the special tokens the tokenizer adds, cut to at most `max_len`.
    /// Only as much of a long text is read as the cut keeps, so memory stays bounded.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Encoded> {
        let room = max_len.saturating_sub(self.added_tokens).max(1);
        let read = self.prefix_beyond(text, room)?;
        let mut encoding = self
            .inner
            .encode(read, false)
            .map_err(|e| Error::settings(format!("cannot tokenize the text: {e}")))?;
        let truncated = encoding.len() > room;
        if truncated {
            encoding.truncate(room, 0, TruncationDirection::Right);
        }
        let encoding = self
            .inner
            .post_process(encoding, None, true)
            .map_err(|e| Error::settings(format!("cannot tokenize the text: {e}")))?;
        Ok(Encoded {
            ids: encoding.get_ids().to_vec(),
            truncated,
        })
    }

    /// The number of tokens of `text` without the special tokens the tokenizer adds.
    pub fn count(&self, text: &str) -> Result<usize> {
        self.count_at_most(text, usize::MAX)
    }

    /// The number of tokens of `text` with the special tokens the tokenizer adds.
    pub fn length(&self, text: &str) -> Result<usize> {
        Ok(self.count(text)? + self.added_tokens)
    }

    /// Whether `text` with its special tokens fits `max_len` tokens, without reading past that.
    pub fn fits(&self, text: &str, max_len: usize) -> Result<bool> {
        Ok(self.count_at_most(text, max_len)? + self.added_tokens <= max_len)
    }

    /// The number of tokens of `text` (without special tokens) when at most `limit`; some number
    /// above `limit` otherwise, found without reading the whole of a long text.
    pub fn count_at_most(&self, text: &str, limit: usize) -> Result<usize> {
        let mut total = 0;
        for chunk in pieces(text) {
            total += self.count_piece(chunk)?;
            if total > limit {
                break;
            }
        }
        Ok(total)
    }

    fn count_piece(&self, text: &str) -> Result<usize> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(|e| Error::settings(format!("cannot tokenize the text: {e}")))?
            .len())
    }

    /// The start of `text` that holds more than `room` tokens (all of it when it holds fewer):
    /// tokenizing a whole 10 MB line costs gigabytes, and a cut keeps only its first tokens.
    fn prefix_beyond<'t>(&self, text: &'t str, room: usize) -> Result<&'t str> {
        if text.len() <= PIECE_BYTES {
            return Ok(text);
        }
        let mut total = 0;
        let mut end = 0;
        for chunk in pieces(text) {
            total += self.count_piece(chunk)?;
            end = chunk.as_ptr() as usize - text.as_ptr() as usize + chunk.len();
            if total > room {
                break;
            }
        }
        Ok(&text[..end])
    }

    /// Text of generated ids, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let text = self
            .inner
            .decode(ids, true)
            .map_err(|e| Error::settings(format!("cannot decode tokens: {e}")))?;
        Ok(if self.clean_up_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }
}

/// transformers' `clean_up_tokenization`: removes the spaces tokenizers leave before punctuation.
fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// How much text is tokenized at once: pieces cut at whitespace (where the tokenizers we read
/// split words anyway, so counts add up), bounding the tokenizer's memory.
const PIECE_BYTES: usize = 16 * 1024;

/// `text` in pieces of about `PIECE_BYTES`, each ending after whitespace where there is some.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() <= PIECE_BYTES {
            return Some(std::mem::take(&mut rest));
        }
        let mut cut = PIECE_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(char::is_whitespace) {
            cut = space + rest[space..].chars().next().map_or(1, char::len_utf8);
        }
        let (piece, tail) = rest.split_at(cut.max(1));
        rest = tail;
        Some(piece)
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Token sequences padded on the right to the longest, with their attention masks, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    pub rows: usize,
    pub width: usize,
}

impl PaddedBatch {
    pub fn new(sequences: &[Vec<u32>], pad_id: u32) -> Self {
        let width = sequences.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(sequences.len() * width);
        let mut mask = Vec::with_capacity(sequences.len() * width);
        for sequence in sequences {
            ids.extend_from_slice(sequence);
            mask.extend(std::iter::repeat_n(1, sequence.len()));
            ids.extend(std::iter::repeat_n(pad_id, width - sequence.len()));
            mask.extend(std::iter::repeat_n(0, width - sequence.len()));
        }
        Self {
            ids,
            mask,
            rows: sequences.len(),
            width,
        }
    }
}
