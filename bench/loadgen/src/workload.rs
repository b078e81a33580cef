//! What each workload asks for. Every system runs the same [`Workload`] value.

use serde::{Deserialize, Serialize};

/// One workload and its sizes.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Subcommand)]
#[serde(tag = "workload", rename_all = "snake_case")]
pub enum Workload {
    /// (a) One author posts to `followers` online followers: latency from the author's
    /// post to each follower holding it, p50/p99/max over `posts` posts sent one after
    /// another (each waits until every follower has the one before); then `burst` posts
    /// sent back to back, for deliveries per second at saturation.
    FanOut {
        /// Online followers of the author.
        #[arg(long, default_value_t = 1_000)]
        followers: usize,
        /// Posts timed one at a time.
        #[arg(long, default_value_t = 20)]
        posts: usize,
        /// Posts sent back to back for the throughput figure.
        #[arg(long, default_value_t = 20)]
        burst: usize,
    },
    /// (b) `likers` clients like one post within about a second while `viewers` watch it:
    /// time from the last like sent until every viewer shows the exact final count.
    LikeStorm {
        /// Clients that each like the post once.
        #[arg(long, default_value_t = 1_000)]
        likers: usize,
        /// Clients that watch the post's like count.
        #[arg(long, default_value_t = 1_000)]
        viewers: usize,
    },
    /// (c) Idle authenticated connections, opened until `connections` or the process's
    /// file limit: server memory per connection.
    Idle {
        /// Connections to open (fewer when a file limit stops them first; the result says).
        #[arg(long, default_value_t = 19_000)]
        connections: usize,
    },
    /// (d) A device back after `authors` followed people made `changes` changes in all
    /// while it was away: time until it holds them all, and bytes on the wire.
    CatchUp {
        /// Followed people who wrote while the device was away.
        #[arg(long, default_value_t = 100)]
        authors: usize,
        /// Changes they made in all (split evenly).
        #[arg(long, default_value_t = 10_000)]
        changes: usize,
    },
    /// (e) `cycles` connect + authenticate + disconnect cycles, `parallel` at a time:
    /// server memory before and after, presence entries left.
    Churn {
        /// Connect/disconnect cycles.
        #[arg(long, default_value_t = 10_000)]
        cycles: usize,
        /// Cycles in flight at once.
        #[arg(long, default_value_t = 100)]
        parallel: usize,
    },
}

impl Workload {
    /// The workload's short name, as in the JSON lines and the report.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FanOut { .. } => "fan_out",
            Self::LikeStorm { .. } => "like_storm",
            Self::Idle { .. } => "idle",
            Self::CatchUp { .. } => "catch_up",
            Self::Churn { .. } => "churn",
        }
    }
}
