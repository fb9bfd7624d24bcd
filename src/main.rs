//! The `ebm` command line: a thin layer over `ebm::driver`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ebm",
    version,
    about = "A language and compiler for energy-based models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a program; exit 0 when valid, print diagnostics and exit 1 otherwise.
    Check { file: PathBuf },
    /// Run a script's statements (`print(...)`, ...).
    Run { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { file } => {
            ebm::driver::SourceFile::read(&file).and_then(|f| ebm::driver::check(&f))
        }
        Command::Run { file } => ebm::driver::SourceFile::read(&file)
            .and_then(|f| ebm::driver::run(&f, &mut std::io::stdout())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprint!("{message}");
            if !message.ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}
