//! The side-by-side benchmark's load generator (`scripts/bench` runs it).
//!
//! Each system under test is started here as the real server process on a loopback port
//! (the release `sync-server`; Node with the baselines in `bench/baselines/`; a private
//! `redis-server`), driven through the same workloads by clients in this process, and
//! stopped when the workload ends. A workload prints one JSON line ([`results`]);
//! `loadgen report` turns the lines of a run into `docs/benchmarks.md` and its plot.
//!
//! This crate is a measuring tool, the edge of the product: its errors are `anyhow`.
//!
//! # Layout
//!
//! - [`workload`]: what each workload asks for (sizes, counts), the same for every system.
//! - [`results`]: what each workload measured, one serde type per workload.
//! - [`stats`]: latency percentiles.
//! - [`process`]: a server process started for a workload (address, memory, stop on drop),
//!   and a private Redis.
//! - [`system`]: one module per system under test, each running every workload it can:
//!   [`system::social_sync`] (the real client engine against the real relay),
//!   [`system::socketio`] (the seed's design: Socket.IO with per-user rooms over Redis),
//!   [`system::automerge_repo`] (automerge-repo's sync server).
//! - [`report`]: `docs/benchmarks.md` and the SVG plot, from the JSON lines of a run.

pub mod process;
pub mod report;
pub mod results;
pub mod stats;
pub mod system;
pub mod workload;

pub use results::Outcome;
pub use system::{Paths, SystemKind};
pub use workload::Workload;
