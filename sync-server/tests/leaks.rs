//! Issue 14: no leaks. Thousands of logins and departures, and connections that subscribe
//! to many documents and leave, bring the relay's connections, sockets, presence entries,
//! subscriptions, sync states and open files back to where they were, and its resident
//! memory to within 10 % of it. Each test prints its figures (`-- --nocapture`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)] // test code: it prints its figures

mod common;

use std::time::{Duration, Instant};

use common::{Raw, Relay, identity};
use futures_util::future::join_all;
use social_sync_protocol::{ClientMessage, DocId, PostId};

/// What the relay holds, read from `/metrics` and `/proc`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Held {
    connections: f64,
    sockets: f64,
    presence: f64,
    subscriptions: f64,
    sync_states: f64,
    open_files: usize,
    rss_kib: u64,
}

async fn held(relay: &Relay) -> Held {
    let m = |name: &'static str| relay.metric_aside(name);
    Held {
        connections: m("social_sync_relay_connections").await,
        sockets: m("social_sync_relay_sockets").await,
        presence: m("social_sync_relay_presence_entries").await,
        subscriptions: m("social_sync_relay_subscriptions").await,
        sync_states: m("social_sync_relay_sync_states").await,
        open_files: std::fs::read_dir(format!("/proc/{}/fd", relay.pid()))
            .unwrap()
            .count(),
        rss_kib: relay.memory().rss_kib,
    }
}

/// Waits (up to 20 s) until the relay holds no connection, presence entry, subscription
/// or sync state (a client's departure takes the relay a moment), then returns what it
/// holds.
async fn idle(relay: &Relay) -> Held {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = held(relay).await;
        let idle = now.connections == 0.0
            && now.presence == 0.0
            && now.subscriptions == 0.0
            && now.sync_states == 0.0;
        if idle || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check(what: &str, base: Held, after: Held) {
    eprintln!("{what}: before {base:?}\n{what}: after  {after:?}");
    assert_eq!(after.connections, base.connections, "{what}: connections");
    assert_eq!(after.presence, base.presence, "{what}: presence entries");
    assert_eq!(
        after.subscriptions, base.subscriptions,
        "{what}: subscriptions"
    );
    assert_eq!(after.sync_states, base.sync_states, "{what}: sync states");
    assert!(
        after.open_files <= base.open_files + 2,
        "{what}: open files {} → {}",
        base.open_files,
        after.open_files
    );
    let grown = after.rss_kib as f64 / base.rss_kib as f64 - 1.0;
    eprintln!(
        "{what}: resident memory {} → {} KiB ({:+.1} %)",
        base.rss_kib,
        after.rss_kib,
        grown * 100.0
    );
    assert!(
        grown <= 0.10,
        "{what}: resident memory grew {:.1} % ({} → {} KiB)",
        grown * 100.0,
        base.rss_kib,
        after.rss_kib
    );
}

/// 10,000 logins and departures (100 users, 100 devices each, 50 at a time; half close
/// politely, half just drop the socket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connect_cycles_leave_nothing_behind() {
    let relay = Relay::start(&["--max-connections-per-ip", "200"]);
    let url = relay.url();
    let users: Vec<_> = (0..100).map(|i| identity(1000 + i)).collect();
    let cycle = |round: usize| {
        let url = url.clone();
        let users = &users;
        async move {
            join_all((0..50).map(|k| {
                let url = url.clone();
                async move {
                    let n = round * 50 + k;
                    let (key, user) = &users[n % users.len()];
                    let device = format!("{:016x}", n / users.len());
                    let mut raw = Raw::login_as(&url, key, *user, &device).await;
                    if n.is_multiple_of(2) {
                        let _ = raw.ws.close(None).await;
                    }
                }
            }))
            .await;
        }
    };
    // Warm up (allocator arenas, caches), then measure from there. 500 cycles of warm-up
    // left the allocator short of its steady state on a busy CI machine (+12.0 % with no
    // leak: the growth happened in the first cycles, not per cycle); 2,000 reach it.
    for round in 0..40 {
        cycle(round).await;
    }
    let base = idle(&relay).await;
    let started = Instant::now();
    for round in 40..240 {
        cycle(round).await;
    }
    eprintln!(
        "10,000 login cycles in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let after = idle(&relay).await;
    check("connect cycles", base, after);
}

/// 2,000 connections (after 200 to warm up) that each subscribe to 1,000 documents, ping,
/// and leave: 2,000,000 subscriptions made and dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_subscribe_cycles_leave_nothing_behind() {
    let relay = Relay::start(&["--max-connections-per-ip", "200"]);
    let url = relay.url();
    let (key, user) = identity(7);
    let docs: Vec<DocId> = (0..1000u32)
        .map(|i| {
            let (_, author) = identity(10_000 + u64::from(i % 50));
            DocId::Thread(PostId::new(author, &u64::from(i).to_le_bytes()))
        })
        .collect();
    let cycle = |round: usize| {
        let (url, docs, key) = (url.clone(), docs.clone(), key.clone());
        async move {
            join_all((0..10).map(|k| {
                let (url, docs, key) = (url.clone(), docs.clone(), key.clone());
                async move {
                    let device = format!("{:016x}", round * 10 + k);
                    let mut raw = Raw::login_as(&url, &key, user, &device).await;
                    raw.send(&ClientMessage::Subscribe { docs }).await;
                    common::ask(&mut raw, &ClientMessage::Ping { id: 1 }).await;
                }
            }))
            .await;
        }
    };
    for round in 0..20 {
        cycle(round).await;
    }
    let base = idle(&relay).await;
    for round in 20..220 {
        cycle(round).await;
    }
    let after = idle(&relay).await;
    check("subscribe cycles", base, after);
}
