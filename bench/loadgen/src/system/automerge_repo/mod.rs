//! Baseline 2: automerge-repo's sync server (`bench/baselines/automerge-repo/server.mjs`:
//! the standard `Repo` with the WebSocket server adapter and NodeFS storage, share policy
//! `async () => false` as in automerge-repo's own sync-server example), driven by Rust
//! clients in this process that speak its wire protocol ([`wire`]) and hold real Automerge
//! documents with a sync state each ([`doc`]), as an automerge-repo client does.
//!
//! The documents are the same shapes for every workload: an author's document is a map
//! with a `posts` list (each post a map: `id`, `text`, `at`); a post's likes are a map
//! `likes` from a liker's id to `true`. There are no accounts, signatures or write rights
//! in automerge-repo: anyone who knows a document's id can read and change it.
//!
//! Reading its figures: the server answers the peer that sent a change at once, but sends
//! a document's changes to its other peers from a `change` handler throttled to one run per
//! 100 ms (`DocSynchronizer.syncDebounceRate`), so a relayed change waits up to 100 ms on
//! the server by design. The clients say they are ephemeral (no storage id), so the server
//! keeps no sync state of theirs on disk. A duplicate is a change a client receives that
//! its document already holds (a document cannot hold a post twice).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::process::Server;
use crate::results::Measured;
use crate::system::{Paths, cannot_do};
use crate::workload::Workload;

mod catch_up;
mod connections;
mod doc;
mod fan_out;
mod like_storm;
mod wire;

/// Runs `workload` against automerge-repo's sync server (see [`crate::system`]).
pub async fn run(paths: &Paths, workload: &Workload, nodes: usize) -> anyhow::Result<Measured> {
    if nodes > 1 {
        return Ok(cannot_do(
            workload,
            "automerge-repo's sync server has no cluster mode",
        ));
    }
    let data = tempfile::tempdir().context("a data directory for the automerge-repo server")?;
    let server = tokio::task::block_in_place(|| start_server(paths, data.path()))?;
    let addr = server.addr;
    match *workload {
        Workload::FanOut {
            followers,
            posts,
            burst,
        } => fan_out::run(addr, followers, posts, burst).await,
        Workload::LikeStorm { likers, viewers } => like_storm::run(addr, likers, viewers).await,
        Workload::Idle { connections } => connections::idle(&server, connections).await,
        Workload::CatchUp { authors, changes } => catch_up::run(addr, authors, changes).await,
        Workload::Churn { cycles, parallel } => connections::churn(&server, cycles, parallel).await,
    }
}

/// Starts `node server.mjs --port 0 --data DIR` and waits for its address.
fn start_server(paths: &Paths, data: &Path) -> anyhow::Result<Server> {
    let script = paths.baselines.join("automerge-repo/server.mjs");
    let mut command = Command::new(&paths.node);
    command
        .arg(&script)
        .args(["--port", "0", "--host", "127.0.0.1", "--data"])
        .arg(data);
    Server::start("automerge-repo", command).with_context(|| {
        format!(
            "starting {} (did `npm ci` run in {}?)",
            script.display(),
            paths.baselines.join("automerge-repo").display()
        )
    })
}

/// The server's resident memory once it stops moving (at most `limit`): the runtime's
/// other threads keep the clients answering the server's keep-alive pings meanwhile.
fn settled_rss_kib(server: &Server, limit: Duration) -> u64 {
    tokio::task::block_in_place(|| server.settled_rss_kib(limit))
}
