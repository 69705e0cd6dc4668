//! The app in the desktop shell's webview: eframe's web runner draws it on the page's canvas, and
//! Tauri's `invoke` and `listen` (the `window.__TAURI__` global) carry its messages to the engine
//! in the shell's process.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};

use crate::DialoraApp;
use crate::backend::Backend;
use crate::protocol::{BRIDGE_COMMAND, BRIDGE_EVENT, Command, Event};

#[wasm_bindgen]
extern "C" {
    // `catch`: outside the shell there is no `__TAURI__`, which must not abort the page.
    #[wasm_bindgen(catch, js_namespace = ["__TAURI__", "core"], js_name = invoke)]
    fn tauri_invoke(command: &str, args: JsValue) -> Result<js_sys::Promise, JsValue>;

    #[wasm_bindgen(catch, js_namespace = ["__TAURI__", "event"], js_name = listen)]
    fn tauri_listen(
        event: &str,
        handler: &Closure<dyn FnMut(JsValue)>,
    ) -> Result<js_sys::Promise, JsValue>;
}

/// Starts the app on `canvas`; the page's script calls it once the module is loaded.
#[wasm_bindgen]
pub fn start(canvas: web_sys::HtmlCanvasElement) {
    spawn_local(async move {
        let started = eframe::WebRunner::new()
            .start(
                canvas,
                eframe::WebOptions::default(),
                Box::new(|creation| {
                    let backend = TauriBackend::connect(creation.egui_ctx.clone());
                    Ok(Box::new(DialoraApp::new(Box::new(backend))))
                }),
            )
            .await;
        if let Err(error) = started {
            show_failure(&format!("Dialora could not start its window: {error:?}"));
        }
    });
}

/// Replaces the page with a message: without its canvas the app has no other way to say it.
fn show_failure(message: &str) {
    web_sys::console::error_1(&message.into());
    if let Some(body) = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| document.body())
    {
        body.set_text_content(Some(message));
    }
}

/// The engine behind Tauri's bridge.
struct TauriBackend {
    inbox: Rc<RefCell<Vec<Event>>>,
    /// Commands sent before the event listener is in place; the engine's answers to them would be
    /// lost, so they wait. `None` once listening.
    waiting: Rc<RefCell<Option<Vec<Command>>>>,
}

impl TauriBackend {
    fn connect(context: egui::Context) -> Self {
        let inbox = Rc::new(RefCell::new(Vec::new()));
        let waiting = Rc::new(RefCell::new(Some(Vec::new())));
        let handler = {
            let inbox = inbox.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |message: JsValue| {
                match decode_event(&message) {
                    Ok(event) => inbox.borrow_mut().push(event),
                    Err(error) => inbox.borrow_mut().push(Event::Notice {
                        message: format!("The app received a message it cannot read: {error}"),
                    }),
                }
                context.request_repaint();
            })
        };
        {
            let (inbox, waiting) = (inbox.clone(), waiting.clone());
            spawn_local(async move {
                let listening = match tauri_listen(BRIDGE_EVENT, &handler) {
                    Ok(promise) => JsFuture::from(promise).await,
                    Err(error) => Err(error),
                };
                // The listener lives as long as the page.
                handler.forget();
                if let Err(error) = listening {
                    inbox.borrow_mut().push(Event::Notice {
                        message: format!("The app cannot hear from the engine: {error:?}"),
                    });
                }
                for command in waiting.borrow_mut().take().unwrap_or_default() {
                    invoke(command, inbox.clone());
                }
            });
        }
        Self { inbox, waiting }
    }
}

impl Backend for TauriBackend {
    fn send(&mut self, command: Command) {
        if let Some(waiting) = self.waiting.borrow_mut().as_mut() {
            waiting.push(command);
            return;
        }
        invoke(command, self.inbox.clone());
    }

    fn poll(&mut self) -> Vec<Event> {
        std::mem::take(&mut *self.inbox.borrow_mut())
    }
}

/// Hands `command` to the shell; a refusal shows as a notice.
fn invoke(command: Command, inbox: Rc<RefCell<Vec<Event>>>) {
    let arguments = serde_json::to_string(&serde_json::json!({ "command": command }))
        .map_err(|error| JsValue::from_str(&error.to_string()))
        .and_then(|json| js_sys::JSON::parse(&json));
    spawn_local(async move {
        let sent = match arguments.and_then(|arguments| tauri_invoke(BRIDGE_COMMAND, arguments)) {
            Ok(promise) => JsFuture::from(promise).await.map(drop),
            Err(error) => Err(error),
        };
        if let Err(error) = sent {
            inbox.borrow_mut().push(Event::Notice {
                message: format!("The engine did not take the request: {error:?}"),
            });
        }
    });
}

/// The [`Event`] in a Tauri event's `payload`.
fn decode_event(message: &JsValue) -> Result<Event, String> {
    let payload = js_sys::Reflect::get(message, &"payload".into()).map_err(|e| format!("{e:?}"))?;
    let json = js_sys::JSON::stringify(&payload)
        .map_err(|e| format!("{e:?}"))?
        .as_string()
        .unwrap_or_default();
    serde_json::from_str(&json).map_err(|e| e.to_string())
}
