//! `social-sync-cli`: parses arguments, sets up logging, runs one command.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = social_sync_cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SOCIAL_SYNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let mut stdout = std::io::stdout().lock();
    match social_sync_cli::run(cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            drop(stdout.flush());
            let mut stderr = std::io::stderr().lock();
            drop(writeln!(stderr, "error: {e}"));
            ExitCode::FAILURE
        }
    }
}
