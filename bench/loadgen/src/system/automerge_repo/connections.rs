//! (c) Idle connections and (e) churn: connections that did the `join` → `peer`
//! handshake (there is no authentication in automerge-repo: that handshake is all a
//! connection does before it may ask for any document).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::watch;

use super::settled_rss_kib;
use super::wire::{Conn, new_peer_id};
use crate::process::Server;
use crate::results::{Churn, Idle, Measured};

/// Connections opened at once.
const OPENING_AT_ONCE: usize = 64;
/// Cycles run before the churn's first memory reading.
const WARM_UP_CYCLES: usize = 1_000;
/// How long the idle connections stay open before the reading: past two of the server's
/// keep-alive rounds (a ping every 5 s; a connection that has not answered the last one
/// is cut), so the reading is of connections the server keeps.
const IDLE_HOLD: Duration = Duration::from_secs(11);
/// How long a memory reading may wait for the server to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Opens up to `connections` idle connections and reads the server's memory before and
/// after.
pub(super) async fn idle(server: &Server, connections: usize) -> anyhow::Result<Measured> {
    let addr = server.addr;
    let rss_before_kib = settled_rss_kib(server, SETTLE_LIMIT);
    // Read now: at the limit there is no file left to read it with.
    let file_limit = open_file_limit().unwrap_or_else(|| "?".to_owned());
    let (stop, stopped) = watch::channel(false);
    let open = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(connections);
    let mut stopped_by = None;
    {
        let mut opening = futures_util::stream::iter(0..connections)
            .map(|n| Conn::connect(addr, new_peer_id("idle", n)))
            .buffer_unordered(OPENING_AT_ONCE);
        while let Some(result) = opening.next().await {
            match result {
                Ok(conn) => {
                    open.fetch_add(1, Ordering::SeqCst);
                    tasks.push(tokio::spawn(hold(conn, stopped.clone(), open.clone())));
                }
                Err(e) => {
                    stopped_by = Some(why_stopped(&e, open.load(Ordering::SeqCst), &file_limit));
                    break;
                }
            }
        }
    }
    tokio::time::sleep(IDLE_HOLD).await;
    let rss_after_kib = settled_rss_kib(server, SETTLE_LIMIT);
    let connections = open.load(Ordering::SeqCst);
    if stopped_by.is_none() && connections < tasks.len() {
        stopped_by = Some(format!(
            "the server closed {} idle connections before the reading",
            tasks.len() - connections
        ));
    }
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Ok(Measured::Idle(Idle {
        connections,
        rss_before_kib,
        rss_after_kib,
        kib_per_connection: rss_after_kib.saturating_sub(rss_before_kib) as f64
            / connections.max(1) as f64,
        stopped_by,
    }))
}

/// Keeps `conn` open (reading, so the server's keep-alive pings are answered) until
/// `stopped`; counts itself out of `open` when the server closes it first.
async fn hold(mut conn: Conn, mut stopped: watch::Receiver<bool>, open: Arc<AtomicUsize>) {
    loop {
        tokio::select! {
            incoming = conn.recv() => match incoming {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    open.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
            },
            _ = stopped.changed() => break,
        }
    }
    conn.close().await;
}

/// Why opening connections stopped, in a few words.
fn why_stopped(e: &anyhow::Error, open: usize, file_limit: &str) -> String {
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(|e| e.raw_os_error())
    {
        Some(24) => format!(
            "the load generator's file limit (EMFILE at {open} connections; {} open files per process)",
            file_limit
        ),
        Some(23) => format!("the system's file table (ENFILE at {open} connections)"),
        _ => format!("connection {} failed: {e:#}", open + 1),
    }
}

/// This process's limit of open files, as `/proc/self/limits` says.
fn open_file_limit() -> Option<String> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()
        .map(str::to_owned)
}

/// Runs `cycles` connect + join + disconnect cycles, `parallel` at a time, after a
/// warm-up, reading the server's memory before and after.
pub(super) async fn churn(
    server: &Server,
    cycles: usize,
    parallel: usize,
) -> anyhow::Result<Measured> {
    cycle(server, WARM_UP_CYCLES, parallel).await?;
    let rss_start_kib = settled_rss_kib(server, SETTLE_LIMIT);
    cycle(server, cycles, parallel).await?;
    let rss_end_kib = settled_rss_kib(server, SETTLE_LIMIT);
    Ok(Measured::Churn(Churn {
        cycles,
        rss_start_kib,
        rss_end_kib,
        presence_left: None,
    }))
}

/// `cycles` connect + join + disconnect cycles, `parallel` at a time.
async fn cycle(server: &Server, cycles: usize, parallel: usize) -> anyhow::Result<()> {
    let addr = server.addr;
    futures_util::stream::iter(0..cycles)
        .map(|n| async move {
            let conn = Conn::connect(addr, new_peer_id("churn", n)).await?;
            conn.close().await;
            anyhow::Ok(())
        })
        .buffer_unordered(parallel.max(1))
        .try_collect::<()>()
        .await
}
