//! The systems under test, one module each. Every module has the same entry point,
//! `run(paths, workload) -> Outcome`: it starts its server(s), drives the workload with
//! clients in this process, stops them, and says what it measured (or why it cannot do
//! the workload).

use std::path::PathBuf;

use crate::results::{Measured, Outcome};
use crate::workload::Workload;

pub mod automerge_repo;
pub mod social_sync;
pub mod socketio;

/// Where the servers are.
#[derive(Debug, Clone, clap::Args)]
pub struct Paths {
    /// The release `sync-server` binary.
    #[arg(long, env = "SYNC_SERVER_BIN")]
    pub relay_bin: PathBuf,
    /// `bench/baselines` (each baseline's `server.mjs` and its installed `node_modules`).
    #[arg(long, default_value = "bench/baselines")]
    pub baselines: PathBuf,
    /// Node.js.
    #[arg(long, default_value = "node")]
    pub node: PathBuf,
}

/// Which system runs a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SystemKind {
    /// Social Sync: the real relay; real engines act, light clients (the real client's
    /// connection and model, no profile) make the crowds.
    SocialSync,
    /// Social Sync with every client a real engine with its own SQLite profile.
    SocialSyncEngine,
    /// The seed's design: Node Socket.IO, per-user rooms, Redis adapter.
    Socketio,
    /// automerge-repo's sync server (Node).
    AutomergeRepo,
}

impl SystemKind {
    /// The system's name in the JSON lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::SocialSync => "social_sync",
            Self::SocialSyncEngine => "social_sync_engine",
            Self::Socketio => "socketio",
            Self::AutomergeRepo => "automerge_repo",
        }
    }

    /// Runs `workload` on this system with `nodes` server processes.
    pub async fn run(
        self,
        paths: &Paths,
        workload: &Workload,
        nodes: usize,
    ) -> anyhow::Result<Outcome> {
        let result = match self {
            Self::SocialSync => {
                social_sync::run(paths, workload, nodes, social_sync::Clients::Light).await?
            }
            Self::SocialSyncEngine => {
                social_sync::run(paths, workload, nodes, social_sync::Clients::Engines).await?
            }
            Self::Socketio => socketio::run(paths, workload, nodes).await?,
            Self::AutomergeRepo => automerge_repo::run(paths, workload, nodes).await?,
        };
        Ok(Outcome {
            system: self.name().to_owned(),
            nodes,
            result,
        })
    }
}

/// The result of a workload a system cannot do.
pub fn cannot_do(workload: &Workload, reason: &str) -> Measured {
    Measured::CannotDo {
        workload: workload.name().to_owned(),
        reason: reason.to_owned(),
    }
}
