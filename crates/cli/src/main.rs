//! `social-sync-cli`: parses arguments, sets up logging, runs one command.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match social_sync_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return command_line_error(&e),
    };
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

/// Help and version go to stdout as clap prints them; a malformed command line is one line
/// on stderr (clap's message with its lines joined) and exit code 2.
fn command_line_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let mut stderr = std::io::stderr().lock();
    drop(writeln!(stderr, "{} (see --help)", message.join(" ")));
    ExitCode::from(2)
}
