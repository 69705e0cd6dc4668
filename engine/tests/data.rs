//! Data import against hand-written fixtures of every format (`fixtures/data/`), with the ugliness
//! real exports have: byte-order marks, CRLF, quoted fields with delimiters, doubled quotes and line
//! breaks, speakers with spaces, voice tags, NOTE and STYLE blocks, multi-line cues.

use std::path::{Path, PathBuf};

use dialora_engine::data::{Format, ImportOptions, Imported, Speakers, import, split};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/data")
        .join(name)
}

fn read(name: &str) -> Imported {
    import(&data(name), &ImportOptions::default()).expect("the fixture imports")
}

fn speakers_and_texts(imported: &Imported) -> Vec<(Option<&str>, &str)> {
    imported.dialogues[0]
        .turns
        .iter()
        .map(|t| (t.speaker.as_deref(), t.text.as_str()))
        .collect()
}

#[test]
fn csv_with_bom_crlf_quotes_and_line_breaks() {
    let imported = read("chats.csv");
    assert_eq!(imported.format, Format::Csv);
    assert_eq!(imported.dialogues.len(), 3);
    let first = &imported.dialogues[0];
    assert_eq!(first.id, Some(Value::from("c1")));
    assert_eq!(
        first.dialogue,
        "Mary Ann: Did you book the \"big\" room?\nBob: Yes, for Monday, 10am."
    );
    assert_eq!(
        first.summaries,
        ["Bob booked the big room for Monday, 10am."]
    );
    assert_eq!(
        speakers_and_texts(&imported),
        [
            (Some("Mary Ann"), "Did you book the \"big\" room?"),
            (Some("Bob"), "Yes, for Monday, 10am.")
        ]
    );
    assert_eq!(imported.dialogues[1].line, 4);
    assert_eq!(imported.dialogues[1].turns.len(), 3);
    // The third row has no summary; the blank line before it is not a row.
    assert_eq!(imported.dialogues[2].line, 8);
    assert!(imported.dialogues[2].summaries.is_empty());
}

#[test]
fn tsv_and_semicolon_tables_are_told_by_content() {
    let tsv = read("chats.tsv");
    assert_eq!(tsv.format, Format::Tsv);
    assert_eq!(tsv.dialogues.len(), 2);
    assert_eq!(tsv.dialogues[1].summaries, ["#Person1# asks the way."]);
    let semicolons = read("notes.csv");
    assert_eq!(semicolons.format, Format::Csv);
    assert_eq!(semicolons.dialogues.len(), 2);
    assert_eq!(
        semicolons.dialogues[0].dialogue,
        "Anna: The invoice is late; again.\nBen: I'll call them."
    );
    assert_eq!(
        semicolons.dialogues[0].summaries,
        ["Ben will call about the late invoice."]
    );
}

#[test]
fn dialogsum_jsonl_and_json_arrays() {
    let jsonl = read("dialogsum.jsonl");
    assert_eq!(jsonl.format, Format::Jsonl);
    assert_eq!(jsonl.dialogues[0].id, Some(Value::from("dev_1")));
    assert_eq!(jsonl.dialogues[0].summaries.len(), 3);
    assert_eq!(
        speakers_and_texts(&jsonl),
        [
            (Some("#Person1#"), "Can I help you?"),
            (Some("#Person2#"), "I need a ticket.")
        ]
    );
    let array = read("array.json");
    assert_eq!(array.format, Format::Json);
    assert_eq!(array.dialogues.len(), 2);
    assert_eq!(array.dialogues[1].id, Some(Value::from(8)));
    assert_eq!(array.dialogues[1].line, 7);
    assert_eq!(
        array.dialogues[0].summaries,
        ["Kim and Lee confirm Friday."]
    );
}

#[test]
fn teams_webvtt_with_voice_tags_notes_styles_and_multi_line_cues() {
    let imported = read("teams.vtt");
    assert_eq!(imported.format, Format::Vtt);
    assert_eq!(imported.dialogues.len(), 1);
    assert_eq!(imported.dialogues[0].id, Some(Value::from("teams")));
    assert_eq!(
        speakers_and_texts(&imported),
        [
            (
                Some("Mary Ann Smith"),
                "Good morning, everyone. Let's start with the budget. It is due on Friday."
            ),
            (Some("Raj Patel"), "I have the numbers & the slides."),
            (Some("Mary Ann Smith"), "Great, thanks."),
        ]
    );
    assert!(
        imported.dialogues[0]
            .dialogue
            .starts_with("Mary Ann Smith: Good morning")
    );
}

