//! The command-line interface: argument parsing, the commands, and error reporting as one line.

mod adapter;
mod data;
mod eval;
mod output;
mod progress;
mod rouge;
mod summarize;
mod train;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dialora_engine::task::Cancel;
use dialora_ui::protocol::OpenRequest;

#[derive(Parser)]
#[command(
    name = "dialora",
    version,
    about = "Fine-tune Flan-T5 with LoRA on your dialogues and summarize transcripts offline.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Without a command, the app window opens.
    #[command(subcommand)]
    command: Option<Command>,
    /// Files to open in the app: adapters (.dlora) to import, a transcript to summarize, data.
    files: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Summarize dialogues with a model and, optionally, an adapter.
    Summarize(summarize::SummarizeArgs),
    /// Fine-tune the model on dialogues with summaries: a LoRA adapter, or every weight with --full.
    Train(train::TrainArgs),
    /// Evaluate the baseline and adapters on dialogues with references; writes a report folder.
    Eval(eval::EvalArgs),
    /// Score predictions against references with ROUGE-1/2/L/Lsum, exactly as rouge-score.
    Rouge(rouge::RougeArgs),
    /// Check data files and convert them to DialogSum-shaped JSONL.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Inspect and convert adapters.
    #[command(subcommand)]
    Adapter(adapter::AdapterCommand),
    /// Open the app window (also what `dialora` alone does).
    Gui {
        /// A model to load at once: a folder or a Hub id.
        #[arg(long)]
        model: Option<String>,
        /// The native window instead of the webview one (where no WebKitGTK or WebView2 runs).
        #[arg(long)]
        native: bool,
        /// Files to open: adapters (.dlora) to import, a transcript to summarize, data.
        files: Vec<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    // A bug must still end as one readable line and exit status 1, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // Never panics itself: stderr may be closed too.
        let _ = writeln!(
            std::io::stderr(),
            "error: internal error{place}: {} (please report this)",
            message.lines().next().unwrap_or("")
        );
    }));
    // The windows take Ctrl-C themselves: it closes them, safely.
    let command = match cli.command {
        None => return gui(None, cli.files, false),
        Some(Command::Gui {
            model,
            native,
            files,
        }) => return gui(model, files, native),
        Some(command) => command,
    };
    let cancel = Cancel::new();
    let on_interrupt = cancel.clone();
    // A second Ctrl-C while stopping is ignored: the work stops at its next safe point.
    let _ = ctrlc::set_handler(move || on_interrupt.cancel());
    let result = std::panic::catch_unwind(|| match command {
        Command::Summarize(args) => summarize::run(args, &cancel),
        Command::Train(args) => train::run(args, &cancel),
        Command::Eval(args) => eval::run(args, &cancel),
        Command::Rouge(args) => rouge::run(args),
        Command::Data(command) => data::run(command, &cancel),
        Command::Adapter(command) => adapter::run(command, &cancel),
        Command::Gui { .. } => Ok(()),
    });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        // The hook has printed the one line.
        Err(_) => ExitCode::from(1),
        Ok(Err(error)) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            ExitCode::from(1)
        }
    }
}

/// Opens the app window; the engine's errors show in the window, so only a window that cannot
/// open ends here.
fn gui(model: Option<String>, files: Vec<PathBuf>, native: bool) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_default();
    let files = match files_to_open(&files, &cwd) {
        Ok(files) => files,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let open = OpenRequest { model, files };
    let opened = if native {
        dialora::native::run(open)
    } else {
        dialora::shell::run(open, relaunch)
    };
    match opened {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// The files as absolute paths, `cwd` resolving relative ones: the app opens them on its own
/// threads, whatever its working folder.
fn files_to_open(files: &[PathBuf], cwd: &Path) -> Result<Vec<String>, String> {
    files
        .iter()
        .map(|file| {
            let path = cwd.join(file);
            if path.exists() {
                Ok(path.display().to_string())
            } else {
                // A mistyped command must not open the window with a "file" of that name.
                Err(format!(
                    "'{}' is neither a dialora command nor a file (see dialora --help)",
                    file.display()
                ))
            }
        })
        .collect()
}

/// What a second `dialora` (a file opened from the system while the app runs) asks the running
/// app to open; its own process then exits.
fn relaunch(argv: Vec<String>, cwd: &str) -> Option<OpenRequest> {
    let cli = Cli::try_parse_from(argv).ok()?;
    let (model, files) = match cli.command {
        None => (None, cli.files),
        Some(Command::Gui { model, files, .. }) => (model, files),
        Some(_) => return None,
    };
    let files = files_to_open(&files, Path::new(cwd)).ok()?;
    Some(OpenRequest { model, files })
}
