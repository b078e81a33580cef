//! Issue 14: a seeded chaos run. Six people, each a real sync engine with a SQLite profile,
//! post (some with images), like, unlike, comment, follow, unfollow and delete through a
//! fault-injecting proxy in front of the real relay — or of each node of a real cluster
//! over PostgreSQL and Redis —, while the run cuts, delays, black-holes and reorders (at
//! frame boundaries) their connections, takes them offline for spells, and kill -9's the
//! relay (in a cluster: a node, Redis, or PostgreSQL, each back after a spell). Then the
//! faults stop, everyone comes online, and the run checks what users would see: every
//! change acknowledged (nothing left in any outbox), every follower's view of each
//! author's posts equal to the author's own (likes and comments counted), every like,
//! comment and follow notified to its target exactly once and nothing notified that nobody
//! did, and nothing left held by the servers once everyone left. It prints the operations,
//! the faults by kind, lost, duplicated, and how long the clients took to converge after
//! the last fault.
//!
//! Every decision comes from the seed (`CHAOS_SEED`), so a failing seed is run again by its
//! number: `scripts/chaos SEED SECONDS [NODES]` (the timing of the machine still varies;
//! the sequence of operations and faults does not). CI runs a few short seeds of each.
//!
//! # Layout
//! - `chaos/people.rs`: the people, their engines, their random operations and the log.
//! - `chaos/proxy.rs`: the fault-injecting proxy.
//! - `chaos/relays.rs`: one relay or a cluster, and the server faults.
//! - `chaos/verdict.rs`: what is checked at the end.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)] // test code: it prints its figures

