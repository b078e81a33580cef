//! `loadgen run SYSTEM WORKLOAD …` prints one JSON line of figures; `loadgen report` turns a
//! run's lines into `docs/benchmarks.md`. `scripts/bench` runs it all.

use clap::{Parser, Subcommand};
use social_sync_loadgen::report::ReportPaths;
use social_sync_loadgen::{Paths, SystemKind, Workload};

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one workload on one system and prints its figures as one JSON line.
    Run {
        /// The system under test.
        #[arg(long, value_enum)]
        system: SystemKind,
        /// Server processes (relay nodes) to spread the clients over.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        #[command(flatten)]
        paths: Paths,
        #[command(subcommand)]
        workload: Workload,
    },
    /// Writes `docs/benchmarks.md` and its plot from a run's JSON lines.
    Report {
        #[command(flatten)]
        paths: ReportPaths,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Run {
            system,
            nodes,
            paths,
            workload,
        } => {
            // A run that fails is a figure too: the report shows why it did not finish.
            // Stopped by a signal, the run's future is dropped, and with it the server
            // processes it started (each is killed on drop): nothing is left listening.
            let run = async {
                tokio::select! {
                    outcome = system.run(&paths, &workload, nodes) => outcome,
                    _ = stopped() => Err(anyhow::anyhow!("stopped by a signal")),
                }
            };
            let outcome = match run.await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(
                        "{} {} did not finish: {e:#}",
                        system.name(),
                        workload.name()
                    );
                    social_sync_loadgen::Outcome {
                        system: system.name().to_owned(),
                        nodes,
                        result: social_sync_loadgen::results::Measured::CannotDo {
                            workload: workload.name().to_owned(),
                            reason: format!("did not finish: {e:#}"),
                        },
                    }
                }
            };
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string(&outcome)?);
            }
        }
        Command::Report { paths } => social_sync_loadgen::report::write(&paths)?,
    }
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn stopped() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
