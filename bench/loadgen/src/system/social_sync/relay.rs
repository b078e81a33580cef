//! The real relay, the release `sync-server`, started for one workload on a loopback port
//! with budgets opened wide enough for the load (and nothing else changed); or a cluster
//! of them ([`Relays`]) over a private PostgreSQL and Redis.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use tempfile::TempDir;

use crate::process::{Postgres, Redis, Server, http_get};
use crate::system::Paths;

/// A relay process and its data folder (a real SQLite file), removed on drop.
pub struct Relay {
    server: Server,
    _data: TempDir,
}

impl Relay {
    /// Starts the relay at `paths.relay_bin` with its own SQLite store.
    pub fn start(paths: &Paths) -> anyhow::Result<Self> {
        Self::start_with(paths, &[])
    }

    /// Starts the relay at `paths.relay_bin` with `extra` options.
    pub fn start_with(paths: &Paths, extra: &[String]) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut command = Command::new(&paths.relay_bin);
        command
            .args(["--listen", "127.0.0.1:0", "--log"])
            // LOADGEN_RELAY_LOG=sync_server=trace shows every frame the relay queues.
            .arg(std::env::var("LOADGEN_RELAY_LOG").unwrap_or_else(|_| "error".into()))
            .args(["--max-connections-per-ip", "20000"])
            .args(["--messages-per-second", "1000000", "--send-queue", "4096"])
            .arg("--data")
            .arg(data.path().join("relay"))
            .args(extra);
        let server = Server::start("sync-server", command)?;
        Ok(Self {
            server,
            _data: data,
        })
    }

    /// `ws://ADDR`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.server.addr)
    }

    /// The relay's address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The relay process.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The value of `social_sync_relay_<name>` on `/metrics`.
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = http_get(self.addr(), "/metrics", Duration::from_secs(5))?;
        let wanted = format!("social_sync_relay_{name}");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                let key = key.split('{').next()?;
                (key == wanted || key == format!("{wanted}_total"))
                    .then(|| value.parse().ok())
                    .flatten()
            })
            .with_context(|| format!("no {wanted} on the relay's /metrics"))
    }
}

/// The relays of one run: one node on its own SQLite store, or `nodes` over one private
/// PostgreSQL (`--store`) and Redis (`--bus`). Client `i` uses node `i % nodes`.
pub struct Relays {
    nodes: Vec<Relay>,
    // Dropped after the nodes (fields drop in order).
    _bus: Option<Redis>,
    _store: Option<Postgres>,
}

impl Relays {
    /// Starts `nodes` relays (one: the embedded store).
    pub fn start(paths: &Paths, nodes: usize) -> anyhow::Result<Self> {
        if nodes <= 1 {
            return Ok(Self {
                nodes: vec![Relay::start(paths)?],
                _bus: None,
                _store: None,
            });
        }
        let store = Postgres::start()?;
        let bus = Redis::start()?;
        let extra = [
            "--store".to_owned(),
            store.url(),
            "--bus".to_owned(),
            bus.url(),
        ];
        let nodes = (0..nodes)
            .map(|_| Relay::start_with(paths, &extra))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            nodes,
            _bus: Some(bus),
            _store: Some(store),
        })
    }

    /// The URL client `i` uses.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i % self.nodes.len()].url()
    }

    /// Every node's URL, in order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Relay::url).collect()
    }
}
