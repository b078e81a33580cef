//! What a workload measured: one JSON line per run of one workload on one system.

use serde::{Deserialize, Serialize};

use crate::stats::Latency;

/// One run of one workload on one system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Which system ran (`social_sync`, `socketio`, `automerge_repo`).
    pub system: String,
    /// Relay nodes (1 unless a cluster ran).
    pub nodes: usize,
    /// What was measured, or why the system cannot do this workload.
    pub result: Measured,
}

/// A workload's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measured {
    /// (a) fan-out.
    FanOut(FanOut),
    /// (b) like storm.
    LikeStorm(LikeStorm),
    /// (c) idle connections.
    Idle(Idle),
    /// (d) catch-up.
    CatchUp(CatchUp),
    /// (e) churn.
    Churn(Churn),
    /// The system cannot do this workload: the reason, as the table prints it.
    CannotDo {
        /// The workload's name ([`crate::Workload::name`]).
        workload: String,
        /// Why, in a few words ("no offline catch-up: pub/sub keeps nothing").
        reason: String,
    },
}

/// (a) Fan-out from one author to its online followers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanOut {
    /// Online followers.
    pub followers: usize,
    /// Posts timed one at a time.
    pub posts: usize,
    /// Author's post to a follower holding it, over every (post, follower) pair.
    pub latency: Latency,
    /// Deliveries seen (each follower, each post: timed and burst posts).
    pub delivered: u64,
    /// Deliveries expected (`followers × (posts + burst)`).
    pub expected: u64,
    /// Deliveries of a post a follower already had.
    pub duplicates: u64,
    /// Posts sent back to back for the throughput figure.
    pub burst: usize,
    /// Burst deliveries per second, first post sent to last delivery.
    pub deliveries_per_sec: f64,
    /// What "holding it" means for this system's client (e.g. "stored in the follower's
    /// SQLite profile, event raised" or "event parsed").
    pub delivered_when: String,
}

/// (b) Like storm on one post.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LikeStorm {
    /// Clients that liked the post once each.
    pub likers: usize,
    /// Clients that watched its count.
    pub viewers: usize,
    /// How long sending every like took (first to last).
    pub sending_ms: f64,
    /// From the last like sent until every viewer showed the exact final count.
    pub settled_ms: f64,
    /// Viewers that showed the exact final count at the end.
    pub exact_viewers: usize,
    /// The largest count any viewer showed (more than `likers` means a double count).
    pub max_count_seen: u64,
}

/// (c) Idle authenticated connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Idle {
    /// Connections open at the measurement.
    pub connections: usize,
    /// Server resident memory with no connection, KiB.
    pub rss_before_kib: u64,
    /// Server resident memory with every connection open and idle, KiB.
    pub rss_after_kib: u64,
    /// `(after - before) / connections`, KiB.
    pub kib_per_connection: f64,
    /// Why opening stopped short of the asked number, when it did.
    pub stopped_by: Option<String>,
}

/// (d) Catch-up of a device back from offline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatchUp {
    /// Followed people who wrote while it was away.
    pub authors: usize,
    /// Changes they made.
    pub changes: usize,
    /// Connect to holding every change, ms.
    pub ms: f64,
    /// Bytes the device received on the wire (WebSocket payloads).
    pub wire_bytes: u64,
    /// The changes' own bytes (their encoded size, as stored).
    pub change_bytes: u64,
}

/// (e) Connect/disconnect churn.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Churn {
    /// Cycles run.
    pub cycles: usize,
    /// Server resident memory before the first cycle (after a warm-up), KiB.
    pub rss_start_kib: u64,
    /// Server resident memory after the last cycle, once settled, KiB.
    pub rss_end_kib: u64,
    /// Presence entries (users shown online) left after every client left, when the
    /// server can say.
    pub presence_left: Option<u64>,
}
