//! One module per screen; each draws from [`State`] and pushes the commands the user asked for.

pub(crate) mod adapters;
mod data;
mod evaluate;
mod model;
mod review;
mod settings;
mod summarize;
mod train;
mod welcome;

use egui::Ui;

use crate::protocol::Command;
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// The first launch's screen, reachable from the top of the navigation; not numbered.
    Welcome,
    Model,
    Data,
    Review,
    Train,
    Evaluate,
    Summarize,
    Adapters,
    Settings,
}

impl Screen {
    pub const ALL: [Screen; 8] = [
        Screen::Model,
        Screen::Data,
        Screen::Review,
        Screen::Train,
        Screen::Evaluate,
        Screen::Summarize,
        Screen::Adapters,
        Screen::Settings,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Welcome => "Welcome",
            Screen::Model => "Model",
            Screen::Data => "Data",
            Screen::Review => "Review",
            Screen::Train => "Train",
            Screen::Evaluate => "Evaluate",
            Screen::Summarize => "Summarize",
            Screen::Adapters => "Adapters",
            Screen::Settings => "Settings",
        }
    }
}

pub fn show(screen: Screen, ui: &mut Ui, state: &mut State, out: &mut Vec<Command>) {
    match screen {
        Screen::Welcome => welcome::show(ui, state, out),
        Screen::Model => model::show(ui, state, out),
        Screen::Data => data::show(ui, state, out),
        Screen::Review => review::show(ui, state, out),
        Screen::Train => train::show(ui, state, out),
        Screen::Evaluate => evaluate::show(ui, state, out),
        Screen::Summarize => summarize::show(ui, state, out),
        Screen::Adapters => adapters::show(ui, state, out),
        Screen::Settings => settings::show(ui, state, out),
    }
}

/// The command of a screen's main button (Ctrl+Enter), when it can run now. Review takes
/// Ctrl+Enter itself (it accepts the draft), even while drafts are written.
pub fn main_action(screen: Screen, state: &State) -> Option<Command> {
    match screen {
        Screen::Model => model::main_command(state),
        Screen::Data => data::import_command(state),
        Screen::Train => train::train_command(state),
        Screen::Evaluate => evaluate::evaluate_command(state),
        Screen::Summarize => summarize::summarize_command(state),
        Screen::Welcome | Screen::Review | Screen::Adapters | Screen::Settings => None,
    }
}
