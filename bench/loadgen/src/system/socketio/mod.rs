//! Baseline 1, the seed's design: `bench/baselines/socketio/server.mjs` (Node Socket.IO,
//! per-user rooms, `@socket.io/redis-adapter`, shared state in Redis), driven by clients in
//! this process that speak the Engine.IO v4 / Socket.IO v5 wire format ([`wire`]) over
//! `tokio-tungstenite` and parse every event into typed structs, as a real client would.
//!
//! A run starts a private Redis and `nodes` Node processes over it; clients are spread over
//! the nodes round robin (client `i` on node `i % nodes`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{self, Redis, Server};
use crate::results::Measured;
use crate::system::{Paths, cannot_do};
use crate::workload::Workload;

mod client;
mod connections;
mod fan_out;
mod like_storm;
mod wire;

/// Runs `workload` on `nodes` Socket.IO processes over one Redis (see [`crate::system`]).
pub async fn run(paths: &Paths, workload: &Workload, nodes: usize) -> anyhow::Result<Measured> {
    let cluster = || Cluster::start(paths, nodes);
    match *workload {
        Workload::FanOut {
            followers,
            posts,
            burst,
        } => fan_out::run(&cluster()?, followers, posts, burst).await,
        Workload::LikeStorm { likers, viewers } => {
            like_storm::run(&cluster()?, likers, viewers).await
        }
        Workload::Idle { connections } => connections::idle(&cluster()?, connections).await,
        Workload::Churn { cycles, parallel } => {
            connections::churn(&cluster()?, cycles, parallel).await
        }
        Workload::CatchUp { .. } => Ok(cannot_do(
            workload,
            "no offline catch-up: Redis pub/sub keeps nothing for a client that was away",
        )),
    }
}

/// The Node processes (stopped first on drop) and their Redis.
struct Cluster {
    servers: Vec<Server>,
    _redis: Redis,
}

/// One node's `GET /stats`.
#[derive(Debug, Default, Deserialize)]
struct Stats {
    /// Sockets connected.
    sockets: u64,
    /// Users in the presence map.
    presence: u64,
}

impl Cluster {
    fn start(paths: &Paths, nodes: usize) -> anyhow::Result<Self> {
        ensure!(nodes > 0, "at least one node");
        let dir = paths.baselines.join("socketio");
        let dir = dir
            .canonicalize()
            .with_context(|| format!("the Socket.IO baseline at {}", dir.display()))?;
        ensure!(
            dir.join("node_modules").is_dir(),
            "{} has no node_modules: run `npm ci` there first",
            dir.display()
        );
        let redis = Redis::start()?;
        let servers = (0..nodes)
            .map(|_| start_node(&paths.node, &dir, &redis.url()))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            servers,
            _redis: redis,
        })
    }

    /// The node client `i` connects to.
    fn addr(&self, i: usize) -> SocketAddr {
        self.servers[i % self.servers.len()].addr
    }

    /// The Node processes' resident memory summed, once it stops moving (at most `limit`).
    async fn settled_rss_kib(&self, limit: Duration) -> anyhow::Result<u64> {
        let pids: Vec<u32> = self.servers.iter().map(Server::pid).collect();
        tokio::task::spawn_blocking(move || {
            process::settle(
                || pids.iter().map(|&pid| process::rss_kib(pid)).sum(),
                limit,
            )
        })
        .await
        .context("memory reader")
    }

    /// Every node's `/stats`, summed.
    async fn stats(&self) -> anyhow::Result<Stats> {
        let mut sum = Stats::default();
        for server in &self.servers {
            let one = stats(server.addr)
                .await
                .with_context(|| format!("GET /stats from {}", server.addr))?;
            sum.sockets += one.sockets;
            sum.presence += one.presence;
        }
        Ok(sum)
    }
}

fn start_node(node: &Path, dir: &Path, redis_url: &str) -> anyhow::Result<Server> {
    let mut command = Command::new(node);
    command
        .arg(dir.join("server.mjs"))
        .args(["--port", "0", "--redis", redis_url])
        .current_dir(dir)
        .env("NODE_ENV", "production");
    Server::start("socket.io", command)
}

/// `GET /stats` over a plain HTTP/1.1 connection.
async fn stats(addr: SocketAddr) -> anyhow::Result<Stats> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut response))
        .await
        .context("no answer within 10 s")??;
    let response = String::from_utf8(response).context("not UTF-8")?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of headers")?;
    ensure!(head.starts_with("HTTP/1.1 200"), "answered {head:?}");
    serde_json::from_str(body).with_context(|| format!("body {body:?}"))
}

/// Connects clients `first..first + count` as `{prefix}{i}` (client `i` on node `i % nodes`),
/// 64 handshakes at a time, their events to `sink`.
async fn connect_all(
    cluster: &Cluster,
    prefix: &str,
    first: usize,
    count: usize,
    sink: Option<&client::Sink>,
) -> anyhow::Result<Vec<client::Client>> {
    use futures_util::{StreamExt, TryStreamExt};
    futures_util::stream::iter(first..first + count)
        .map(|i| async move {
            let index = u32::try_from(i).context("too many clients")?;
            client::Client::connect(
                cluster.addr(i),
                &format!("{prefix}{i}"),
                index,
                sink.cloned(),
            )
            .await
            .with_context(|| format!("client {prefix}{i}"))
        })
        .buffered(64)
        .try_collect()
        .await
}

/// Sends `name` with `payload(client)` from every client, 64 at a time, each waiting for
/// its acknowledgement.
async fn request_all<T: serde::Serialize>(
    clients: &[client::Client],
    name: &str,
    payload: impl Fn(usize) -> T,
) -> anyhow::Result<()> {
    use futures_util::{StreamExt, TryStreamExt};
    futures_util::stream::iter(clients.iter().enumerate())
        .map(|(i, client)| {
            let payload = payload(i);
            async move { client.request(name, &payload).await }
        })
        .buffer_unordered(64)
        .try_collect::<()>()
        .await
}

/// Closes every client (goodbye, then wait for the server's close), 256 at a time, so that
/// no connection is cut when the servers stop.
async fn close_all(clients: Vec<client::Client>) {
    use futures_util::StreamExt;
    futures_util::stream::iter(clients)
        .for_each_concurrent(256, client::Client::close)
        .await;
}
