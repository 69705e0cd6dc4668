//! The app in a Tauri window. Its webview runs the `ui` crate compiled to WebAssembly (built by
//! this crate's build script); the Tauri command `send` carries the UI's commands to the engine
//! service in this process and the event `dialora:event` carries the engine's events back. Files
//! dropped on the window, or opened from the system while the app runs (a second launch hands its
//! arguments over), reach the UI as [`Event::OpenRequested`].

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dialora_ui::Backend;
use dialora_ui::protocol::{BRIDGE_EVENT, Command, Event, OpenRequest};
use tauri::utils::assets::{AssetKey, AssetsIter, CspHash};
use tauri::{
    App, AppHandle, Assets, DragDropEvent, Emitter, Manager, RunEvent, Runtime, WebviewUrl,
    WebviewWindowBuilder, WindowEvent,
};

use crate::service::{InProcess, ServiceConfig, settings};

/// The window's label, which the app's permissions (capabilities/default.json) name.
pub const WINDOW: &str = "main";

/// Reads a later launch's arguments (and its working folder): what it asks to open, or `None`
/// when they are not a request to open the app.
pub type Relaunch = fn(Vec<String>, &str) -> Option<OpenRequest>;

/// Opens the window and runs until it is closed (or Ctrl-C), after the running task has stopped
/// safely (training keeps a checkpoint). A second `dialora` started meanwhile hands its files to
/// this one, read by `relaunch`, and exits.
pub fn run(open: OpenRequest, relaunch: Relaunch) -> Result<(), String> {
    // GTK would abort the process without a display; this says why in one line.
    #[cfg(target_os = "linux")]
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(
            "there is no display to open the window on (neither DISPLAY nor \
                    WAYLAND_DISPLAY is set); the subcommands work without one (dialora --help)"
                .to_string(),
        );
    }
    let mut config = ServiceConfig::for_this_user();
    config.picker = Some(Arc::new(crate::native::pick));
    let single_instance = tauri_plugin_single_instance::init(move |app, argv, cwd| {
        if let Some(request) = relaunch(argv, &cwd).filter(|r| !r.is_empty()) {
            to_ui(app, Event::OpenRequested(request));
        }
        if let Some(window) = app.get_webview_window(WINDOW) {
            let _ = window.unminimize();
            let _ = window.set_focus();
        }
    });
    let app = builder(
        tauri::Builder::default().plugin(single_instance),
        config,
        open,
    )
    .build(context())
    .map_err(|e| format!("cannot open the window: {e}"))?;
    // Ctrl-C in the terminal that started the app closes it as the window's close button does.
    let handle = app.handle().clone();
    let _ = ctrlc::set_handler(move || handle.exit(0));
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            stop(app);
        }
    });
    Ok(())
}

/// The app's Tauri builder on any runtime (the tests use Tauri's mock runtime): the engine
/// service, the `send` command, the window, and drops on it.
pub fn builder<R: Runtime>(
    builder: tauri::Builder<R>,
    config: ServiceConfig,
    open: OpenRequest,
) -> tauri::Builder<R> {
    builder
        .invoke_handler(tauri::generate_handler![send])
        .setup(move |app| {
            let size = settings::window_size(&config.home);
            let service = start_service(app.handle().clone(), config, open);
            app.manage(Bridge {
                service: Mutex::new(Some(service)),
            });
            open_window(app, size)?;
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::DragDrop(DragDropEvent::Drop { paths, .. }) = event {
                let files = paths.iter().map(|p| p.display().to_string()).collect();
                let request = OpenRequest { model: None, files };
                to_ui(window.app_handle(), Event::OpenRequested(request));
            }
        })
}

/// The configuration, permissions and icon compiled from tauri.conf.json, serving the page built
/// by the build script.
pub fn context<R: Runtime>() -> tauri::Context<R> {
    let mut context = tauri::generate_context!();
    context.set_assets(Box::new(Page));
    context
}

