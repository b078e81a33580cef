//! Relay benchmark: starts the release `sync-server` binary on a loopback port and prints
//! - fan-out latency (p50, p99) from one post to 1,000 connected followers,
//! - messages per second through the relay (posts accepted and fanned out),
//! - resident memory per idle authenticated connection at 5,000 connections.
//!
//! Run: `cargo bench -p sync-server --bench relay` (`-- --quick` for a smaller run; `-- --tls`
//! for the relay's own TLS, with a certificate made here and trusted by the clients;
//! `SYNC_SERVER_BIN=path` to measure another build of the relay against the same clients).
//! Targets on a 2-core machine: p99 < 50 ms at 1,000 followers; < 16 KiB per idle
//! connection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    missing_docs
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use automerge::sync::{Message as SyncMessage, State, SyncDoc};
use automerge::transaction::CommitOptions;
use futures_util::future::join_all;
use serde_bytes::ByteBuf;
use social_sync_core::model::{PostEntry, UserDoc, actor_id};
use social_sync_core::sync_engine::Link;
use social_sync_core::{DocId, Env, Identity, PostId};
use social_sync_protocol::{ClientMessage, ServerMessage, SyncItem};

struct Relay {
    child: Child,
    url: String,
    /// The CA the clients trust, with `--tls`.
    root: Option<String>,
    _dir: tempfile::TempDir,
}

