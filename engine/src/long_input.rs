//! Summaries of dialogues far longer than the model's source window (an hour of meeting is 10,000
//! tokens; Flan-T5 reads 512): the turns are packed into windows that fit, cut at turn boundaries
//! with a few turns of overlap (a turn longer than a window is cut at sentence boundaries, its
//! speaker repeated on every piece); each window is summarized; the partial summaries are joined and
//! summarized again, level after level, until they fit one window. The adapter and generation
//! settings apply at every level.

use crate::data::{Dialogue, Speakers, Turn, render};
use crate::error::{Error, Result};
use crate::summarize::{SummarizeSettings, Summarizer};
use crate::task::{Cancel, ProgressSink};
use crate::tokenize::TextTokenizer;

/// Turns repeated at the start of the next window, so that no exchange is cut in half.
pub const OVERLAP_TURNS: usize = 2;
/// Levels of summaries of summaries before the last one is cut to fit.
const MAX_LEVELS: usize = 6;

/// One window: the units `start..end` of the dialogue; those before `first_new` repeat the end of
/// the previous window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start: usize,
    pub first_new: usize,
    pub end: usize,
    /// The model's input text of the window (without the prompt).
    pub text: String,
    pub tokens: usize,
}

/// A dialogue cut into pieces that each fit a window, and the windows over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Windowed {
    /// The turns, those too long for a window cut at sentence boundaries.
    pub units: Vec<Turn>,
    /// Index of the original turn each unit comes from.
    pub unit_turns: Vec<usize>,
    pub windows: Vec<Window>,
}

/// How many tokens a window's text may have: the source length less the prompt around it.
pub fn window_budget(tokenizer: &TextTokenizer, settings: &SummarizeSettings) -> Result<usize> {
    let prompt = tokenizer.length(&settings.prompt(""))?;
    let budget = settings.max_source_length.saturating_sub(prompt);
    if budget < 16 {
        return Err(Error::settings(format!(
            "--max-source-length {} leaves {budget} tokens for the dialogue after the prompt; long transcripts need at least 16",
            settings.max_source_length
        )));
    }
    Ok(budget)
}

/// Cuts `turns` into windows of at most `budget` tokens.
pub fn make_windows(
    turns: &[Turn],
    speakers: Speakers,
    tokenizer: &TextTokenizer,
    budget: usize,
) -> Result<Windowed> {
    let mut units = Vec::new();
    let mut unit_turns = Vec::new();
    for (index, turn) in turns.iter().enumerate() {
        for piece in split_turn(turn, speakers, tokenizer, budget)? {
            units.push(piece);
            unit_turns.push(index);
        }
    }
    let costs = units
        .iter()
        .map(|unit| tokenizer.count(&render(std::slice::from_ref(unit), speakers)))
        .collect::<Result<Vec<_>>>()?;
    let mut windows = Vec::new();
    let mut start = 0;
    let mut first_new = 0;
    while first_new < units.len() {
        // Greedy by the sum of the units' counts, then checked on the text itself (joining can
        // tokenize a little differently), dropping units until it fits.
        let mut sum: usize = costs[start..first_new].iter().sum();
        let mut end = first_new;
        while end < units.len() && sum + costs[end] <= budget {
            sum += costs[end];
            end += 1;
        }
        if end == first_new && start < first_new {
            // The overlap leaves no room for the next unit: start this window without it.
            start = first_new;
            continue;
        }
        end = end.max(first_new + 1);
        let (text, tokens) = loop {
            let text = render(&units[start..end], speakers);
            let tokens = tokenizer.count(&text)?;
            if tokens <= budget || end == first_new + 1 {
                break (text, tokens);
            }
            end -= 1;
        };
        if tokens > budget && start < first_new {
            start = first_new;
            continue;
        }
        windows.push(Window {
            start,
            first_new,
            end,
            text,
            tokens,
        });
        // The next window repeats the last turns of this one's new part.
        start = end.saturating_sub(OVERLAP_TURNS).max(first_new);
        first_new = end;
    }
    Ok(Windowed {
        units,
        unit_turns,
        windows,
    })
}

