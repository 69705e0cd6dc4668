//! The datasets people review, one folder each under `<home>/datasets/<name>/`: `dataset.jsonl`
//! holds one row per dialogue, DialogSum-shaped (`id`, `dialogue`, `summary`, `"draft": true`
//! while the summary is a draft nobody accepted) with what the review needs beside it (turns, the
//! model's draft, who drafted it, in which round, how many words the person changed);
//! `review.json` holds the prompt drafts are written with, where the review is and the drafting
//! rounds. Every decision is written at once, atomically, so a crash loses at most the text being
//! typed; Train and Evaluate read `dataset.jsonl` like any data file.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use dialora_engine::data::{self, Dialogue, ImportOptions, Turn};
use dialora_engine::fsutil::write_atomically;
use dialora_engine::{Error, Result};
use dialora_ui::protocol::{
    DatasetChange, DatasetEntry, DatasetView, Decision, ReviewItem, ReviewStatus, ReviewTurn,
    RoundFigure,
};
use serde::{Deserialize, Serialize};

use super::folders;

const ROWS_FILE: &str = "dataset.jsonl";
const REVIEW_FILE: &str = "review.json";

/// A drafting round: who drafted, and how many drafts it wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Round {
    round: usize,
    drafted_by: Option<String>,
    drafted: usize,
}

/// What `review.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Review {
    style: String,
    position: usize,
    rounds: Vec<Round>,
}

struct Dataset {
    items: Vec<ReviewItem>,
    review: Review,
}

impl Dataset {
    /// A dataset nobody has reviewed or drafted yet, drafted in `style`.
    fn new(items: Vec<ReviewItem>, style: &str) -> Self {
        Self {
            items,
            review: Review {
                style: style.to_string(),
                position: 0,
                rounds: Vec::new(),
            },
        }
    }
}

/// The dialogues of a round that are to be drafted: their place in the dataset and the
/// dialogue as the engine takes it.
pub struct RoundWork {
    pub round: usize,
    pub dialogues: Vec<(usize, Dialogue)>,
}

pub struct Datasets {
    folder: PathBuf,
    /// The dataset being drafted, which cannot be renamed or deleted meanwhile.
    drafting: Option<String>,
}

impl Datasets {
    pub fn new(home: &Path) -> Self {
        Self {
            folder: home.join("datasets"),
            drafting: None,
        }
    }

    /// The folder of dataset `name`, refusing names that are not plain folder names.
    fn folder(&self, name: &str) -> Result<PathBuf> {
        folders::named(&self.folder, name, "a dataset")
    }

    fn existing(&self, name: &str) -> Result<PathBuf> {
        let folder = self.folder(name)?;
        if !folder.join(ROWS_FILE).is_file() {
            return Err(Error::settings(format!(
                "no dataset named \"{}\"",
                name.trim()
            )));
        }
        Ok(folder)
    }

    /// The datasets, by name.
    pub fn entries(&self) -> Vec<DatasetEntry> {
        folders::names(&self.folder)
            .into_iter()
            .filter(|name| self.folder.join(name).join(ROWS_FILE).is_file())
            .filter_map(|name| {
                let dataset = self.read(&name).ok()?;
                Some(self.entry(&name, &dataset.items))
            })
            .collect()
    }

    fn entry(&self, name: &str, items: &[ReviewItem]) -> DatasetEntry {
        let file = self.folder.join(name).join(ROWS_FILE);
        let modified = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let count = |status: ReviewStatus| items.iter().filter(|i| i.status == status).count();
        DatasetEntry {
            name: name.to_string(),
            dialogues: items.len(),
            accepted: count(ReviewStatus::Accepted),
            reviewed: count(ReviewStatus::Accepted) + count(ReviewStatus::Skipped),
            modified,
            file: file.display().to_string(),
        }
    }

