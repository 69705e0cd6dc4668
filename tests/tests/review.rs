//! The review's dataset survives the app process being killed: a child process (this test binary
//! run again) drives the engine service as the window does, accepting summaries one after the
//! other and printing each acceptance once the service reports it saved; the parent kills it with
//! SIGKILL at a random moment, and the dataset file must be whole with every acknowledged
//! acceptance in it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use dialora::service::{InProcess, ServiceConfig};
use dialora_tests::fixtures;
use dialora_ui::Backend;
use dialora_ui::protocol::{Command, DataRequest, Decision, Event, ReviewItem, ReviewStatus};

const CHILD_HOME: &str = "DIALORA_REVIEW_CHILD_HOME";

/// Waits for the first event `pick` takes, failing on an engine error.
fn until<T>(service: &mut InProcess, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        for event in service.poll() {
            if let Event::Error { problem } = &event {
                panic!("the engine failed: {problem:?}");
            }
            if let Event::TaskEnded {
                outcome: dialora_ui::protocol::Outcome::Failed { problem },
                ..
            } = &event
            {
                panic!("the engine failed: {problem:?}");
            }
            if let Some(found) = pick(event) {
                return found;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no answer");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The child: opens (or makes) the dataset and accepts summaries until it is killed.
#[test]
#[ignore = "run by a_killed_app_keeps_every_acceptance as its child process"]
fn accepting_child() {
    let Some(home) = std::env::var_os(CHILD_HOME) else {
        return;
    };
    let mut service = InProcess::start(ServiceConfig {
        home: home.into(),
        memory_bytes: 64 << 30,
        picker: None,
    });
    service.send(Command::Start);
    let datasets = until(&mut service, |e| match e {
        Event::Ready { datasets, .. } => Some(datasets),
        _ => None,
    });
    if datasets.is_empty() {
        service.send(Command::ImportData {
            request: DataRequest {
                sources: vec![fixtures().join("data/meetings").display().to_string()],
                columns: Default::default(),
                validation_fraction: 0.0,
                seed: 42,
            },
        });
        service.send(Command::CreateDataset {
            name: "meetings".into(),
            style: "Summarize the following conversation.\n\n{dialogue}\n\nSummary: ".into(),
        });
    } else {
        service.send(Command::OpenDataset {
            name: "meetings".into(),
        });
    }
    let count = until(&mut service, |e| match e {
        Event::Dataset(view) => Some(view.items.len()),
        _ => None,
    });
    let run = std::process::id();
    for n in 0..100_000 {
        let index = n % count;
        let text = format!("summary {run} {n}");
        service.send(Command::Review {
            name: "meetings".into(),
            index,
            decision: Decision::Accept { text: text.clone() },
            next: (index + 1) % count,
        });
        until(&mut service, |e| match e {
            Event::DatasetChanged(change) => Some(change),
            _ => None,
        });
        println!("accepted {index} {text}");
    }
}

fn rows(file: &Path) -> Vec<ReviewItem> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

#[test]
fn a_killed_app_keeps_every_acceptance() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("datasets/meetings/dataset.jsonl");
    let mut seed = std::process::id() as u64 | 1;
    for round in 0..4 {
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args(["accepting_child", "--exact", "--ignored", "--nocapture"])
            .env(CHILD_HOME, home.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it after a random number of acknowledged acceptances, between two of them or in
        // the middle of the next write.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = 3 + (seed % 40) as usize;
        let mut acknowledged: Vec<Option<String>> = vec![None; 6];
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        for line in lines {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("accepted ") else {
                continue;
            };
            let (index, text) = rest.split_once(' ').unwrap();
            acknowledged[index.parse::<usize>().unwrap()] = Some(text.to_string());
            seen += 1;
            if seen == kill_after {
                break;
            }
        }
        assert_eq!(
            seen, kill_after,
            "the child stopped by itself after {seen} acceptances"
        );
        if round % 2 == 1 {
            // Now and then in the middle of the next save rather than between two.
            std::thread::sleep(Duration::from_micros(seed % 3000));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child ended by itself");

        let items = rows(&file);
        assert_eq!(items.len(), 6, "the dataset file is whole");
        for (index, text) in acknowledged.iter().enumerate() {
            let Some(text) = text else { continue };
            let item = &items[index];
            assert_eq!(item.status, ReviewStatus::Accepted);
            // The acknowledged summary, or one accepted after it (the save after the last
            // acknowledgement may have landed before the kill).
            let saved = item.summary.as_deref().unwrap();
            let number = |s: &str| s.rsplit(' ').next().unwrap().parse::<usize>().unwrap();
            let same_run = saved.rsplit_once(' ').map(|(run, _)| run)
                == text.rsplit_once(' ').map(|(run, _)| run);
            assert!(
                same_run && number(saved) >= number(text),
                "round {round}, dialogue {index}: {saved:?} lost {text:?}"
            );
        }
    }
}
