//! (c) Idle connections and (e) connect/disconnect churn: server memory.
//!
//! Memory is the Node processes' resident memory summed (Redis, shared and not per
//! connection, is left out), read once it stops moving.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures_util::{StreamExt, TryStreamExt};

use super::Cluster;
use super::client::{self, Client};
use crate::results::{Churn, Idle, Measured};

/// How long memory may take to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// (c) Opens up to `connections` idle authenticated clients (users `i<n>`), stopping at the
/// first failure (a file limit, most likely), and measures the servers' memory with them open.
pub(super) async fn idle(cluster: &Cluster, connections: usize) -> anyhow::Result<Measured> {
    let rss_before_kib = cluster.settled_rss_kib(SETTLE).await?;
    let mut clients = Vec::with_capacity(connections);
    let mut stopped_by = None;
    {
        let mut opening = futures_util::stream::iter(0..connections)
            .map(|i| async move {
                let index = u32::try_from(i).context("too many clients")?;
                Client::connect(cluster.addr(i), &format!("i{i}"), index, None).await
            })
            .buffer_unordered(64);
        while let Some(opened) = opening.next().await {
            match opened {
                Ok(client) => clients.push(client),
                Err(err) => {
                    stopped_by = Some(format!("after {} connections: {err:#}", clients.len()));
                    break;
                }
            }
        }
    }
    let rss_after_kib = cluster.settled_rss_kib(SETTLE).await?;
    let open = clients.iter().filter(|c| c.is_open()).count();
    if open < clients.len() && stopped_by.is_none() {
        stopped_by = Some(format!(
            "{} of {} connections closed while idle",
            clients.len() - open,
            clients.len()
        ));
    }
    Ok(Measured::Idle(Idle {
        connections: open,
        rss_before_kib,
        rss_after_kib,
        kib_per_connection: if open > 0 {
            (rss_after_kib as f64 - rss_before_kib as f64) / open as f64
        } else {
            0.0
        },
        stopped_by,
    }))
}

/// Cycles run for warm-up before the first memory reading.
const WARM_UP: usize = 1_000;

/// (e) `cycles` connect + CONNECT + disconnect cycles (users `c<n>`, each once), `parallel`
/// at a time, after a warm-up of [`WARM_UP`] cycles (users `w<n>`).
pub(super) async fn churn(
    cluster: &Cluster,
    cycles: usize,
    parallel: usize,
) -> anyhow::Result<Measured> {
    run_cycles(cluster, "w", WARM_UP, parallel)
        .await
        .context("warm-up")?;
    wait_until_empty(cluster).await?;
    let rss_start_kib = cluster.settled_rss_kib(SETTLE).await?;
    run_cycles(cluster, "c", cycles, parallel).await?;
    wait_until_empty(cluster).await?;
    let rss_end_kib = cluster.settled_rss_kib(SETTLE).await?;
    let presence_left = cluster.stats().await?.presence;
    Ok(Measured::Churn(Churn {
        cycles,
        rss_start_kib,
        rss_end_kib,
        presence_left: Some(presence_left),
    }))
}

async fn run_cycles(
    cluster: &Cluster,
    prefix: &str,
    cycles: usize,
    parallel: usize,
) -> anyhow::Result<()> {
    futures_util::stream::iter(0..cycles)
        .map(|i| async move {
            let ws = client::handshake(cluster.addr(i), &format!("{prefix}{i}")).await?;
            client::goodbye(ws)
                .await
                .with_context(|| format!("cycle {prefix}{i}"))
        })
        .buffer_unordered(parallel.max(1))
        .try_collect::<()>()
        .await
}

/// Waits (up to 10 s) until no node has a socket open.
async fn wait_until_empty(cluster: &Cluster) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let sockets = cluster.stats().await?.sockets;
        if sockets == 0 {
            return Ok(());
        }
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "{sockets} sockets still open 10 s after every client left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