/// A CA and a certificate it signs for 127.0.0.1, written to `dir`: (CA PEM, cert, key).
fn certificate(dir: &std::path::Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (cert_path, key_path) = (dir.join("relay.pem"), dir.join("relay.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca_pem, cert_path, key_path)
}

impl Relay {
    fn start(tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // SYNC_SERVER_BIN runs another build of the relay (an older commit, to compare).
        let bin = std::env::var_os("SYNC_SERVER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_sync-server").into());
        let mut command = Command::new(bin);
        let root = tls.then(|| {
            let (ca, cert, key) = certificate(dir.path());
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key);
            ca
        });
        let mut child = command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log",
                "error",
                "--max-connections-per-ip",
                "20000",
            ])
            .args(["--messages-per-second", "1000000", "--send-queue", "4096"])
            .arg("--data")
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        let scheme = if tls { "wss" } else { "ws" };
        Self {
            child,
            url: format!("{scheme}://{addr}"),
            root,
            _dir: dir,
        }
    }

    /// Connects and authenticates as `identity` on `device`.
    async fn connect(url: String, root: Option<String>, identity: &Identity, device: &str) -> Link {
        Link::connect_as(&url, identity, device, None, root.as_deref())
            .await
            .unwrap()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn identity(seed: u64) -> Identity {
    Identity::generate(&mut Env::deterministic(seed, 0))
}

fn device(n: u64) -> String {
    format!("{n:016x}")
}

/// A sync item for `m`, each change signed by `key` (the author of every change here).
fn signed_item(key: &Identity, doc: &DocId, m: automerge::sync::Message) -> SyncItem {
    let signatures = m
        .changes
        .iter()
        .map(|bytes| {
            let change = automerge::Change::try_from(bytes).unwrap();
            ByteBuf::from(key.sign_change(doc, &change).to_vec())
        })
        .collect();
    SyncItem {
        doc: doc.clone(),
        message: ByteBuf::from(m.encode()),
        signatures,
    }
}

/// Syncs `am` as `doc` (written by `key`) until the relay has it all.
async fn push(
    link: &mut Link,
    key: &Identity,
    doc: &DocId,
    am: &mut AutoCommit,
    state: &mut State,
) {
    for round in 0..8u64 {
        if let Some(m) = am.sync().generate_sync_message(state) {
            let items = vec![signed_item(key, doc, m)];
            link.send(&ClientMessage::Sync { items }).await.unwrap();
        } else if round > 0 {
            return;
        }
        link.send(&ClientMessage::Ping { id: round }).await.unwrap();
        loop {
            match link.recv().await.unwrap() {
                ServerMessage::Pong { id } if id == round => break,
                ServerMessage::Sync { items } => {
                    for item in items {
                        let m = SyncMessage::decode(&item.message).unwrap();
                        am.sync().receive_sync_message(state, m).unwrap();
                    }
                }
                _ => {}
            }
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let tls = std::env::args().any(|a| a == "--tls");
    let (followers, posts, idle) = if quick {
        (100, 10, 500)
    } else {
        (1_000, 30, 5_000)
    };
    let relay = Relay::start(tls);
    println!(
        "Social Sync relay benchmark ({} followers, {} posts, {} idle connections{})",
        followers,
        posts,
        idle,
        if tls { ", over TLS" } else { "" }
    );

    // ----- fan-out latency ---------------------------------------------------------------
    let author = identity(1);
    let author_uid = author.user_id();
    let t = Instant::now();
    let mut readers = Vec::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    for chunk in (0..followers as u64).collect::<Vec<_>>().chunks(100) {
        let links = join_all(chunk.iter().map(|&i| {
            let (url, root) = (relay.url.clone(), relay.root.clone());
            async move {
                let me = identity(1_000 + i);
                let mut link = Relay::connect(url, root, &me, &device(i)).await;
                let mut am = AutoCommit::new().with_actor(actor_id(me.user_id(), [0; 8]));
                UserDoc::follow(&mut am, author_uid, 1).unwrap();
                am.commit();
                push(
                    &mut link,
                    &me,
                    &DocId::User(me.user_id()),
                    &mut am,
                    &mut State::new(),
                )
                .await;
                link
            }
        }))
        .await;
        for mut link in links {
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                while let Ok(m) = link.recv().await {
                    if let ServerMessage::Changes { seq, .. } = m {
                        let _ = tx.send((seq, Instant::now()));
                    }
                }
            }));
        }
    }
    println!(
        "connected {followers} followers (each following the author) in {:.1?}",
        t.elapsed()
    );

    let mut link = Relay::connect(relay.url.clone(), relay.root.clone(), &author, &device(0)).await;
    let doc = DocId::User(author_uid);
    let mut am = AutoCommit::new().with_actor(actor_id(author_uid, [0; 8]));
    let mut state = State::new();
    push(&mut link, &author, &doc, &mut am, &mut state).await;
    let mut latencies = Vec::new();
    for p in 0..posts {
        let entry = PostEntry {
            id: PostId::new(author_uid, &(p as u64).to_le_bytes()),
            text: format!("post {p}"),
            media: vec![],
            created_at: p as i64,
        };
        UserDoc::add_post(&mut am, &entry).unwrap();
        am.commit_with(CommitOptions::default().with_time(p as i64));
        let sent = Instant::now();
        push(&mut link, &author, &doc, &mut am, &mut state).await;
        let mut got = 0;
        let mut seq = None;
        while got < followers {
            let (s, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if seq.is_none() {
                seq = Some(s);
            }
            if Some(s) == seq {
                latencies.push(at - sent);
                got += 1;
            }
        }
    }
    latencies.sort();
    println!(
        "fan-out, one post to {followers} followers ({} deliveries): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms   (target p99 < 50 ms)",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );

    // ----- throughput: posts accepted and fanned out --------------------------------------
    let burst = if quick { 200 } else { 1_000 };
    let t = Instant::now();
    let mut items = Vec::new();
    for p in 0..burst {
        let entry = PostEntry {
            id: PostId::new(author_uid, &(1_000_000 + p as u64).to_le_bytes()),
            text: "burst".into(),
            media: vec![],
            created_at: p as i64,
        };
        UserDoc::add_post(&mut am, &entry).unwrap();
        am.commit_with(CommitOptions::default().with_time(p as i64));
        if let Some(m) = am.sync().generate_sync_message(&mut state) {
            items.push(m);
        }
    }
    // One frame per post, sent back to back, as a busy client would.
    for m in items {
        let items = vec![signed_item(&author, &doc, m)];
        link.send(&ClientMessage::Sync { items }).await.unwrap();
    }
    // Each accepted sync message fans out one frame per follower.
    let expected = burst as u64 * followers as u64;
    let mut delivered = 0u64;
    while delivered < expected {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(_)) => delivered += 1,
            _ => break,
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "throughput: {:.0} posts/s accepted, stored and fanned out; {:.0} frames/s delivered ({} of {} frames)",
        burst as f64 / secs,
        delivered as f64 / secs,
        delivered,
        expected
    );
    for r in readers {
        r.abort();
    }
    drop(link);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // ----- many writers at once: documents that do not wait on each other ---------------
    // Each writer posts to its own user document and waits for the relay's answer before
    // the next post, as a client does: what one writer gets is bounded by its round trip,
    // what all of them get together shows the relay working on several documents at once
    // (per-document locks) and sharing commits (group commit).
    let (writers, each) = if quick { (16u64, 20u64) } else { (64, 50) };
    let links = join_all((0..writers).map(|i| {
        let (url, root) = (relay.url.clone(), relay.root.clone());
        async move {
            let me = identity(500_000 + i);
            let link = Relay::connect(url, root, &me, &device(500_000 + i)).await;
            (me, link)
        }
    }))
    .await;
    let t = Instant::now();
    join_all(links.into_iter().map(|(me, mut link)| async move {
        let doc = DocId::User(me.user_id());
        let mut am = AutoCommit::new().with_actor(actor_id(me.user_id(), [0; 8]));
        let mut state = State::new();
        for p in 0..each {
            let entry = PostEntry {
                id: PostId::new(me.user_id(), &p.to_le_bytes()),
                text: "writer".into(),
                media: vec![],
                created_at: p as i64,
            };
            UserDoc::add_post(&mut am, &entry).unwrap();
            am.commit_with(CommitOptions::default().with_time(p as i64));
            push(&mut link, &me, &doc, &mut am, &mut state).await;
        }
    }))
    .await;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "many writers: {writers} connections, {each} posts each, every post answered before the next: {:.0} posts/s accepted and durable in all ({:.1} ms per post per writer)",
        (writers * each) as f64 / secs,
        secs * 1e3 / each as f64
    );

    // ----- memory per idle authenticated connection ---------------------------------------
    let before = relay.rss_kib();
    let mut idle_links = Vec::with_capacity(idle);
    for chunk in (0..idle as u64).collect::<Vec<_>>().chunks(250) {
        let links = join_all(chunk.iter().map(|&i| {
            let (url, root) = (relay.url.clone(), relay.root.clone());
            async move { Relay::connect(url, root, &identity(100_000 + i), &device(i)).await }
        }))
        .await;
        idle_links.extend(links);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = relay.rss_kib();
    println!(
        "memory: relay RSS {} KiB before, {} KiB with {} idle authenticated connections: {:.1} KiB per connection   (target < 16 KiB)",
        before,
        after,
        idle_links.len(),
        (after.saturating_sub(before)) as f64 / idle_links.len() as f64
    );
}
