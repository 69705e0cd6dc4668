//! `dialora`: with a subcommand, the headless command-line interface; the app window comes with the
//! desktop shell. Exit status: 0 success, 1 a clear error on one line, 2 a usage error.

mod cli;

fn main() -> std::process::ExitCode {
    dialora_engine::runtime::keep_freed_memory();
    cli::main()
}