#[test]
fn zoom_webvtt_srt_and_plain_transcripts() {
    let zoom = read("zoom.vtt");
    assert_eq!(
        speakers_and_texts(&zoom),
        [
            (Some("Tom Jones"), "Can everyone hear me?"),
            (
                Some("Priya"),
                "Yes, loud and clear. Shall we review the plan?"
            ),
        ]
    );
    let srt = read("meeting.srt");
    assert_eq!(srt.format, Format::Srt);
    assert_eq!(
        speakers_and_texts(&srt),
        [
            (Some("Ana Lopez"), "The server is down."),
            (Some("Wei"), "I restarted it a minute ago."),
            (Some("Ana Lopez"), "Thanks!"),
        ]
    );
    let plain = read("standup.txt");
    assert_eq!(plain.format, Format::Transcript);
    assert_eq!(
        speakers_and_texts(&plain),
        [
            (
                Some("Jo Ellen"),
                "Yesterday I fixed the login bug. It took longer than planned because of the cache."
            ),
            (Some("Sam"), "I reviewed two pull requests."),
            (Some("Jo Ellen"), "Today I'll write tests."),
        ]
    );
}

#[test]
fn speakers_render_as_dialogsum_persons_on_request() {
    let options = ImportOptions {
        speakers: Speakers::Persons,
        ..ImportOptions::default()
    };
    let imported = import(&data("meeting.srt"), &options).unwrap();
    assert_eq!(
        imported.dialogues[0].dialogue,
        "#Person1#: The server is down.\n#Person2#: I restarted it a minute ago.\n#Person1#: Thanks!"
    );
}

#[test]
fn a_folder_is_every_file_in_it_and_columns_can_be_named() {
    let folder = tempfile::tempdir().unwrap();
    for name in ["teams.vtt", "meeting.srt", "standup.txt"] {
        std::fs::copy(data(name), folder.path().join(name)).unwrap();
    }
    let imported = import(folder.path(), &ImportOptions::default()).unwrap();
    assert_eq!(imported.format, Format::Folder);
    let ids: Vec<Value> = imported
        .dialogues
        .iter()
        .map(|d| d.id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["meeting", "standup", "teams"]);

    let options = ImportOptions {
        dialogue_column: Some("Topic".into()),
        summary_column: Some("ID".into()),
        ..ImportOptions::default()
    };
    let renamed = import(&data("chats.csv"), &options).unwrap();
    assert_eq!(renamed.dialogues[0].dialogue, "meeting");
    assert_eq!(renamed.dialogues[0].summaries, ["c1"]);
}

#[test]
fn splits_are_seeded_and_disjoint() {
    let dialogues = read("chats.csv").dialogues;
    let (train, validation) = split(dialogues.clone(), 0.34, 3);
    assert_eq!((train.len(), validation.len()), (2, 1));
    assert_eq!(split(dialogues, 0.34, 3).1, validation);
    assert!(!train.contains(&validation[0]));
}

#[test]
fn validation_is_held_out_of_reviewed_summaries_only() {
    let dialogue = |i: usize, summary: Option<&str>, draft: bool| dialora_engine::data::Dialogue {
        id: Some(serde_json::Value::from(format!("d{i}"))),
        dialogue: format!("Anna: line {i}"),
        turns: Vec::new(),
        summaries: summary.map(String::from).into_iter().collect(),
        file: "set.jsonl".into(),
        line: i + 1,
        transcript: false,
        draft,
    };
    // Five accepted summaries, three drafts and two dialogues without any.
    let dialogues: Vec<dialora_engine::data::Dialogue> = (0..10)
        .map(|i| match i {
            0..5 => dialogue(i, Some("accepted"), false),
            5..8 => dialogue(i, Some("draft"), true),
            _ => dialogue(i, None, false),
        })
        .collect();
    let (train, held) = dialora_engine::data::split_for_validation(dialogues.clone(), 0.1, 42);
    assert_eq!(
        (train.len(), held.len()),
        (9, 1),
        "never zero with five or more"
    );
    assert!(held.iter().all(|d| d.reviewed_summary().is_some()));
    let (_, held) = dialora_engine::data::split_for_validation(dialogues.clone(), 0.5, 42);
    assert_eq!(held.len(), 3, "half of the five reviewed ones, rounded");
    // One reviewed summary is kept for training, never held out alone.
    let (train, held) =
        dialora_engine::data::split_for_validation(dialogues[4..].to_vec(), 0.5, 42);
    assert_eq!((train.len(), held.len()), (6, 0));
    // `data convert`'s split is of every dialogue.
    let (_, held) = dialora_engine::data::split(dialogues, 0.5, 42);
    assert_eq!(held.len(), 5);
}