    fn read(&self, name: &str) -> Result<Dataset> {
        let folder = self.existing(name)?;
        let rows_path = folder.join(ROWS_FILE);
        let items = data::read_json_lines(&rows_path)?
            .into_iter()
            .map(|(line, row)| {
                serde_json::from_value::<ReviewItem>(serde_json::Value::Object(row)).map_err(|e| {
                    Error::invalid_at(&rows_path, line, format!("not a dataset row: {e}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let review_path = folder.join(REVIEW_FILE);
        let text =
            std::fs::read_to_string(&review_path).map_err(|e| Error::file(&review_path, e))?;
        let review: Review = serde_json::from_str(&text).map_err(|e| {
            Error::invalid_at(&review_path, e.line(), format!("not a review file: {e}"))
        })?;
        Ok(Dataset { items, review })
    }

    /// Writes the rows, then where the review is: each file whole or not at all.
    fn write(&self, name: &str, dataset: &Dataset) -> Result<()> {
        let folder = self.folder(name)?;
        write_atomically(
            &folder.join(ROWS_FILE),
            rows_text(&dataset.items).as_bytes(),
        )?;
        self.write_review(name, &dataset.review)
    }

    fn write_review(&self, name: &str, review: &Review) -> Result<()> {
        let folder = self.folder(name)?;
        write_atomically(&folder.join(REVIEW_FILE), review_text(review)?.as_bytes())
    }

    fn view(&self, name: &str, dataset: Dataset) -> DatasetView {
        DatasetView {
            entry: self.entry(name, &dataset.items),
            style: dataset.review.style.clone(),
            position: dataset
                .review
                .position
                .min(dataset.items.len().saturating_sub(1)),
            rounds: figures(&dataset),
            items: dataset.items,
        }
    }

    fn change(&self, name: &str, dataset: &Dataset, changed: Vec<usize>) -> DatasetChange {
        DatasetChange {
            entry: self.entry(name, &dataset.items),
            items: changed
                .into_iter()
                .filter_map(|i| dataset.items.get(i).map(|item| (i, item.clone())))
                .collect(),
            rounds: figures(dataset),
        }
    }

    /// A new dataset of `dialogues`: those with a summary a person wrote are accepted already.
    pub fn create(&self, name: &str, style: &str, dialogues: &[Dialogue]) -> Result<DatasetView> {
        check_style(style)?;
        let folder = self.folder(name)?;
        if folder.exists() {
            return Err(Error::settings(format!(
                "a dataset named \"{}\" exists already: choose another name",
                name.trim()
            )));
        }
        if dialogues.is_empty() {
            return Err(Error::settings("import dialogues first (the Data screen)"));
        }
        let dataset = Dataset::new(items_of(dialogues), style);
        self.write_new(name, &dataset)?;
        Ok(self.view(name.trim(), dataset))
    }

    /// Writes a new dataset's folder beside the others and renames it in.
    fn write_new(&self, name: &str, dataset: &Dataset) -> Result<()> {
        let folder = self.folder(name)?;
        folders::write_new(&self.folder, &folder, |staging| {
            write_atomically(
                &staging.join(ROWS_FILE),
                rows_text(&dataset.items).as_bytes(),
            )?;
            write_atomically(
                &staging.join(REVIEW_FILE),
                review_text(&dataset.review)?.as_bytes(),
            )
        })
    }

    pub fn open(&self, name: &str) -> Result<DatasetView> {
        let dataset = self.read(name)?;
        Ok(self.view(name.trim(), dataset))
    }

    /// Records a decision on dialogue `index` and moves the review to `next`.
    pub fn decide(
        &self,
        name: &str,
        index: usize,
        decision: Decision,
        next: usize,
    ) -> Result<DatasetChange> {
        let mut dataset = self.read(name)?;
        let count = dataset.items.len();
        let Some(item) = dataset.items.get_mut(index) else {
            return Err(Error::settings(format!(
                "the dataset \"{name}\" has {count} dialogues; there is no number {}",
                index + 1
            )));
        };
        match decision {
            Decision::Accept { text } => {
                let text = text.trim().to_string();
                if text.is_empty() {
                    return Err(Error::settings(
                        "the summary is empty: write one, or skip this dialogue",
                    ));
                }
                item.edits = item.drafted.as_deref().map(|d| word_edits(d, &text));
                item.summary = Some(text);
                item.draft = false;
                item.status = ReviewStatus::Accepted;
            }
            Decision::Skip => {
                if item.status != ReviewStatus::Accepted {
                    item.status = ReviewStatus::Skipped;
                }
            }
        }
        dataset.review.position = next.min(count.saturating_sub(1));
        self.write(name, &dataset)?;
        Ok(self.change(name.trim(), &dataset, vec![index]))
    }

    /// Moves the review to dialogue `index`.
    pub fn move_to(&self, name: &str, index: usize) -> Result<()> {
        let mut dataset = self.read(name)?;
        dataset.review.position = index.min(dataset.items.len().saturating_sub(1));
        self.write_review(name, &dataset.review)
    }

    /// Starts a drafting round with `drafted_by` in the prompt `style`: the dialogues not accepted
    /// yet, with the round's number.
    pub fn begin_round(
        &mut self,
        name: &str,
        drafted_by: Option<String>,
        style: &str,
    ) -> Result<RoundWork> {
        check_style(style)?;
        let mut dataset = self.read(name)?;
        let rows = self.existing(name)?.join(ROWS_FILE);
        let dialogues: Vec<(usize, Dialogue)> = dataset
            .items
            .iter()
            .enumerate()
            .filter(|(_, item)| item.status != ReviewStatus::Accepted)
            .map(|(index, item)| (index, dialogue_of(item, &rows, index)))
            .collect();
        if dialogues.is_empty() {
            return Err(Error::settings(format!(
                "every dialogue of \"{}\" is accepted: there is nothing left to draft",
                name.trim()
            )));
        }
        let round = dataset.review.rounds.len() + 1;
        dataset.review.rounds.push(Round {
            round,
            drafted_by,
            drafted: 0,
        });
        dataset.review.style = style.to_string();
        self.write_review(name, &dataset.review)?;
        self.drafting = Some(name.trim().to_string());
        Ok(RoundWork { round, dialogues })
    }

    /// Keeps the drafts of a round (for dialogues still not accepted: a person may have accepted
    /// one while it was drafted).
    pub fn put_drafts(
        &self,
        name: &str,
        round: usize,
        drafts: Vec<(usize, String)>,
    ) -> Result<DatasetChange> {
        let mut dataset = self.read(name)?;
        let drafted_by = dataset
            .review
            .rounds
            .iter()
            .find(|r| r.round == round)
            .and_then(|r| r.drafted_by.clone());
        let mut changed = Vec::new();
        for (index, text) in drafts {
            let Some(item) = dataset.items.get_mut(index) else {
                continue;
            };
            if item.status == ReviewStatus::Accepted {
                continue;
            }
            item.summary = Some(text.clone());
            item.draft = true;
            item.drafted = Some(text);
            item.drafted_by = drafted_by.clone();
            item.round = Some(round);
            item.edits = None;
            item.status = ReviewStatus::Pending;
            changed.push(index);
        }
        if let Some(entry) = dataset.review.rounds.iter_mut().find(|r| r.round == round) {
            entry.drafted += changed.len();
        }
        self.write(name, &dataset)?;
        Ok(self.change(name.trim(), &dataset, changed))
    }

    pub fn end_round(&mut self) {
        self.drafting = None;
    }

    fn refuse_while_drafting(&self, name: &str) -> Result<()> {
        if self.drafting.as_deref() == Some(name.trim()) {
            return Err(Error::settings(format!(
                "\"{}\" is being drafted: stop drafting first",
                name.trim()
            )));
        }
        Ok(())
    }

    pub fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        self.refuse_while_drafting(name)?;
        folders::rename(&self.existing(name)?, &self.folder(new_name)?, "A dataset")
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        self.refuse_while_drafting(name)?;
        folders::delete(&self.existing(name)?)
    }

    /// Writes the dataset's rows to `file` (DialogSum-shaped JSONL, which any tool reads and
    /// [`Datasets::import`] takes back whole).
    pub fn export(&self, name: &str, file: &Path) -> Result<()> {
        let dataset = self.read(name)?;
        write_atomically(file, rows_text(&dataset.items).as_bytes())
    }

    /// Makes a dataset of a file: one exported before comes back with its decisions; any other
    /// data file is imported as on the Data screen. Returns the new dataset's name.
    pub fn import(&self, path: &Path, style: &str) -> Result<String> {
        let items = match exported_rows(path) {
            Some(items) => items,
            None => items_of(&data::import(path, &ImportOptions::default())?.dialogues),
        };
        let name = folders::free_name(&self.folder, &folders::name_of(path));
        self.write_new(&name, &Dataset::new(items, style))?;
        Ok(name)
    }
}

fn check_style(style: &str) -> Result<()> {
    if !style.contains("{dialogue}") {
        return Err(Error::settings(
            "the summary style must contain {dialogue}, where the conversation goes",
        ));
    }
    Ok(())
}

fn review_text(review: &Review) -> Result<String> {
    serde_json::to_string_pretty(review)
        .map_err(|e| Error::settings(format!("cannot record the review: {e}")))
}

fn items_of(dialogues: &[Dialogue]) -> Vec<ReviewItem> {
    dialogues
        .iter()
        .enumerate()
        .map(|(index, dialogue)| item_of(dialogue, index))
        .collect()
}

fn rows_text(items: &[ReviewItem]) -> String {
    let mut text = String::new();
    for item in items {
        text.push_str(&serde_json::to_string(item).unwrap_or_default());
        text.push('\n');
    }
    text
}

/// The rows of a file this app exported, with their decisions; `None` for any other file.
fn exported_rows(path: &Path) -> Option<Vec<ReviewItem>> {
    let rows = data::read_json_lines(path).ok()?;
    let has_review = rows.iter().all(|(_, row)| row.contains_key("status"));
    if rows.is_empty() || !has_review {
        return None;
    }
    rows.into_iter()
        .map(|(_, row)| serde_json::from_value(serde_json::Value::Object(row)).ok())
        .collect()
}

/// A dialogue as a dataset row: accepted when a person wrote its summary, a draft to review when
/// it carries one, to be drafted otherwise.
fn item_of(dialogue: &Dialogue, index: usize) -> ReviewItem {
    let id = match dialogue.id_or_position(index) {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    };
    let reviewed = dialogue.reviewed_summary().map(str::to_string);
    let draft = dialogue.unreviewed_draft().map(str::to_string);
    ReviewItem {
        id,
        dialogue: dialogue.dialogue.clone(),
        summary: reviewed.clone().or_else(|| draft.clone()),
        draft: reviewed.is_none() && draft.is_some(),
        status: if reviewed.is_some() {
            ReviewStatus::Accepted
        } else {
            ReviewStatus::Pending
        },
        turns: dialogue
            .turns
            .iter()
            .map(|t| ReviewTurn {
                speaker: t.speaker.clone(),
                text: t.text.clone(),
            })
            .collect(),
        drafted: draft,
        drafted_by: None,
        round: None,
        edits: None,
    }
}

/// The engine's dialogue for a row, to draft it.
fn dialogue_of(item: &ReviewItem, file: &Path, index: usize) -> Dialogue {
    let mut turns: Vec<Turn> = item
        .turns
        .iter()
        .map(|t| Turn {
            speaker: t.speaker.clone(),
            text: t.text.clone(),
        })
        .collect();
    if turns.is_empty() {
        turns.push(Turn {
            speaker: None,
            text: item.dialogue.clone(),
        });
    }
    Dialogue {
        id: Some(serde_json::Value::from(item.id.clone())),
        dialogue: item.dialogue.clone(),
        turns,
        summaries: Vec::new(),
        file: file.to_path_buf(),
        line: index + 1,
        transcript: true,
        draft: false,
    }
}

/// Per round: its drafts and the mean words changed in those accepted.
fn figures(dataset: &Dataset) -> Vec<RoundFigure> {
    dataset
        .review
        .rounds
        .iter()
        .map(|round| {
            let edits: Vec<usize> = dataset
                .items
                .iter()
                .filter(|i| i.status == ReviewStatus::Accepted && i.round == Some(round.round))
                .filter_map(|i| i.edits)
                .collect();
            RoundFigure {
                round: round.round,
                drafted_by: round.drafted_by.clone(),
                drafted: round.drafted,
                accepted: edits.len(),
                mean_edits: (!edits.is_empty())
                    .then(|| edits.iter().sum::<usize>() as f64 / edits.len() as f64),
            }
        })
        .collect()
}

/// The word-level edit distance: how many words were inserted, deleted or replaced to turn the
/// draft into the accepted text.
pub fn word_edits(draft: &str, accepted: &str) -> usize {
    let a: Vec<&str> = draft.split_whitespace().collect();
    let b: Vec<&str> = accepted.split_whitespace().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, word) in a.iter().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, other) in b.iter().enumerate() {
            let replace = previous[j] + usize::from(word != other);
            current.push(replace.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::word_edits;

    #[test]
    fn edits_count_the_words_a_person_changed() {
        assert_eq!(word_edits("the cat sat", "the cat sat"), 0);
        assert_eq!(word_edits("the cat sat", "the dog sat"), 1);
        assert_eq!(word_edits("the cat sat", "the cat sat down"), 1);
        assert_eq!(word_edits("", "Anna will call Ben"), 4);
        assert_eq!(word_edits("Anna will call Ben", ""), 4);
        assert_eq!(word_edits("a b c d", "b c d e"), 2);
    }
}