mod common;
#[path = "chaos/people.rs"]
mod people;
#[path = "chaos/proxy.rs"]
mod proxy;
#[path = "chaos/relays.rs"]
mod relays;
#[path = "chaos/verdict.rs"]
mod verdict;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Profile;
use people::{Log, Person, operate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use relays::{Relays, Topology};
use social_sync_protocol::DocId;
use verdict::{Outcome, check, differences, notifications};

const PEOPLE: usize = 6;

/// Runs seed `seed` on `topology` for `length` of faults, then checks what everyone sees.
async fn chaos(seed: u64, topology: Topology, length: Duration) -> Outcome {
    if let Ok(filter) = std::env::var("CHAOS_TRACE") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut relays = Relays::start(topology).await;
    let mut people: Vec<Person> = (0..PEOPLE)
        .map(|i| Person {
            profile: Profile::new(&format!("P{i}"), seed * 100 + i as u64, &relays.list_for(i)),
            running: None,
            shown: Arc::default(),
            refused: Arc::default(),
            connection: Arc::default(),
        })
        .collect();
    for (i, p) in people.iter_mut().enumerate() {
        p.go_online(&relays.list_for(i));
    }
    let mut log = Log::default();
    // Everyone follows someone at first, so there is something to like.
    for i in 0..PEOPLE {
        let other = people[(i + 1) % PEOPLE].profile.uid;
        people[i].profile.r().follow(other).unwrap();
        log.follows.insert((people[i].profile.uid, other));
        log.ever_followed.insert((people[i].profile.uid, other));
    }

    let started = Instant::now();
    let mut last_fault = Instant::now();
    let mut comebacks: Vec<(Instant, usize)> = Vec::new();
    let mut undo_delays: Vec<(Instant, u64)> = Vec::new();
    let mut undo_reorders: Vec<(Instant, u64)> = Vec::new();
    let mut cut_later: Vec<(Instant, u64)> = Vec::new();
    // The servers' footprint once a quarter of the run has warmed them up (the documents
    // cached, the connections made), against which the end is compared.
    let mut warm: Option<Vec<relays::Footprint>> = None;
    let mut n = 0u32;
    while started.elapsed() < length {
        n += 1;
        if warm.is_none() && started.elapsed() > length / 4 {
            warm = Some(relays.footprints());
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..100))).await;
        let now = Instant::now();
        relays.tick(false);
        for (_, p) in comebacks.extract_if(.., |(at, _)| *at <= now) {
            people[p].go_online(&relays.list_for(p));
        }
        for (_, id) in undo_delays.extract_if(.., |(at, _)| *at <= now) {
            relays.proxy.delay(id, Duration::ZERO);
        }
        for (_, id) in undo_reorders.extract_if(.., |(at, _)| *at <= now) {
            relays.proxy.reorder(id, false);
        }
        for (_, id) in cut_later.extract_if(.., |(at, _)| *at <= now) {
            relays.proxy.cut(id);
        }
        let p = rng.random_range(0..PEOPLE);
        if rng.random_range(0..100) < 75 {
            operate(&mut rng, &people, p, &mut log, n);
            continue;
        }
        let proxy = &relays.proxy;
        let open = proxy.open();
        let conn = (!open.is_empty()).then(|| open[rng.random_range(0..open.len())]);
        let spell = Duration::from_millis(rng.random_range(300..2500));
        let fault = match rng.random_range(0..100) {
            0..25 => conn.map(|c| {
                proxy.cut(c);
                "connection cut"
            }),
            25..40 => conn.map(|c| {
                proxy.delay(c, Duration::from_millis(rng.random_range(20..300)));
                undo_delays.push((now + spell, c));
                "connection delayed"
            }),
            40..52 => conn.map(|c| {
                proxy.black_hole(c);
                cut_later.push((now + spell, c));
                "connection black-holed"
            }),
            52..65 => conn.map(|c| {
                proxy.reorder(c, true);
                undo_reorders.push((now + spell, c));
                "frames reordered"
            }),
            65..90 => {
                if people[p].running.is_some() {
                    people[p].go_offline().await;
                    comebacks.push((now + spell, p));
                    Some("client offline")
                } else {
                    None
                }
            }
            _ => relays.fault(&mut rng).await,
        };
        if let Some(kind) = fault {
            *log.faults.entry(kind).or_default() += 1;
            last_fault = Instant::now();
        }
    }

    // The faults stop; every server is up; everyone comes online at once (a fresh start of
    // each app).
    relays.tick(true);
    for (_, id) in undo_delays.drain(..) {
        relays.proxy.delay(id, Duration::ZERO);
    }
    for (_, id) in undo_reorders.drain(..) {
        relays.proxy.reorder(id, false);
    }
    relays.proxy.cut_all();
    for (i, p) in people.iter_mut().enumerate() {
        p.go_offline().await;
        p.connection.lock().unwrap().clear();
        p.go_online(&relays.list_for(i));
    }
    let calm = Instant::now();
    let mut converged_after = None;
    let mut diff = Vec::new();
    while calm.elapsed() < Duration::from_secs(90) {
        diff = differences(&people);
        if diff.is_empty() {
            let (lost, _, _) = notifications(&people, &log);
            if lost.is_empty() {
                converged_after = Some(last_fault.elapsed());
                break;
            }
            diff = lost;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (mut lost, duplicated, made_up) = notifications(&people, &log);
    if converged_after.is_none() {
        diagnose(&people, &log, &relays);
        for (i, p) in people.iter().enumerate() {
            eprintln!(
                "diagnosis: person {i}'s connection since the faults stopped: {:?}",
                p.connection.lock().unwrap()
            );
            {
                let list = social_sync_core::RelayList::parse(&relays.list_for(i)).unwrap();
                let engine =
                    social_sync_core::SyncEngine::with_relays(p.profile.replica.clone(), list);
                let summary = engine.sync_once().await;
                eprintln!(
                    "diagnosis: a one-shot sync of person {i} (its app still running): {summary:?}; waiting after: {}",
                    p.profile.r().changes_waiting().unwrap()
                );
            }
        }
    }
    if converged_after.is_none() {
        eprintln!(
            "diagnosis: after a one-shot sync of everyone: {:?}",
            differences(&people)
        );
    }
    lost.extend(diff);
    lost.extend(made_up);
    for p in &mut people {
        p.go_offline().await;
    }
    // Everyone left: the servers hold no connection, presence entry, subscription or sync
    // state of theirs (a leak under faults would show here). A killed node's presence
    // entries in Redis go once another node sweeps them (after a presence TTL, 3 s here).
    let deadline = Instant::now() + Duration::from_secs(20);
    let held = loop {
        let held = relays.held().await;
        if held.is_empty() || Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    lost.extend(
        held.iter()
            .map(|h| format!("the servers still hold {h} after everyone left")),
    );
    // A soak (the servers ran the whole time): their memory and open files are compared
    // with fresh processes serving the same data — each server started again, everyone
    // syncing once and leaving. Memory grows with the data (documents get longer, the
    // cache holds the longer ones); a leak would grow with the hours served, and show here
    // beyond 10 % (and 1 MiB, the allocator's granularity).
    let end = relays.footprints();
    let warm = warm.unwrap_or_else(|| end.clone());
    let mut fresh = None;
    if relays.soak() {
        relays.restart_all();
        for (i, p) in people.iter_mut().enumerate() {
            p.go_online(&relays.list_for(i));
        }
        let calm = Instant::now();
        while calm.elapsed() < Duration::from_secs(60) && !differences(&people).is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for p in &mut people {
            p.go_offline().await;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !relays.held().await.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let again = relays.footprints();
        for (i, (f, e)) in again.iter().zip(&end).enumerate() {
            if e.rss_kib > f.rss_kib + f.rss_kib / 10 + 1024 {
                lost.push(format!(
                    "node {i} held {} KiB after the run, a fresh process with the same data {} KiB",
                    e.rss_kib, f.rss_kib
                ));
            }
            if e.open_files > f.open_files + 2 {
                lost.push(format!(
                    "node {i} held {} files after the run, a fresh process {}",
                    e.open_files, f.open_files
                ));
            }
        }
        fresh = Some(again);
    }
    let ops: u32 = log.operations.values().sum();
    let faults: u32 = log.faults.values().sum();
    eprintln!(
        "chaos seed {seed}, {} node(s), {:.0} s: {ops} operations {:?}; {faults} faults {:?}; \
         lost {}, duplicated notifications {}; converged {} after the last fault; servers \
         once warm {warm:?}, at the end {end:?}, fresh with the same data {fresh:?}",
        topology.nodes(),
        length.as_secs_f64(),
        log.operations,
        log.faults,
        lost.len(),
        duplicated.len(),
        converged_after.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64())),
    );
    if let Ok(path) = std::env::var("CHAOS_REPORT") {
        use std::io::Write;
        let line = serde_json::json!({
            "seed": seed,
            "nodes": topology.nodes(),
            "seconds": length.as_secs(),
            "operations": log.operations,
            "faults": log.faults,
            "lost": lost.len(),
            "duplicated_notifications": duplicated.len(),
            "converged_after_s": converged_after.map(|d| d.as_secs_f64()),
            "soak": relays.soak(),
            "servers_warm": warm,
            "servers_end": end,
            "servers_fresh": fresh,
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
    Outcome {
        lost,
        duplicated,
        converged_after,
    }
}

/// For a failing seed: every document whose heads differ between the people who hold it
/// (or that waits in someone's outbox), with what the cluster's database holds of it.
fn diagnose(people: &[Person], log: &Log, relays: &Relays) {
    let mut docs: Vec<DocId> = log
        .authors
        .keys()
        .map(|p| DocId::Thread(p.clone()))
        .chain(people.iter().map(|p| DocId::User(p.profile.uid)))
        .collect();
    for p in people {
        docs.extend(p.profile.r().outbox().unwrap().into_iter().map(|(d, _)| d));
    }
    docs.sort_by_key(ToString::to_string);
    docs.dedup();
    for doc in docs {
        let heads: Vec<(usize, Vec<String>, bool)> = people
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let r = p.profile.r();
                let mut h: Vec<String> = r
                    .heads(&doc)
                    .unwrap()
                    .iter()
                    .map(|h| h.to_string()[..12].to_owned())
                    .collect();
                h.sort();
                let waiting = r.outbox().unwrap().iter().any(|(d, _)| *d == doc);
                (i, h, waiting)
            })
            .filter(|(_, h, _)| !h.is_empty())
            .collect();
        let differ = heads.windows(2).any(|w| w[0].1 != w[1].1) || heads.iter().any(|h| h.2);
        if differ {
            eprintln!(
                "diagnosis: {doc}: heads (person, heads, waiting in outbox) {heads:?}; stored: {}",
                relays.stored(&doc.to_string())
            );
        }
    }
}

/// CI's short seeds, one relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_seeds_lose_nothing_and_notify_once() {
    for seed in [1, 2, 3] {
        let o = chaos(seed, Topology::One, Duration::from_secs(12)).await;
        check(seed, Topology::One, &o);
    }
}

/// CI's short seeds, a cluster of three nodes (needs PostgreSQL and Redis, as the cluster
/// tests do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_cluster_seeds_lose_nothing_and_notify_once() {
    let cluster = Topology::Cluster(3);
    for seed in [1, 2] {
        let o = chaos(seed, cluster, Duration::from_secs(20)).await;
        check(seed, cluster, &o);
    }
}

/// `scripts/chaos SEED SECONDS [NODES]`: one long seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/chaos"]
async fn one_long_seed() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let secs = std::env::var("CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let topology = Topology::from_env();
    let o = chaos(seed, topology, Duration::from_secs(secs)).await;
    check(seed, topology, &o);
}