/// A turn as pieces of at most `budget` tokens each, cut after sentences (or, for a sentence too
/// long, between words), each with the turn's speaker.
fn split_turn(
    turn: &Turn,
    speakers: Speakers,
    tokenizer: &TextTokenizer,
    budget: usize,
) -> Result<Vec<Turn>> {
    let cost = |text: &str| -> Result<usize> {
        let piece = Turn {
            speaker: turn.speaker.clone(),
            text: text.to_string(),
        };
        // At most a little over the budget is read: a turn may be a whole 10 MB line.
        tokenizer.count_at_most(&render(std::slice::from_ref(&piece), speakers), budget)
    };
    if cost(&turn.text)? <= budget {
        return Ok(vec![turn.clone()]);
    }
    let mut pieces = Vec::new();
    let mut current = String::new();
    for sentence in sentences(&turn.text) {
        let joined = if current.is_empty() {
            sentence.to_string()
        } else {
            format!("{current} {sentence}")
        };
        if cost(&joined)? <= budget {
            current = joined;
            continue;
        }
        if !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        if cost(sentence)? <= budget {
            current = sentence.to_string();
            continue;
        }
        // One sentence longer than a window: cut between words.
        for word in sentence.split_whitespace() {
            let joined = if current.is_empty() {
                word.to_string()
            } else {
                format!("{current} {word}")
            };
            if cost(&joined)? <= budget || current.is_empty() {
                current = joined;
            } else {
                pieces.push(std::mem::replace(&mut current, word.to_string()));
            }
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    Ok(pieces
        .into_iter()
        .map(|text| Turn {
            speaker: turn.speaker.clone(),
            text,
        })
        .collect())
}

/// The sentences of `text`: cut after `.`, `!` or `?` followed by a space.
fn sentences(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (index, &byte) in bytes.iter().enumerate() {
        if matches!(byte, b'.' | b'!' | b'?') && bytes.get(index + 1) == Some(&b' ') {
            found.push(text[start..=index].trim());
            start = index + 1;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        found.push(rest);
    }
    found.retain(|s| !s.is_empty());
    found
}

/// A long dialogue's summary and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct LongSummary {
    pub summary: String,
    /// The summaries of each level's windows, first level first.
    pub levels: Vec<Vec<String>>,
    /// Windows of the first level.
    pub windows: usize,
}

/// Summarizes `turns`, in windows when they do not fit one.
pub fn summarize_long(
    summarizer: &Summarizer,
    turns: &[Turn],
    speakers: Speakers,
    adapter: Option<&str>,
    settings: &SummarizeSettings,
    cancel: &Cancel,
    progress: &dyn ProgressSink,
) -> Result<LongSummary> {
    if turns.iter().all(|t| t.text.trim().is_empty()) {
        return Err(Error::settings("the transcript has no text to summarize"));
    }
    let tokenizer = &summarizer.model.tokenizer;
    let budget = window_budget(tokenizer, settings)?;
    let mut units = turns.to_vec();
    let mut levels = Vec::new();
    let mut first_windows = 0;
    for level in 0..MAX_LEVELS {
        let windowed = make_windows(&units, speakers, tokenizer, budget)?;
        if level == 0 {
            first_windows = windowed.windows.len();
        }
        let texts: Vec<String> = windowed.windows.iter().map(|w| w.text.clone()).collect();
        let summaries = summarizer.summarize(&texts, adapter, settings, cancel, progress)?;
        let summaries: Vec<String> = summaries.into_iter().map(|s| s.text).collect();
        if windowed.windows.len() == 1 {
            let summary = summaries.into_iter().next().unwrap_or_default();
            return Ok(LongSummary {
                summary,
                levels,
                windows: first_windows,
            });
        }
        units = summaries
            .iter()
            .map(|text| Turn {
                speaker: None,
                text: text.clone(),
            })
            .collect();
        levels.push(summaries);
    }
    // Summaries that no longer shrink: the last level is cut to one window.
    let joined = render(&units, speakers);
    let summary = summarizer
        .summarize(&[joined], adapter, settings, cancel, progress)?
        .into_iter()
        .next()
        .map(|s| s.text)
        .unwrap_or_default();
    Ok(LongSummary {
        summary,
        levels,
        windows: first_windows,
    })
}

/// Which dialogues are summarized window by window when they do not fit the source window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongInput {
    /// Transcripts are windowed; rows of data sets are cut, as transformers' truncation does.
    Auto,
    Window,
    Cut,
}

/// Summaries of many dialogues: those that fit the source window (or are to be cut to it)
/// together in batches, the longer ones window by window; and how many were cut.
#[allow(clippy::too_many_arguments)]
pub fn summarize_all(
    summarizer: &Summarizer,
    dialogues: &[Dialogue],
    speakers: Speakers,
    long_input: LongInput,
    adapter: Option<&str>,
    settings: &SummarizeSettings,
    cancel: &Cancel,
    progress: &dyn ProgressSink,
) -> Result<(Vec<LongSummary>, usize)> {
    let tokenizer = &summarizer.model.tokenizer;
    let mut fits = Vec::with_capacity(dialogues.len());
    for dialogue in dialogues {
        let windowed = match long_input {
            LongInput::Auto => dialogue.transcript,
            LongInput::Window => true,
            LongInput::Cut => false,
        };
        let prompt = settings.prompt(&dialogue.dialogue);
        fits.push(!windowed || tokenizer.fits(&prompt, settings.max_source_length)?);
    }
    let short: Vec<String> = dialogues
        .iter()
        .zip(&fits)
        .filter(|(_, fits)| **fits)
        .map(|(d, _)| d.dialogue.clone())
        .collect();
    let short_summaries = summarizer.summarize(&short, adapter, settings, cancel, progress)?;
    let cut = short_summaries.iter().filter(|s| s.truncated).count();
    let mut short_summaries = short_summaries.into_iter();
    let mut summaries = Vec::with_capacity(dialogues.len());
    for (dialogue, fits) in dialogues.iter().zip(fits) {
        if fits {
            summaries.push(LongSummary {
                summary: short_summaries.next().map(|s| s.text).unwrap_or_default(),
                levels: Vec::new(),
                windows: 1,
            });
        } else {
            summaries.push(summarize_long(
                summarizer,
                &dialogue.turns,
                speakers,
                adapter,
                settings,
                cancel,
                progress,
            )?);
        }
    }
    Ok((summaries, cut))
}
