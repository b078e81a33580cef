//! The servers of a chaos run, behind the fault-injecting proxy: one relay (its own SQLite
//! store), or a cluster of nodes over one private PostgreSQL and one private Redis. The
//! run's server faults come from here: kill -9 of the relay (restarted at once), or, in a
//! cluster, kill -9 of a node, of Redis, or a crash of PostgreSQL, each brought back after a
//! spell while the rest keep serving. One server fault at a time.

use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;

use crate::common::Relay;
use crate::common::pg::Postgres;
use crate::common::redis::Redis;
use crate::proxy::Proxy;

/// Which servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One relay with its embedded store.
    One,
    /// This many nodes over PostgreSQL and Redis.
    Cluster(usize),
}

impl Topology {
    /// From `CHAOS_NODES` (absent or 1: one relay).
    pub(crate) fn from_env() -> Self {
        match std::env::var("CHAOS_NODES")
            .ok()
            .and_then(|n| n.parse().ok())
        {
            Some(n) if n > 1 => Self::Cluster(n),
            _ => Self::One,
        }
    }

    /// How `scripts/chaos` names it.
    pub(crate) fn nodes(self) -> usize {
        match self {
            Self::One => 1,
            Self::Cluster(n) => n,
        }
    }
}

/// A server that is down and when it comes back.
enum Down {
    Node(usize),
    Redis,
    Postgres,
}

/// The running servers and the proxy in front of them.
pub(crate) struct Relays {
    pub(crate) proxy: Proxy,
    nodes: Vec<Relay>,
    urls: Vec<String>,
    pg: Option<Postgres>,
    db: String,
    redis: Option<Redis>,
    down: Option<(Instant, Down)>,
    last_fault: Instant,
    /// Server faults so far: a cluster's kinds take turns (a short run sees each one).
    faults: usize,
    /// Whether servers are killed at all (a soak runs them the whole time).
    server_faults: bool,
}

/// One node's process figures: resident memory and open files.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Footprint {
    pub(crate) rss_kib: u64,
    pub(crate) open_files: usize,
}

/// Documents each server keeps in memory: few, so that the run also goes through the
/// cache's evictions, and a soak's memory reaches its plateau early (with the default
/// 10,000, memory grows with every new document for as long as the run makes them, which
/// is no leak and would hide one).
const CACHE: &str = "200";

/// The presence key prefix the nodes use in Redis.
const PRESENCE_KEYS: &str = "social-sync:p:*";

