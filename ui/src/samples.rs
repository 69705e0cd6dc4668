//! The sample conversations a first run tries Dialora on (short dialogues with summaries a person
//! wrote, and a meeting transcript to summarize), bundled so that they work offline.

/// DialogSum-shaped JSONL: `id`, `dialogue`, `summary`.
pub const CONVERSATIONS: &str = include_str!("../samples/conversations.jsonl");
/// A short meeting transcript, one `Speaker: text` turn a line.
pub const MEETING: &str = include_str!("../samples/meeting.txt");
/// The file name the engine writes [`CONVERSATIONS`] under, where a person can open it.
pub const CONVERSATIONS_FILE: &str = "sample-conversations.jsonl";
