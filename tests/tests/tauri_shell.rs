//! The Tauri shell driven through Tauri's mock runtime as its webview drives it: the UI's
//! commands go in through the `send` command (with the app's real permissions), the engine's
//! events come back as `dialora:event` events. Load a model, import data, train two steps,
//! evaluate, summarize; and what a launch asks to open follows the engine's `Ready`.

use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use dialora::service::ServiceConfig;
use dialora::shell::{self, WINDOW};
use dialora_tests::fixtures;
use dialora_ui::presets::Preset;
use dialora_ui::protocol::{
    BRIDGE_COMMAND, BRIDGE_EVENT, Columns, Command, DEFAULT_PROMPT, DataRequest, Device, Event,
    OpenRequest, Outcome, Precision, Task, Transcript,
};
use tauri::Listener;
use tauri::test::{MockRuntime, get_ipc_response, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, Manager, WebviewWindow};

struct Shell {
    app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    events: Receiver<Event>,
}

impl Shell {
    fn start(home: &std::path::Path, open: OpenRequest) -> Self {
        let config = ServiceConfig {
            home: home.to_path_buf(),
            memory_bytes: 64 << 30,
            picker: None,
        };
        let mut app = shell::builder(mock_builder(), config, open)
            .build(shell::context())
            .expect("the app builds on the mock runtime");
        // One turn of the (mock) event loop runs the app's setup: the service and the window.
        // Deprecated for real loops, where it would spin; the mock's turn returns at once.
        #[allow(deprecated)]
        app.run_iteration(|_, _| {});
        let (sender, events) = mpsc::channel();
        app.listen_any(BRIDGE_EVENT, move |event| {
            let decoded = serde_json::from_str::<Event>(event.payload()).unwrap_or_else(|e| {
                panic!("an event the UI cannot read ({e}): {}", event.payload())
            });
            let _ = sender.send(decoded);
        });
        let window = app
            .get_webview_window(WINDOW)
            .expect("the setup opens the main window");
        Self {
            app,
            window,
            events,
        }
    }

    /// Invokes a Tauri command as the page's script does; the error is the command's answer.
    fn invoke(&self, command: &str, body: serde_json::Value) -> Result<(), serde_json::Value> {
        let request = InvokeRequest {
            cmd: command.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().expect("a URL"),
            body: tauri::ipc::InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: tauri::test::INVOKE_KEY.to_string(),
        };
        get_ipc_response(&self.window, request).map(|_| ())
    }