impl Relays {
    /// Starts them (each node told its proxy address as its public one: that is the
    /// address clients dial and sign).
    pub(crate) async fn start(topology: Topology) -> Self {
        let mut listeners = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..topology.nodes() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            urls.push(format!("ws://{}", listener.local_addr().unwrap()));
            listeners.push(listener);
        }
        let (pg, db, redis, nodes) = tokio::task::block_in_place(|| match topology {
            Topology::One => (
                None,
                String::new(),
                None,
                vec![Relay::start(&[
                    "--public-url",
                    &urls[0],
                    "--document-cache",
                    CACHE,
                ])],
            ),
            Topology::Cluster(_) => {
                let pg = Postgres::start();
                let redis = Redis::start();
                let db = pg.fresh_db();
                let bus = redis.url();
                let nodes = urls
                    .iter()
                    .map(|url| {
                        Relay::start(&[
                            "--store",
                            &db,
                            "--bus",
                            &bus,
                            "--presence-ttl",
                            "3",
                            "--public-url",
                            url,
                            "--document-cache",
                            CACHE,
                        ])
                    })
                    .collect();
                (Some(pg), db, Some(redis), nodes)
            }
        });
        let routes = listeners
            .into_iter()
            .zip(nodes.iter().map(|n| n.addr))
            .collect();
        Self {
            proxy: Proxy::start(routes),
            nodes,
            urls,
            pg,
            db,
            redis,
            down: None,
            last_fault: Instant::now(),
            faults: 0,
            server_faults: std::env::var("CHAOS_SERVER_FAULTS").map_or(true, |v| v != "0"),
        }
    }

    /// The relay list of person `p`: every node, starting at a different one for each
    /// person (so a cluster's nodes share the people).
    pub(crate) fn list_for(&self, p: usize) -> String {
        let n = self.urls.len();
        (0..n)
            .map(|i| self.urls[(p + i) % n].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Maybe a server fault now (at most one every 3 s, never while one is down); its kind.
    /// In a cluster the kinds take turns: a node, Redis, PostgreSQL.
    pub(crate) async fn fault(&mut self, rng: &mut StdRng) -> Option<&'static str> {
        if !self.server_faults
            || self.down.is_some()
            || self.last_fault.elapsed() < Duration::from_secs(3)
        {
            return None;
        }
        self.last_fault = Instant::now();
        let spell = Duration::from_millis(rng.random_range(300..2500));
        if self.pg.is_none() {
            self.nodes[0].kill9();
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..800))).await;
            tokio::task::block_in_place(|| self.nodes[0].start_again());
            return Some("relay kill -9 and restart");
        }
        self.faults += 1;
        let (down, kind) = match self.faults % 3 {
            0 => {
                let node = rng.random_range(0..self.nodes.len());
                self.nodes[node].kill9();
                (Down::Node(node), "node kill -9, back after a spell")
            }
            1 => {
                self.redis.as_mut().unwrap().kill();
                (Down::Redis, "Redis kill -9, back after a spell")
            }
            _ => {
                tokio::task::block_in_place(|| self.pg.as_ref().unwrap().crash());
                (Down::Postgres, "PostgreSQL crash, back after a spell")
            }
        };
        self.down = Some((Instant::now() + spell, down));
        Some(kind)
    }

    /// Brings back the server that is down once its spell is over (`now`: at once).
    pub(crate) fn tick(&mut self, now: bool) {
        let due = self
            .down
            .as_ref()
            .is_some_and(|(at, _)| now || *at <= Instant::now());
        if !due {
            return;
        }
        let Some((_, down)) = self.down.take() else {
            return;
        };
        tokio::task::block_in_place(|| match down {
            Down::Node(n) => self.nodes[n].start_again(),
            Down::Redis => self.redis.as_mut().unwrap().start_again(),
            Down::Postgres => self.pg.as_ref().unwrap().start_again(),
        });
        self.last_fault = Instant::now();
    }

    /// Whether the servers ran the whole time (no server faults: a soak).
    pub(crate) fn soak(&self) -> bool {
        !self.server_faults
    }

    /// Starts every node again on its data (kill -9, then at once).
    pub(crate) fn restart_all(&mut self) {
        tokio::task::block_in_place(|| {
            for node in &mut self.nodes {
                node.start_again();
            }
        });
    }

    /// Each node's resident memory and open files now.
    pub(crate) fn footprints(&self) -> Vec<Footprint> {
        self.nodes
            .iter()
            .map(|n| Footprint {
                rss_kib: n.memory().rss_kib,
                open_files: std::fs::read_dir(format!("/proc/{}/fd", n.pid()))
                    .map_or(0, Iterator::count),
            })
            .collect()
    }

    /// What the servers still hold once everyone left: connections, presence entries,
    /// subscriptions and sync states on each node, and presence keys in Redis.
    pub(crate) async fn held(&self) -> Vec<String> {
        let mut held = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for name in [
                "connections",
                "presence_entries",
                "subscriptions",
                "sync_states",
            ] {
                let value = node.metric(&format!("social_sync_relay_{name}")).await;
                if value > 0.0 {
                    held.push(format!("node {i}: {name} {value}"));
                }
            }
        }
        if let Some(redis) = &self.redis {
            let keys = tokio::task::block_in_place(|| redis.keys(PRESENCE_KEYS));
            if !keys.is_empty() {
                held.push(format!("Redis: presence keys {keys:?}"));
            }
        }
        held
    }

    /// What the cluster's database holds of `doc` (for a failing seed's report): the
    /// hashes of its changes not yet compacted, its snapshot's size and its news number.
    pub(crate) fn stored(&self, doc: &str) -> String {
        let Some(pg) = &self.pg else {
            return "(one relay: its SQLite store is not read here)".into();
        };
        tokio::task::block_in_place(|| {
            pg.sql(
                &self.db,
                &format!(
                    "SELECT 'changes ' || (SELECT string_agg(left(encode(hash, 'hex'), 12), ',' ORDER BY seq) \
                     FROM document_changes WHERE doc_id = '{doc}') || '; snapshot bytes ' || \
                     (SELECT length(snapshot) FROM documents WHERE doc_id = '{doc}') || '; news ' || \
                     (SELECT seq FROM news WHERE doc_id = '{doc}')"
                ),
            )
        })
    }
}