/// Cancels the running task and waits for it to stop; the window is closing.
pub fn stop<R: Runtime>(app: &AppHandle<R>) {
    if let Some(bridge) = app.try_state::<Bridge>() {
        // Dropping the service cancels, then joins its threads.
        drop(bridge.service().take());
    }
}

/// The engine service, reached from the `send` command.
struct Bridge {
    /// `None` once the app is closing.
    service: Mutex<Option<InProcess>>,
}

impl Bridge {
    fn service(&self) -> MutexGuard<'_, Option<InProcess>> {
        self.service.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Hands one of the UI's commands to the engine; its results come as events.
#[tauri::command]
fn send(command: Command, bridge: tauri::State<'_, Bridge>) -> Result<(), String> {
    match bridge.service().as_mut() {
        Some(service) => {
            service.send(command);
            Ok(())
        }
        None => Err("Dialora is closing".into()),
    }
}

/// The service, its events emitted to the window as they come. What the launch asked to open
/// follows the first `Ready`: the UI listens only once it runs, and it says so with
/// [`Command::Start`], which `Ready` answers.
fn start_service<R: Runtime>(
    app: AppHandle<R>,
    config: ServiceConfig,
    open: OpenRequest,
) -> InProcess {
    let pending = Mutex::new((!open.is_empty()).then_some(open));
    InProcess::start_with_sink(config, move |event| {
        let ready = matches!(event, Event::Ready { .. });
        to_ui(&app, event);
        if ready {
            let opening = pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(opening) = opening {
                to_ui(&app, Event::OpenRequested(opening));
            }
        }
    })
}

/// Hands an event to the UI in the window; a closed window is not an error for the engine.
fn to_ui<R: Runtime>(app: &AppHandle<R>, event: Event) {
    let _ = app.emit_to(WINDOW, BRIDGE_EVENT, event);
}

fn open_window<R: Runtime>(app: &App<R>, [width, height]: [f32; 2]) -> tauri::Result<()> {
    let [min_width, min_height] = settings::MIN_WINDOW_SIZE;
    WebviewWindowBuilder::new(app, WINDOW, WebviewUrl::App("index.html".into()))
        .title("Dialora")
        .inner_size(f64::from(width), f64::from(height))
        .min_inner_size(f64::from(min_width), f64::from(min_height))
        .build()?;
    Ok(())
}

/// The page the build script made: the UI module, its JavaScript binding, the page and its
/// style.
struct Page;

const PAGE_FILES: &[(&str, &[u8])] = &[
    (
        "/index.html",
        include_bytes!(concat!(env!("OUT_DIR"), "/web/index.html")),
    ),
    (
        "/style.css",
        include_bytes!(concat!(env!("OUT_DIR"), "/web/style.css")),
    ),
    (
        "/main.js",
        include_bytes!(concat!(env!("OUT_DIR"), "/web/main.js")),
    ),
    (
        "/dialora_ui.js",
        include_bytes!(concat!(env!("OUT_DIR"), "/web/dialora_ui.js")),
    ),
    (
        "/dialora_ui_bg.wasm",
        include_bytes!(concat!(env!("OUT_DIR"), "/web/dialora_ui_bg.wasm")),
    ),
];

impl<R: Runtime> Assets<R> for Page {
    fn get(&self, key: &AssetKey) -> Option<Cow<'_, [u8]>> {
        PAGE_FILES
            .iter()
            .find(|(path, _)| *path == key.as_ref())
            .map(|(_, bytes)| Cow::Borrowed(*bytes))
    }

    fn iter(&self) -> Box<AssetsIter<'_>> {
        Box::new(
            PAGE_FILES
                .iter()
                .map(|(path, bytes)| (Cow::Borrowed(*path), Cow::Borrowed(*bytes))),
        )
    }

    fn csp_hashes(&self, _html_path: &AssetKey) -> Box<dyn Iterator<Item = CspHash<'_>> + '_> {
        // The page has no inline script or style to allow.
        Box::new(std::iter::empty())
    }
}
