//! The one interface between the UI and an engine: commands are sent, events are polled. The
//! desktop shell implements it in the same process (native window, tests) or across its bridge
//! (the UI in the webview).

use crate::protocol::{Command, Event};

pub trait Backend {
    /// Hands a command to the engine; never blocks on the work it starts.
    fn send(&mut self, command: Command);
    /// The events that arrived since the last call, oldest first; never blocks.
    fn poll(&mut self) -> Vec<Event>;
}