    /// Sends one of the UI's commands through `send`.
    fn send(&self, command: Command) -> Result<(), String> {
        self.invoke(BRIDGE_COMMAND, serde_json::json!({ "command": command }))
            .map_err(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
    }

    /// The events until one that `last` accepts, which ends the list.
    fn events_until(&self, what: &str, last: impl Fn(&Event) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {what} within 2 minutes; events: {seen:#?}"));
            if let Event::TaskEnded {
                outcome: Outcome::Failed { problem },
                ..
            } = &event
            {
                panic!("while waiting for {what}: {problem:?}");
            }
            let done = last(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    /// Sends `command` and returns its events up to the end of its task.
    fn run(&self, command: Command) -> Vec<Event> {
        let task = command.task().expect("a command that runs a task");
        self.send(command).expect("the shell takes the command");
        self.events_until(&format!("the end of {task:?}"), |event| {
            matches!(event, Event::TaskEnded { task: t, outcome: Outcome::Done } if *t == task)
        })
    }
}

#[test]
fn the_webview_commands_drive_the_engine_from_a_model_to_a_summary() {
    let home = tempfile::tempdir().expect("a temporary folder");
    let shell = Shell::start(home.path(), OpenRequest::default());

    shell.send(Command::Start).expect("the shell takes Start");
    shell.events_until("Ready", |e| matches!(e, Event::Ready { .. }));

    let model = fixtures().join("t5-gated").display().to_string();
    let loaded = shell.run(Command::LoadModel {
        source: model,
        device: Device::Cpu,
        precision: Precision::F32,
    });
    assert!(loaded.iter().any(|e| matches!(e, Event::ModelLoaded(_))));

    let imported = shell.run(Command::ImportData {
        request: DataRequest {
            sources: vec![fixtures().join("data/support.csv").display().to_string()],
            columns: Columns::default(),
            validation_fraction: 0.25,
            seed: 42,
        },
    });
    let Some(Event::DataImported(data)) = imported
        .iter()
        .find(|e| matches!(e, Event::DataImported(_)))
    else {
        panic!("no DataImported among {imported:#?}");
    };
    assert_eq!((data.train, data.validation), (9, 3), "{data:?}");

    let mut settings = Preset::Quick.options(data.train, DEFAULT_PROMPT.to_string());
    settings.rank = 4;
    settings.batch_size = 3;
    settings.max_steps = Some(2);
    settings.eval_every = Some(2);
    let trained = shell.run(Command::Train {
        name: "support".into(),
        settings,
    });
    let steps: Vec<usize> = trained
        .iter()
        .filter_map(|e| match e {
            Event::TrainStep(point) => Some(point.step),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [1, 2], "one event a step");
    assert!(trained.iter().any(|e| matches!(
        e,
        Event::Progress {
            task: Task::Train,
            ..
        }
    )));
    assert!(
        trained
            .iter()
            .any(|e| matches!(e, Event::TrainFinished { name, steps: 2, .. } if name == "support")),
        "{trained:#?}"
    );
    assert!(
        home.path()
            .join("adapters/support/adapter_model.safetensors")
            .is_file()
    );

    let evaluated = shell.run(Command::Evaluate {
        adapters: vec!["support".into()],
        limit: 3,
    });
    let Some(Event::Evaluated(evaluation)) =
        evaluated.iter().find(|e| matches!(e, Event::Evaluated(_)))
    else {
        panic!("no Evaluated among {evaluated:#?}");
    };
    assert_eq!(evaluation.count, 3);
    assert_eq!(evaluation.runs.len(), 2, "the baseline and the adapter");

    let summarized = shell.run(Command::Summarize {
        transcript: Transcript::Text {
            text: "#Person1#: My order has not arrived.\n#Person2#: I will send a new one today."
                .into(),
        },
        adapter: Some("support".into()),
        prompt_template: None,
    });
    let Some(Event::Summary(summary)) = summarized.iter().find(|e| matches!(e, Event::Summary(_)))
    else {
        panic!("no Summary among {summarized:#?}");
    };
    assert_eq!(summary.adapter.as_deref(), Some("support"));
    assert!(!summary.text.trim().is_empty());

    shell::stop(shell.app.handle());
    assert_eq!(
        shell.send(Command::Start),
        Err("Dialora is closing".to_string()),
        "a closed service refuses commands instead of hanging"
    );
}

#[test]
fn what_a_launch_opens_reaches_the_ui_once_it_is_ready() {
    let home = tempfile::tempdir().expect("a temporary folder");
    let transcript = fixtures().join("data/support.csv").display().to_string();
    let open = OpenRequest {
        model: None,
        files: vec![transcript.clone()],
    };
    let shell = Shell::start(home.path(), open);
    shell.send(Command::Start).expect("the shell takes Start");
    let events = shell.events_until("the open request", |e| matches!(e, Event::OpenRequested(_)));
    assert!(
        matches!(events.first(), Some(Event::Ready { .. })),
        "Ready comes first: {events:#?}"
    );
    assert_eq!(
        events.last(),
        Some(&Event::OpenRequested(OpenRequest {
            model: None,
            files: vec![transcript]
        }))
    );
}

#[test]
fn commands_outside_the_apps_permissions_are_refused() {
    let home = tempfile::tempdir().expect("a temporary folder");
    let shell = Shell::start(home.path(), OpenRequest::default());
    // Granted to the page: listen and unlisten; not emit, which would let it forge events.
    let refusal = shell
        .invoke(
            "plugin:event|emit",
            serde_json::json!({ "event": BRIDGE_EVENT, "payload": null }),
        )
        .expect_err("emit is not granted");
    assert!(
        refusal.to_string().contains("not allowed"),
        "refused for another reason: {refusal}"
    );
}
