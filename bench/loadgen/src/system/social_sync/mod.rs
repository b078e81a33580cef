//! Social Sync: the real relay (`sync-server`, release) and real client code.
//!
//! Two kinds of clients, chosen by the system's name:
//! - `social_sync`: the people who act (the author who posts, the device that catches up)
//!   are real engines with a profile on disk ([`engine`]); the crowds (followers, viewers,
//!   likers, idle and churning connections) are [`light`] clients, the real client's
//!   connection and document model without a profile, so what is measured is the relay.
//! - `social_sync_engine`: the crowds are real engines too, each with its own SQLite
//!   profile, all in this process on the same 2 cores: what one user's app does on
//!   receipt (a signature check, a merge, a commit) is paid by every simulated follower.
//!
//! # Layout
//! - [`relay`]: the relay process, or a cluster of them (`--nodes N`: PostgreSQL and
//!   Redis, clients spread over the nodes). [`light`], [`engine`]: the two kinds of clients.
//! - [`fan_out`], [`like_storm`], [`catch_up`], [`connections`] (idle and churn): the
//!   workloads.

pub mod catch_up;
pub mod connections;
pub mod engine;
pub mod fan_out;
pub mod light;
pub mod like_storm;
pub mod relay;

use crate::results::Measured;
use crate::system::{Paths, cannot_do};
use crate::workload::Workload;

/// Which clients make up the crowds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clients {
    /// The real client's connection and model, no profile ([`light`]).
    Light,
    /// Real engines with their own profiles ([`engine`]).
    Engines,
}

/// Runs `workload` (see [`crate::system`]).
pub async fn run(
    paths: &Paths,
    workload: &Workload,
    nodes: usize,
    clients: Clients,
) -> anyhow::Result<Measured> {
    let cluster_workload = matches!(
        workload,
        Workload::FanOut { .. } | Workload::LikeStorm { .. }
    );
    if nodes > 1 && (clients == Clients::Engines || !cluster_workload) {
        return Ok(cannot_do(
            workload,
            "measured on one node: the cluster runs fan-out and like storm with light clients",
        ));
    }
    match *workload {
        Workload::FanOut {
            followers,
            posts,
            burst,
        } => fan_out::run(paths, clients, followers, posts, burst, nodes).await,
        Workload::LikeStorm { likers, viewers } => {
            like_storm::run(paths, clients, likers, viewers, nodes).await
        }
        Workload::CatchUp { authors, changes } => catch_up::run(paths, authors, changes).await,
        Workload::Idle { connections } if clients == Clients::Light => {
            connections::idle(paths, connections).await
        }
        Workload::Churn { cycles, parallel } if clients == Clients::Light => {
            connections::churn(paths, cycles, parallel).await
        }
        _ => Ok(cannot_do(
            workload,
            "the same connections as social_sync: the relay's side does not depend on the client",
        )),
    }
}
