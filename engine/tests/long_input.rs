//! Long transcripts: windows that fit the source length, every turn in exactly one window's new
//! part, speakers named in every window, turns longer than a window cut at sentences, and summaries
//! of summaries that end within the length asked for.

use std::path::{Path, PathBuf};

use candle_core::Device;
use dialora_engine::data::{Speakers, Turn};
use dialora_engine::long_input::{OVERLAP_TURNS, make_windows, summarize_long, window_budget};
use dialora_engine::model::{LoadedModel, ModelFiles, Precision};
use dialora_engine::summarize::{SummarizeSettings, Summarizer};
use dialora_engine::task::{Cancel, NoProgress};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn summarizer() -> Summarizer {
    let files = ModelFiles::in_folder(&fixtures().join("t5-gated")).unwrap();
    Summarizer::new(LoadedModel::load(&files, "t5-gated", &Device::Cpu, Precision::F32).unwrap())
}

/// A meeting of `turns` turns among speakers whose names have spaces, with one enormous turn.
fn meeting(turns: usize, named: bool) -> Vec<Turn> {
    const SPEAKERS: [&str; 3] = ["Mary Ann", "Raj Patel", "Chen"];
    const SENTENCES: [&str; 5] = [
        "I will bring the report to the office tomorrow.",
        "Did you finish the invoice for Dana?",
        "Let's talk about it after lunch.",
        "The meeting is at the library next week.",
        "Sure, the ticket is ready.",
    ];
    (0..turns)
        .map(|i| {
            let count = if i == turns / 2 { 400 } else { 1 + i % 4 };
            let text = (0..count)
                .map(|j| SENTENCES[(i + j) % SENTENCES.len()])
                .collect::<Vec<_>>()
                .join(" ");
            Turn {
                speaker: named.then(|| SPEAKERS[i % SPEAKERS.len()].to_string()),
                text,
            }
        })
        .collect()
}

fn settings(max_source_length: usize) -> SummarizeSettings {
    let mut settings = SummarizeSettings {
        max_source_length,
        ..SummarizeSettings::default()
    };
    settings.generation.max_new_tokens = 12;
    settings
}

#[test]
fn windows_fit_cover_every_turn_once_and_keep_the_speakers() {
    let summarizer = summarizer();
    let tokenizer = &summarizer.model.tokenizer;
    let settings = settings(128);
    let turns = meeting(700, true);
    let total: usize = turns
        .iter()
        .map(|t| tokenizer.count(&t.text).unwrap())
        .sum();
    assert!(total > 20_000, "the transcript has only {total} tokens");

    let budget = window_budget(tokenizer, &settings).unwrap();
    let windowed = make_windows(&turns, Speakers::Names, tokenizer, budget).unwrap();
    assert!(windowed.windows.len() > 100);
    let mut next_new = 0;
    for window in &windowed.windows {
        // The whole prompt fits: nothing of the window is cut.
        let prompt = tokenizer
            .encode(&settings.prompt(&window.text), usize::MAX)
            .unwrap();
        assert!(prompt.ids.len() <= settings.max_source_length);
        assert_eq!(window.first_new, next_new, "new parts follow each other");
        assert!(window.first_new - window.start <= OVERLAP_TURNS);
        assert!(window.end > window.first_new);
        next_new = window.end;
        for unit in &windowed.units[window.start..window.end] {
            let speaker = unit.speaker.as_deref().unwrap();
            assert!(window.text.contains(&format!("{speaker}: ")));
        }
    }
    assert_eq!(next_new, windowed.units.len(), "every unit is in a window");
    // Every turn is there, in order; the enormous one in several pieces with its speaker.
    let mut turn_of_units = windowed.unit_turns.clone();
    turn_of_units.dedup();
    assert_eq!(turn_of_units, (0..turns.len()).collect::<Vec<_>>());
    let pieces = windowed.unit_turns.iter().filter(|&&t| t == 350).count();
    assert!(pieces > 10, "the long turn became {pieces} pieces");
}

#[test]
fn long_summaries_recurse_to_one_within_the_length_asked() {
    let summarizer = summarizer();
    let settings = settings(128);
    for named in [true, false] {
        let turns = meeting(120, named);
        let long = summarize_long(
            &summarizer,
            &turns,
            Speakers::Names,
            None,
            &settings,
            &Cancel::new(),
            &NoProgress,
        )
        .unwrap();
        assert!(long.windows > 10);
        assert!(!long.levels.is_empty());
        assert_eq!(long.levels[0].len(), long.windows);
        let tokens = summarizer.model.tokenizer.count(&long.summary).unwrap();
        assert!(
            tokens <= settings.generation.max_new_tokens,
            "{tokens} tokens"
        );
    }
}

#[test]
fn nothing_to_summarize_and_a_window_too_small_are_refused() {
    let summarizer = summarizer();
    let error = window_budget(&summarizer.model.tokenizer, &settings(20)).unwrap_err();
    assert!(error.to_string().contains("--max-source-length 20"));
    let silent = [Turn {
        speaker: Some("Mary Ann".into()),
        text: "  ".into(),
    }];
    let error = summarize_long(
        &summarizer,
        &silent,
        Speakers::Names,
        None,
        &settings(128),
        &Cancel::new(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(error.to_string().contains("no text"));
}
