//! Failures in plain words: the one place where every kind of engine failure becomes a sentence a
//! person understands and the next steps they can take, worded from the failure's kind and the
//! work it stopped, never from its technical text (which stays under Details).

use crate::protocol::{Problem, ProblemKind, Task};

/// What a person can do about a failure, offered as buttons beside its sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Run the same work again.
    Retry,
    /// Choose a model folder already on this computer.
    ChooseModelFolder,
    /// Choose other data files.
    ChooseDataFiles,
    /// Open the Settings screen (folders, device).
    OpenSettings,
    /// Show the log of failures, to report a fault.
    ShowLog,
}

impl NextStep {
    pub fn label(self) -> &'static str {
        match self {
            NextStep::Retry => "Retry",
            NextStep::ChooseModelFolder => "Choose a model folder",
            NextStep::ChooseDataFiles => "Choose other files",
            NextStep::OpenSettings => "Open Settings",
            NextStep::ShowLog => "Show the log",
        }
    }
}

/// A failure as the app shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// What could not be done and why, in everyday words.
    pub sentence: String,
    /// The exact reason, shown under the sentence when it names the file line or setting a
    /// person must change (it is worded for people already); else it stays under Details.
    pub specific: Option<String>,
    pub steps: Vec<NextStep>,
}

/// What the interrupted work was, as the start of a sentence.
fn what_failed(task: Option<Task>) -> &'static str {
    match task {
        Some(Task::LoadModel) => "The model could not be loaded",
        Some(Task::ImportData) => "The data could not be read",
        Some(Task::Train) => "Training could not go on",
        Some(Task::Evaluate) => "The comparison could not be finished",
        Some(Task::Summarize) => "The summary could not be made or saved",
        Some(Task::Library) => "The adapter library could not be changed",
        Some(Task::Draft) => "The drafts could not be written",
        Some(Task::MeasureSpeed) => "This computer's training speed could not be measured",
        None => "That did not work",
    }
}

/// The sentence and next steps for `problem`, which stopped `task` (none: a quick action).
pub fn explain(task: Option<Task>, problem: &Problem) -> Explanation {
    use NextStep::*;
    let choose = match task {
        Some(Task::LoadModel) => Some(ChooseModelFolder),
        Some(Task::ImportData) => Some(ChooseDataFiles),
        _ => None,
    };
    let retry = task.map(|_| Retry);
    let (why, specific, steps): (&str, bool, Vec<Option<NextStep>>) = match problem.kind {
        ProblemKind::Offline => (
            "this computer seems to be offline, or the model hub cannot be reached. Connect and \
             retry; what was downloaded before works without a network",
            false,
            vec![retry, choose],
        ),
        ProblemKind::NotOnHub => (
            "the model hub has nothing by that name. Check its spelling (like google/flan-t5-base)",
            false,
            vec![choose],
        ),
        ProblemKind::HubFailed => (
            "the model hub did not give the files just now. Retry in a moment",
            false,
            vec![retry, choose],
        ),
        ProblemKind::Missing => (
            "a file or folder it needs is not there. Check that it was not moved or renamed",
            true,
            vec![choose, retry],
        ),
        ProblemKind::NoPermission => (
            "Dialora is not allowed to use a file or folder there. Choose another folder, or \
             allow access to it",
            true,
            vec![Some(OpenSettings), choose],
        ),
        ProblemKind::DiskFull => (
            "the disk is full. Free some space, then retry",
            false,
            vec![retry, Some(OpenSettings)],
        ),
        ProblemKind::Exists => (
            "something is already there under that name, and it was kept. Choose another name",
            true,
            vec![],
        ),
        ProblemKind::FileFailed => (
            "a file could not be read or written. Retry, or choose another place",
            false,
            vec![retry, Some(OpenSettings)],
        ),
        ProblemKind::Invalid => (
            "a file holds something Dialora cannot use. The line below says where",
            true,
            vec![choose],
        ),
        ProblemKind::Settings => (
            "a setting cannot be used as it is. The line below says which",
            true,
            vec![],
        ),
        ProblemKind::Stopped => ("it was stopped before the end", false, vec![retry]),
        ProblemKind::Internal => (
            "something went wrong inside Dialora. Nothing you had was changed; please report \
             it with the log",
            false,
            vec![retry, Some(ShowLog)],
        ),
    };
    let mut steps: Vec<NextStep> = steps.into_iter().flatten().collect();
    steps.dedup();
    // With no step to offer, the exact line is the way on.
    let specific = specific || steps.is_empty();
    Explanation {
        sentence: format!("{}: {why}.", what_failed(task)),
        specific: specific.then(|| problem.detail.clone()),
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASKS: [Option<Task>; 9] = [
        None,
        Some(Task::LoadModel),
        Some(Task::ImportData),
        Some(Task::Train),
        Some(Task::Evaluate),
        Some(Task::Summarize),
        Some(Task::Library),
        Some(Task::Draft),
        Some(Task::MeasureSpeed),
    ];

    /// Words of the technical line that must never reach the sentence.
    const JARGON: [&str; 8] = [
        "error", "os ", "dns", "request", "tensor", "http", "io ", "panic",
    ];

    #[test]
    fn every_kind_of_failure_of_every_task_has_a_plain_sentence() {
        for kind in ProblemKind::ALL {
            for task in TASKS {
                let problem = Problem {
                    kind,
                    detail: "/tmp/x: request error: Dns Failed (os error 2)".into(),
                };
                let shown = explain(task, &problem);
                let sentence = shown.sentence.to_lowercase();
                for word in JARGON {
                    assert!(!sentence.contains(word), "{kind:?}: {sentence}");
                }
                assert!(!sentence.contains("/tmp/x"), "{kind:?}: {sentence}");
                assert!(sentence.ends_with('.'), "{sentence}");
                assert!(
                    shown.sentence.starts_with(what_failed(task)),
                    "{kind:?} of {task:?} says what stopped: {sentence}"
                );
                // A person is told what to do: a step to take, or the line that says what to change.
                assert!(
                    !shown.steps.is_empty() || shown.specific.is_some(),
                    "{kind:?} of {task:?} leaves the person without a way on"
                );
                // Retrying is offered only where there is something to run again.
                assert!(task.is_some() || !shown.steps.contains(&NextStep::Retry));
            }
        }
    }

    #[test]
    fn offline_is_told_as_offline_with_retry_and_a_local_folder() {
        let problem = Problem {
            kind: ProblemKind::Offline,
            detail: "google/flan-t5-base/config.json: the model hub cannot be reached".into(),
        };
        let shown = explain(Some(Task::LoadModel), &problem);
        assert!(shown.sentence.contains("offline"), "{}", shown.sentence);
        assert_eq!(
            shown.steps,
            [NextStep::Retry, NextStep::ChooseModelFolder],
            "Retry first"
        );
        assert_eq!(shown.specific, None, "the hub's line stays under Details");
    }
}
