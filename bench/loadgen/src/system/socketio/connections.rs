//! (c) Idle connections and (e) connect/disconnect churn: server memory.
//!
//! Memory is the Node processes' resident memory summed (Redis, shared and not per
//! connection, is left out), read once it stops moving.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures_util::{StreamExt, TryStreamExt};

use super::client::{self, Client};
use super::{Cluster, close_all};
use crate::results::{Churn, Idle, Measured};

/// How long memory may take to settle.
const SETTLE: Duration = Duration::from_secs(30);
/// How long idle connections stay open before the memory reading: longer than the
/// server's ping interval (Socket.IO's default, 25 s).
const HOLD: Duration = Duration::from_secs(30);

/// (c) Opens up to `connections` idle authenticated clients (users `i<n>`), stopping at the
/// first failure (a file limit, most likely), and measures the servers' memory with them open
/// (after a warm-up of half [`WARM_UP`] churn cycles and a rest, as before the reading with none).
pub(super) async fn idle(cluster: &Cluster, connections: usize) -> anyhow::Result<Measured> {
    // A Node process just started holds its start-up garbage until some activity makes V8
    // collect it, which would later read as memory given back: the reading before is taken
    // like the one after, following some connections and a rest.
    run_cycles(cluster, "w", WARM_UP / 2, 64)
        .await
        .context("warm-up")?;
    wait_until_empty(cluster).await?;
    tokio::time::sleep(HOLD).await;
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
    // Every connection answers at least one of the server's pings before the reading.
    tokio::time::sleep(HOLD).await;
    let rss_after_kib = cluster.settled_rss_kib(SETTLE).await?;
    let opened = clients.len();
    let open = clients.iter().filter(|c| c.is_open()).count();
    close_all(clients).await;
    if open < opened && stopped_by.is_none() {
        stopped_by = Some(format!(
            "{} of {opened} connections closed while idle",
            opened - open
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
