//! Cancelling in the app's engine: a Cancel stops the running task and every task still waiting
//! its turn, each with its own flag, so a Train queued behind other work never starts after it.

use std::time::{Duration, Instant};

use dialora::service::{InProcess, ServiceConfig};
use dialora_tests::fixtures;
use dialora_ui::Backend;
use dialora_ui::presets::Preset;
use dialora_ui::protocol::{Command, DEFAULT_PROMPT, Device, Event, Outcome, Precision, Task};

#[test]
fn a_cancel_stops_the_queued_train_before_it_starts() {
    let home = tempfile::tempdir().unwrap();
    let mut service = InProcess::start(ServiceConfig {
        home: home.path().to_path_buf(),
        memory_bytes: 64 << 30,
        picker: None,
    });
    service.send(Command::Start);
    service.send(Command::LoadModel {
        source: fixtures().join("t5-gated").display().to_string(),
        device: Device::Cpu,
        precision: Precision::F32,
    });
    service.send(Command::Train {
        name: "queued".into(),
        settings: Preset::Quick.options(4, DEFAULT_PROMPT.to_string()),
    });
    service.send(Command::Cancel);

    let mut loads = Vec::new();
    let mut train_outcome = None;
    let mut train_ran = false;
    let start = Instant::now();
    while train_outcome.is_none() {
        for event in service.poll() {
            match event {
                Event::TaskEnded {
                    task: Task::Train,
                    outcome,
                } => train_outcome = Some(outcome),
                Event::TaskEnded {
                    task: Task::LoadModel,
                    outcome,
                } => loads.push(outcome),
                Event::Progress {
                    task: Task::Train, ..
                }
                | Event::TrainStarted { .. } => train_ran = true,
                _ => {}
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no end of the train"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(train_outcome, Some(Outcome::Cancelled));
    assert!(!train_ran, "the train never ran");
    assert!(!home.path().join("adapters/queued").exists());

    // A command sent after the Cancel is not cancelled by it.
    service.send(Command::LoadModel {
        source: fixtures().join("t5-gated").display().to_string(),
        device: Device::Cpu,
        precision: Precision::F32,
    });
    while loads.len() < 2 {
        for event in service.poll() {
            if let Event::TaskEnded {
                task: Task::LoadModel,
                outcome,
            } = event
            {
                loads.push(outcome);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no model");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(loads[1], Outcome::Done);
}
